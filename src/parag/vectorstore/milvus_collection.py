"""The requests a MilvusVectorStore makes of its collection, with pymilvus's errors as parag's.

:class:`Collection` knows the server's side (names, expressions, paging, consistency) and
nothing of the store's contract: the store validates input, holds the write lock and keeps
the FAISS store's semantics; it asks this class for rows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np

import parag.vectorstore.milvus_rows as rows_
import parag.vectorstore.milvus_schema as schema
from parag._ids import INT_IDS, MAX_STR_ID_LENGTH, STR_IDS, IdKind
from parag._jsonl import encodable
from parag._validation import MAX_ID
from parag.errors import IdNotFoundError
from parag.vectorstore.milvus_filters import NotOnServer, client_mask

BATCH_ROWS = 4096  # rows per insert / query page (Milvus caps a query's limit at 16,384)


class Collection:
    """A parag collection ``name`` through ``client``; ``kind`` is None until it exists."""

    def __init__(self, client: Any, name: str, uri: str, consistency: str) -> None:
        self.client, self.name, self.uri, self.consistency = client, name, uri, consistency
        self.kind: IdKind | None = None

    def call(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        """``function(*args, **kwargs)`` with pymilvus's errors as parag's."""
        try:
            return function(*args, **kwargs)
        except schema.pymilvus().MilvusException as e:
            raise schema.server_error(e, f"Milvus collection {self.name!r} at {self.uri}") from e

    def open(self, config: dict[str, Any], wanted_kind: IdKind | None) -> dict[str, Any] | None:
        """Adopt the collection if it exists, refusing another configuration: its configuration
        (:func:`milvus_schema.read_config`), or None where there is no such collection."""
        if not self.call(self.client.has_collection, self.name):
            return None
        found = self.call(schema.read_config, self.client, self.name)
        schema.mismatch(self.name, found, config, wanted_kind)
        self.call(self.client.load_collection, self.name)
        self.kind = found["id_kind"]
        return found

    def create(self, config: dict[str, Any], kind: IdKind) -> None:
        self.call(schema.create_collection, self.client, self.name, config, kind, self.consistency)
        self.kind = kind

    def save_search_params(self, index_type: str, params: dict[str, int]) -> None:
        """Keep the search parameters of ``params`` with the collection (read back on opening)."""
        self.call(self.client.alter_collection_properties, self.name,
                  properties=schema.search_property(index_type, params))

    def flush(self, timeout: float) -> None:
        """Seal what was written, wait until the index covers it, and reload the collection."""
        self.call(self.client.flush, self.name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            index = self.call(self.client.describe_index, self.name, "vector")
            if int(index.get("pending_index_rows", 0)) == 0 and index.get("state") != "InProgress":
                break
            time.sleep(0.5)
        self.call(self.client.release_collection, self.name)
        self.call(self.client.load_collection, self.name)

    def counters(self) -> tuple[int, int]:
        """The next generated id and insertion number: above every one stored."""
        ids, seqs = [-1], [-1]
        for page in self.scan(None, ["seq"]):
            if self.kind is INT_IDS:
                ids.append(max(r["id"] for r in page))
            seqs.append(max(r["seq"] for r in page))
        return max(ids) + 1, max(seqs) + 1

    def drop(self) -> None:
        if self.call(self.client.has_collection, self.name):
            self.call(self.client.drop_collection, self.name)
        self.kind = None

    def count(self, expression: str | None) -> int:
        counted = self.call(self.client.query, self.name, filter=expression or "", output_fields=["count(*)"],
                            consistency_level=self.consistency)
        return int(counted[0]["count(*)"])

    def scan(self, expression: str | None, fields: list[str]) -> Iterator[list[dict[str, Any]]]:
        """Every row matching ``expression``, a page at a time in id order."""
        last: Any = None
        while True:
            after = None if last is None else f"id > {rows_.id_literal(last)}"
            where = " and ".join(f"({e})" for e in (expression, after) if e) or self.everything()
            page = self.call(self.client.query, self.name, filter=where, output_fields=["id", *fields],
                             limit=BATCH_ROWS, consistency_level=self.consistency)
            if page:
                yield page
            if len(page) < BATCH_ROWS:  # the last page: no request to find the next one empty
                return
            last = max(r["id"] for r in page)

    def all_rows(self, expression: str | None, fields: list[str]) -> list[dict[str, Any]]:
        return [r for page in self.scan(expression, fields) for r in page]

    def everything(self) -> str:
        """An expression true for every row (Milvus 2.3 has no ``true`` literal)."""
        return 'id != ""' if self.kind is STR_IDS else "id >= 0"

    def matching(self, tree: Any, plan: str | None | NotOnServer, fields: list[str],
                 within: str | None = None) -> list[dict[str, Any]]:
        """The rows (with ``fields``) matching the filter ``tree``: by the server's expression
        ``plan``, or by parag over every row where the plan is NotOnServer."""
        if not isinstance(plan, NotOnServer):
            return self.all_rows(" and ".join(f"({e})" for e in (within, plan) if e) or None, fields)
        found = self.all_rows(within, sorted({*fields, "meta", "doc", "has_doc"}))
        mask = client_mask(tree, [r["meta"] for r in found], [rows_.document(r) for r in found])
        return [r for r, keep in zip(found, mask.tolist()) if keep]

    def rows(self, targets: np.ndarray, fields: list[str]) -> dict[Any, dict[str, Any]]:
        """``{id: row}`` for ``targets``; IdNotFoundError naming those not stored."""
        found: dict[Any, dict[str, Any]] = {}
        if self.kind is not None:
            for start in range(0, len(targets), BATCH_ROWS):
                chunk = targets[start:start + BATCH_ROWS].tolist()
                got = self.call(self.client.query, self.name, filter=rows_.ids_in(chunk),
                                output_fields=["id", *fields], consistency_level=self.consistency)
                found.update((r["id"], r) for r in got)
        missing = [i for i in targets.tolist() if i not in found]
        if missing:
            raise IdNotFoundError(f"ids not in the store: {missing[:10]}")
        return found

    def has(self, id_: object) -> bool:
        """Whether ``id_`` (anything) is a stored id."""
        if self.kind is STR_IDS:
            fits = isinstance(id_, str) and 0 < len(id_) <= MAX_STR_ID_LENGTH and encodable(id_)
        else:
            fits = isinstance(id_, (int, np.integer)) and not isinstance(id_, bool) and 0 <= id_ <= MAX_ID
        return self.kind is not None and fits and bool(self.existing(np.asarray([id_], self.kind.dtype)))

    def existing(self, targets: np.ndarray, expression: str | None = None) -> list[Any]:
        """Those of ``targets`` that are stored (and match ``expression``), in the order given."""
        if self.kind is None:
            return []
        found = {r["id"] for start in range(0, len(targets), BATCH_ROWS)
                 for r in self.call(self.client.query, self.name,
                                    filter=" and ".join(f"({e})" for e in (
                                        expression, rows_.ids_in(targets[start:start + BATCH_ROWS].tolist())) if e),
                                    output_fields=["id"], consistency_level=self.consistency)}
        return [i for i in targets.tolist() if i in found]

    def write(self, upsert: bool, rows: list[dict[str, Any]]) -> None:
        """Insert (or upsert) ``rows``, a batch per request."""
        send = self.client.upsert if upsert else self.client.insert
        for start in range(0, len(rows), BATCH_ROWS):
            self.call(send, self.name, rows[start:start + BATCH_ROWS])

    def delete(self, ids: list[Any]) -> None:
        for start in range(0, len(ids), BATCH_ROWS):
            self.call(self.client.delete, self.name, filter=rows_.ids_in(ids[start:start + BATCH_ROWS]))
        if ids and self.consistency == "Session":
            # A 2.3 server returns no timestamp for a delete, so Session reads would not
            # wait for it: one Strong read makes the server apply it first.
            self.call(self.client.query, self.name, filter=rows_.ids_in(ids[:1]), output_fields=["id"],
                      consistency_level="Strong")

    def search(self, q: np.ndarray, limit: int, expression: str | None, metric: str,
               params: dict[str, int], wanted: frozenset[str]) -> list[list[tuple]]:
        """Milvus's top-``limit`` hits for each query, as :func:`milvus_rows.hit` tuples."""
        found = self.call(self.client.search, self.name, data=list(q), limit=limit, filter=expression or "",
                          output_fields=rows_.fields_for(wanted), consistency_level=self.consistency,
                          search_params={"metric_type": schema.MILVUS_METRIC[metric], "params": params})
        return [[rows_.hit(float(h["distance"]), {"id": h["id"], **h["entity"]}, wanted) for h in row]
                for row in found]
