"""MilvusVectorStore: the FAISSVectorStore API on a Milvus server (``pip install parag[milvus]``).

One Milvus collection per store (its fields: :mod:`parag.vectorstore.milvus_schema`), created
by the first write, whose ids fix its key: INT64 for int ids, VARCHAR for string ids, as the
first ids fix a FAISS store's kind. Where Milvus behaves differently, the store bridges it:

- Milvus inserts a second row for an existing primary key: ``add`` checks first and raises
  :class:`~parag.errors.DuplicateIdError`; ``upsert`` replaces.
- A filtered HNSW/IVF search can return fewer than ``k`` hits: a short answer is detected
  (against the number of matching vectors) and answered exactly by numpy over the matching
  vectors.
- Filters the server cannot evaluate exactly (``$document``, list operators, null / object
  values: :mod:`parag.vectorstore.milvus_filters`) are evaluated by parag over the
  collection's rows, then searched exactly by numpy: exact, but they read every row.
- Read-your-writes: Session consistency orders reads after this process's inserts, but a
  2.3 server returns no timestamp for a delete, so a delete ends with one Strong read.

Writes are not transactions on the server: a failure part-way through a large ``add``
can leave the first batches written (each batch is all or nothing).
See ``docs/milvus.md``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

import parag.vectorstore.milvus_rows as rows_
import parag.vectorstore.milvus_schema as schema
from parag._hybrid import hybridmethod
from parag._ids import INT_IDS, MAX_STR_ID_LENGTH, STR_IDS, Ids, IdKind, as_store_ids, check_kind, generated_str_ids
from parag._validation import MAX_ID, as_vectors, check_bool, check_choice, check_int, check_k, unit_rows
from parag.documents import check_documents
from parag.errors import (
    CollectionMismatchError,
    DuplicateIdError,
    IdNotFoundError,
    InvalidArgumentError,
    UncopyableStoreError,
    UnsupportedOperationError,
)
from parag.filters import Filter, parse
from parag.metadata import encode_metadata
from parag.vectorstore.base import Documents, GetResult, Metadata, SearchResult, VectorStore
from parag.vectorstore.milvus_filters import NotOnServer, client_mask, to_expression
from parag.vectorstore.milvus_rows import INCLUDABLE

MAX_TOPK = 16384  # Milvus's limit on k (and on a query's limit)
BATCH_ROWS = 4096  # rows per insert / query page
EVERYTHING = "id >= 0"  # the filter of every row (for a string key: see _everything)


class MilvusVectorStore(VectorStore):
    """A parag store in a Milvus collection: same methods, filters, scores and errors as
    :class:`~parag.vectorstore.FAISSVectorStore`.

    Parameters
    ----------
    dimension : int
    index_type : {"HNSW", "IVFFlat", "Flat"}, default "HNSW"
        Milvus's HNSW, IVF_FLAT and FLAT indexes.
    metric : {"cosine", "L2", "IP"}, default "cosine"
        Scores as in FAISSVectorStore: cosine similarity, squared L2, inner product.
    uri : str
        The server, e.g. ``"http://127.0.0.1:19530"``, or a Zilliz Cloud endpoint.
    token : str, optional
        ``"user:password"`` or an API key.
    collection : str, default "parag"
        Created by the first write when missing; an existing one must have this configuration.
    id_type : {"int", "str"}, optional
        The kind of ids; by default the first ids written decide (as in FAISSVectorStore).
    consistency : {"Session", "Strong", "Bounded", "Eventually"}, default "Session"
        Session: this process reads its own writes, at ~2 ms a search (Strong: ~200 ms).
    timeout : float, default 10
        Seconds to wait for the server on connecting and on each request.
    **params : int
        HNSW: ``M`` (32), ``ef_construction`` (40), ``ef_search`` (64). IVFFlat: ``nlist``
        (256), ``nprobe`` (64).
    """

    def __init__(
        self, dimension: int, index_type: str = "HNSW", metric: str = "cosine", *,
        uri: str = "http://127.0.0.1:19530", token: str | None = None, collection: str = "parag",
        id_type: str | None = None, consistency: str = "Session", timeout: float = 10.0,
        db_name: str | None = None, **params: int,
    ) -> None:
        dimension = schema.check_config(dimension, collection, consistency)
        index_type = check_choice(index_type, "index_type", schema.INDEX_TYPES)
        self._config = {"dimension": dimension, "index_type": index_type,
                        "metric": check_choice(metric, "metric", schema.METRICS),
                        "params": schema.check_params(index_type, params)}
        wanted_kind = schema.check_id_type(id_type)
        self._consistency, self._name, self._uri = consistency, collection, uri
        self._write_lock = threading.Lock()
        self._kind: IdKind | None = None  # None: no collection yet
        self._next_id = self._next_seq = 0
        self._client = schema.connect(uri, token, timeout, db_name)
        self._call(self._open, wanted_kind)
        if self._kind is None and wanted_kind is not None:
            self._create(wanted_kind)

    @classmethod
    def open(cls, collection: str = "parag", **connection: Any) -> MilvusVectorStore:
        """The store in an existing collection, with the configuration read from the server."""
        client = schema.connect(connection.get("uri", "http://127.0.0.1:19530"), connection.get("token"),
                                connection.get("timeout", 10.0), connection.get("db_name"))
        try:
            if not client.has_collection(collection):
                raise CollectionMismatchError(f"there is no collection {collection!r} on the server")
            config = schema.read_config(client, collection)
        finally:
            client.close()
        return cls(config["dimension"], config["index_type"], config["metric"], collection=collection,
                   id_type=config["id_kind"].name, **connection, **config["params"])

    # ----------------------------------------------------------------- properties

    @property
    def dimension(self) -> int:
        return self._config["dimension"]

    @property
    def metric(self) -> str:
        return self._config["metric"]

    @property
    def index_type(self) -> str:
        return self._config["index_type"]

    @property
    def params(self) -> dict[str, int]:
        return dict(self._config["params"])

    @property
    def collection(self) -> str:
        return self._name

    @property
    def is_trained(self) -> bool:
        return True  # Milvus builds each segment's index itself

    @property
    def read_only(self) -> bool:
        return False

    def __len__(self) -> int:
        return 0 if self._kind is None else self._count(None)

    def __contains__(self, id_: object) -> bool:
        if self._kind is None:
            return False
        if self._kind is STR_IDS:
            fits = isinstance(id_, str) and 0 < len(id_) <= MAX_STR_ID_LENGTH
        else:
            fits = isinstance(id_, (int, np.integer)) and not isinstance(id_, bool) and 0 <= id_ <= MAX_ID
        return fits and bool(self._existing(np.asarray([id_], self._kind.dtype)))

    def __repr__(self) -> str:
        params = "".join(f", {k}={v}" for k, v in self._config["params"].items())
        return (f"MilvusVectorStore(dimension={self.dimension}, index_type={self.index_type!r}, "
                f"metric={self.metric!r}, uri={self._uri!r}, collection={self._name!r}{params})")

    def __copy__(self) -> MilvusVectorStore:
        raise UncopyableStoreError("a MilvusVectorStore holds a server connection and cannot be pickled or copied; "
                                   "open the same collection again with MilvusVectorStore.open(collection, uri=...)")

    def __reduce_ex__(self, protocol: Any) -> Any:
        return self.__copy__()

    def flush(self, timeout: float = 600.0) -> None:
        """Seal what was written, wait until the index covers it, and reload the collection.

        Milvus searches new rows (growing segments) by brute force until they are sealed and
        indexed: call this after a bulk load, before measuring recall or speed.
        """
        with self._write_lock:
            if self._kind is None:
                return
            self._call(self._client.flush, self._name)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                index = self._call(self._client.describe_index, self._name, "vector")
                if int(index.get("pending_index_rows", 0)) == 0 and index.get("state") != "InProgress":
                    break
                time.sleep(0.5)
            self._call(self._client.release_collection, self._name)
            self._call(self._client.load_collection, self._name)

    def compact(self) -> None:
        """Ask the server to compact the collection now (drop deleted rows from its segments)."""
        with self._write_lock:
            if self._kind is not None:
                self._call(self._client.compact, self._name)

    def close(self) -> None:
        """Close the connection (the collection stays on the server)."""
        self._client.close()

    def drop(self) -> None:
        """Delete the collection and everything in it from the server."""
        with self._write_lock:
            if self._call(self._client.has_collection, self._name):
                self._call(self._client.drop_collection, self._name)
            self._kind = None

    # ----------------------------------------------------------------- writing

    def add(self, vectors: npt.ArrayLike, metadata: Metadata = None, ids: Ids | None = None,
            documents: Documents = None) -> list[int] | list[str]:
        """Add vectors (one 1-D or many 2-D) with metadata, ids and documents, as in
        FAISSVectorStore.add; documents of at most 65,535 bytes (Milvus's VARCHAR)."""
        x, dicts, docs = self._records(vectors, metadata, documents)
        given = None if ids is None else _ids_for(ids, len(x))
        with self._write_lock:
            kind = self._writable(given)
            if given is None and kind is STR_IDS:
                given = generated_str_ids(len(x))
            if given is None:
                if self._next_id + len(x) > MAX_ID:
                    raise InvalidArgumentError("the id space is exhausted: pass ids explicitly")
                given = np.arange(self._next_id, self._next_id + len(x), dtype=np.int64)
            else:
                taken = self._existing(given)
                if taken:
                    raise DuplicateIdError(f"ids already in the store: {taken[:10]}; delete them first or use upsert()")
            self._write(self._client.insert, given, x, dicts, docs)
        return given.tolist()

    def upsert(self, ids: Ids, vectors: npt.ArrayLike, metadata: Metadata = None,
               documents: Documents = None) -> list[int] | list[str]:
        """Insert vectors under ``ids``, replacing the vector, metadata and document of ids
        already stored (an upserted id becomes the newest)."""
        x, dicts, docs = self._records(vectors, metadata, documents)
        given = _ids_for(ids, len(x))
        with self._write_lock:
            self._writable(given)
            self._write(self._client.upsert, given, x, dicts, docs)
        return given.tolist()

    def update_metadata(self, ids: Ids, metadata: Metadata) -> None:
        """Replace the metadata of stored ids (vectors, documents and order stay); all must exist."""
        targets = as_store_ids(ids, self._kind)
        dicts = encode_metadata(metadata, len(targets)).dicts
        with self._write_lock:
            found = self._rows(targets, ["seq", "vector", "doc", "has_doc"])
            got = [found[i] for i in targets.tolist()]
            vectors = np.asarray([r["vector"] for r in got], np.float32).reshape(-1, self.dimension)
            seqs = np.asarray([r["seq"] for r in got], np.int64)
            self._write(self._client.upsert, targets, vectors, dicts, [rows_.document(r) for r in got], seqs)

    def delete(self, ids: Ids | None = None, *, filter: Filter | None = None,  # noqa: A002
               missing_ok: bool = False) -> int:
        """Delete vectors by id, or those matching ``filter`` (exactly one of the two); an
        unknown id is an error (nothing deleted) unless ``missing_ok``."""
        if (ids is None) == (filter is None):
            raise InvalidArgumentError(
                "delete needs exactly one of ids (the ids to delete) and filter (delete what matches), "
                f"got {'neither' if ids is None else 'both'}"
            )
        check_bool(missing_ok, "missing_ok")
        targets = None if ids is None else as_store_ids(ids, self._kind)
        tree = None if filter is None else parse(filter)
        plan = None if tree is None else _plan(tree)
        with self._write_lock:
            if self._kind is None:
                if targets is not None and len(targets) and not missing_ok:
                    raise IdNotFoundError(f"ids not in the store: {targets[:10].tolist()}")
                return 0
            if tree is not None:
                present = [r["id"] for r in self._matching(tree, plan, [])]
            else:
                present = self._existing(targets)
                if not missing_ok and len(present) < len(targets):
                    found = set(present)
                    raise IdNotFoundError(f"ids not in the store: {[i for i in targets.tolist() if i not in found][:10]}")
            for start in range(0, len(present), BATCH_ROWS):
                self._call(self._client.delete, self._name, filter=rows_.ids_in(present[start:start + BATCH_ROWS]))
            if present and self._consistency == "Session":
                # A 2.3 server returns no timestamp for a delete, so Session reads would not
                # wait for it: one Strong read makes the server apply it first.
                self._call(self._client.query, self._name, filter=rows_.ids_in(present[:1]), output_fields=["id"],
                           consistency_level="Strong")
        return len(present)

    # ----------------------------------------------------------------- reading

    def search(self, query: npt.ArrayLike, k: int = 10, *, filter: Filter | None = None,  # noqa: A002
               nprobe: int | None = None, ef_search: int | None = None,
               include: Sequence[str] = INCLUDABLE, rerank: int | None = None) -> SearchResult:
        """The ``k`` nearest vectors to one query (1-D) or each of a batch (2-D), as
        FAISSVectorStore.search: ``min(k, matching vectors)`` hits per query, best first.
        ``rerank`` applies to FAISS's compressed storage only: Milvus stores float32 vectors
        and scores them exactly, so it is an error here."""
        q, single = as_vectors(query, self.dimension, "query")
        k = check_k(k)
        if rerank is not None:
            raise InvalidArgumentError("rerank does not apply to a MilvusVectorStore: it stores float32 vectors "
                                       "and scores them exactly (rerank is for FAISSVectorStore's compressed storage)")
        overrides = {n: v for n, v in (("nprobe", nprobe), ("ef_search", ef_search)) if v is not None}
        search_params = schema.check_params(self.index_type, {**self._config["params"], **overrides})
        wanted = rows_.check_include(include)
        tree = None if filter is None else parse(filter)
        plan = None if tree is None else _plan(tree)
        q = unit_rows(q, "query") if self.metric == "cosine" else q
        if self._kind is None:
            hits: list[list[tuple]] = [[] for _ in q]
        elif isinstance(plan, NotOnServer):  # parag evaluates the filter: an exact search
            hits = self._exact(q, k, self._matching(tree, plan, ["vector", *rows_.fields_for(wanted)]), wanted)
        else:
            hits = self._search(q, k, plan, search_params, wanted)
            if any(len(r) < k for r in hits):
                hits = self._completed(q, k, plan, hits, wanted)
        parts = [[[h[j] for h in row] for row in hits] for j in range(4)]
        dist, ids, meta, docs = (p if single is False else p[0] for p in parts)
        return SearchResult(dist, ids, meta if "metadata" in wanted else None, docs if "documents" in wanted else None)

    def get(self, ids: Ids | None = None, *, filter: Filter | None = None,  # noqa: A002
            limit: int | None = None, offset: int = 0, include_vectors: bool = False,
            include: Sequence[str] = INCLUDABLE) -> GetResult:
        """Stored records, as FAISSVectorStore.get: of ``ids`` in the order asked (all must
        exist), of those matching ``filter``, or of every vector (oldest first); a page of
        them with ``limit`` / ``offset``."""
        targets = None if ids is None else as_store_ids(ids, self._kind, unique=False)
        tree = None if filter is None else parse(filter)
        plan = None if tree is None else _plan(tree)
        limit = None if limit is None else check_int(limit, "limit", 0)
        offset = check_int(offset, "offset", 0)
        check_bool(include_vectors, "include_vectors")
        wanted = rows_.check_include(include)
        fields = rows_.fields_for(wanted) + (["vector"] if include_vectors else [])
        if targets is not None:
            found = self._rows(np.unique(targets), fields) if len(targets) else {}
            picked = [found[i] for i in targets.tolist()]
            if tree is not None:
                allowed = {r["id"] for r in self._matching(tree, plan, [], rows_.ids_in(list(found)))}
                picked = [r for r in picked if r["id"] in allowed]
        elif self._kind is None:
            picked = []
        else:
            picked = sorted(self._matching(tree, plan, ["seq", *fields]) if tree is not None
                            else (r for page in self._scan(None, ["seq", *fields]) for r in page),
                            key=lambda r: r["seq"])
        picked = picked[offset: None if limit is None else offset + limit]
        vectors = None
        if include_vectors:
            vectors = np.asarray([r["vector"] for r in picked], np.float32).reshape(-1, self.dimension)
        return GetResult([r["id"] for r in picked], [r["meta"] for r in picked] if "metadata" in wanted else None,
                         vectors, [rows_.document(r) for r in picked] if "documents" in wanted else None)

    def ids(self) -> list[int] | list[str]:
        """Every stored id, oldest first (an upsert makes an id the newest)."""
        if self._kind is None:
            return []
        pairs = [(r["seq"], r["id"]) for page in self._scan(None, ["seq"]) for r in page]
        return [i for _, i in sorted(pairs)]

    # ----------------------------------------------------------------- persistence

    def save(self, path: Any) -> None:
        """Not offered: the server persists the collection itself."""
        raise UnsupportedOperationError(
            "a MilvusVectorStore is saved by the Milvus server as it is written; to keep a copy in a "
            "directory, copy it into a FAISSVectorStore with parag.migrate(store, faiss_store) and save that"
        )

    @hybridmethod
    def load(cls_or_self: Any, path: Any, **kwargs: Any) -> Any:
        """Not offered: open a collection with :meth:`open` instead."""
        raise UnsupportedOperationError(
            "a MilvusVectorStore is not loaded from a directory: MilvusVectorStore.open(collection, uri=...) "
            "opens a collection; parag.migrate(FAISSVectorStore.load(path), milvus_store) copies a saved store in"
        )

    # ----------------------------------------------------------------- internals

    def _call(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        """``function(*args, **kwargs)`` with pymilvus's errors as parag's."""
        try:
            return function(*args, **kwargs)
        except schema.pymilvus().MilvusException as e:
            raise schema.server_error(e, f"Milvus collection {self._name!r} at {self._uri}") from e

    def _open(self, wanted_kind: IdKind | None) -> None:
        """Adopt the collection if it exists (refusing another configuration)."""
        if not self._client.has_collection(self._name):
            return
        found = schema.read_config(self._client, self._name)
        schema.mismatch(self._name, found, self._config, wanted_kind)
        self._client.load_collection(self._name)
        self._kind = found["id_kind"]
        self._next_id, self._next_seq = self._counters()

    def _create(self, kind: IdKind) -> None:
        self._call(schema.create_collection, self._client, self._name, self._config, kind, self._consistency)
        self._kind = kind

    def _writable(self, given: np.ndarray | None) -> IdKind:
        """The store's id kind, checked against ``given``; the collection made on the first write."""
        if self._kind is None:
            self._call(self._open, None)  # made meanwhile by another store?
        kind = self._kind or (INT_IDS if given is None or given.dtype == INT_IDS.dtype else STR_IDS)
        if given is not None:
            check_kind(given, kind)
        if self._kind is None:
            self._create(kind)
        return kind

    def _records(self, vectors: Any, metadata: Any, documents: Any) -> tuple[np.ndarray, list, list]:
        x, _ = as_vectors(vectors, self.dimension)
        dicts = encode_metadata(metadata, len(x)).dicts
        docs = check_documents(documents, len(x))
        rows_.check_document_sizes(docs)
        return (unit_rows(x, "vectors") if self.metric == "cosine" else x), dicts, docs

    def _counters(self) -> tuple[int, int]:
        """The next generated id and insertion number: above every one stored."""
        ids, seqs = [-1], [-1]
        for page in self._scan(None, ["seq"]):
            if self._kind is INT_IDS:
                ids.append(max(r["id"] for r in page))
            seqs.append(max(r["seq"] for r in page))
        return max(ids) + 1, max(seqs) + 1

    def _write(self, send: Any, ids: np.ndarray, x: np.ndarray, dicts: list, docs: list,
               seqs: np.ndarray | None = None) -> None:
        """Insert or upsert rows, a batch per request; the caller holds the write lock."""
        if seqs is None:
            seqs = np.arange(self._next_seq, self._next_seq + len(ids), dtype=np.int64)
        for start in range(0, len(ids), BATCH_ROWS):
            end = start + BATCH_ROWS
            self._call(send, self._name, rows_.rows(ids[start:end], seqs[start:end], x[start:end],
                                                    dicts[start:end], docs[start:end]))
        if len(ids) and self._kind is INT_IDS:
            self._next_id = max(self._next_id, int(ids.max()) + 1)
        self._next_seq = max(self._next_seq, int(seqs.max(initial=-1)) + 1)

    def _count(self, expression: str | None) -> int:
        counted = self._call(self._client.query, self._name, filter=expression or "", output_fields=["count(*)"],
                             consistency_level=self._consistency)
        return int(counted[0]["count(*)"])

    def _scan(self, expression: str | None, fields: list[str]) -> Iterator[list[dict[str, Any]]]:
        """Every row matching ``expression``, a page at a time in id order."""
        last: Any = None
        while True:
            after = None if last is None else f"id > {rows_.id_literal(last)}"
            where = " and ".join(f"({e})" for e in (expression, after) if e) or self._everything()
            page = self._call(self._client.query, self._name, filter=where, output_fields=["id", *fields],
                              limit=BATCH_ROWS, consistency_level=self._consistency)
            if not page:
                return
            yield page
            last = max(r["id"] for r in page)

    def _everything(self) -> str:
        return 'id != ""' if self._kind is STR_IDS else EVERYTHING

    def _matching(self, tree: Any, plan: Any, fields: list[str], within: str | None = None) -> list[dict[str, Any]]:
        """The rows (with ``fields``) that match the filter ``tree``: by the server's expression
        ``plan``, or by parag over every row where the plan is NotOnServer."""
        if not isinstance(plan, NotOnServer):
            where = " and ".join(f"({e})" for e in (within, plan) if e) or None
            return [r for page in self._scan(where, fields) for r in page]
        found = [r for page in self._scan(within, sorted({*fields, "meta", "doc", "has_doc"})) for r in page]
        mask = client_mask(tree, [r["meta"] for r in found], [rows_.document(r) for r in found])
        return [r for r, keep in zip(found, mask.tolist()) if keep]

    def _rows(self, targets: np.ndarray, fields: list[str]) -> dict[Any, dict[str, Any]]:
        """``{id: row}`` for ``targets``; IdNotFoundError naming those not stored."""
        found: dict[Any, dict[str, Any]] = {}
        if self._kind is not None:
            for start in range(0, len(targets), BATCH_ROWS):
                chunk = targets[start:start + BATCH_ROWS].tolist()
                got = self._call(self._client.query, self._name, filter=rows_.ids_in(chunk),
                                 output_fields=["id", *fields], consistency_level=self._consistency)
                found.update((r["id"], r) for r in got)
        missing = [i for i in targets.tolist() if i not in found]
        if missing:
            raise IdNotFoundError(f"ids not in the store: {missing[:10]}")
        return found

    def _existing(self, targets: np.ndarray) -> list[Any]:
        """Those of ``targets`` that are stored, in the order given."""
        if self._kind is None:
            return []
        found = {r["id"] for chunk in range(0, len(targets), BATCH_ROWS)
                 for r in self._call(self._client.query, self._name,
                                     filter=rows_.ids_in(targets[chunk:chunk + BATCH_ROWS].tolist()),
                                     output_fields=["id"], consistency_level=self._consistency)}
        return [i for i in targets.tolist() if i in found]

    def _search(self, q: np.ndarray, k: int, expression: str | None, params: dict[str, int],
                wanted: frozenset[str]) -> list[list[tuple]]:
        limit = min(k, MAX_TOPK)
        milvus_params: dict[str, int] = {}
        if self.index_type == "HNSW":
            milvus_params["ef"] = min(max(params["ef_search"], limit), schema.PARAMS["HNSW"]["ef_search"][2])
        elif self.index_type == "IVFFlat":
            milvus_params["nprobe"] = min(params["nprobe"], self._config["params"]["nlist"])
        found = self._call(self._client.search, self._name, data=list(q), limit=limit, filter=expression or "",
                           output_fields=rows_.fields_for(wanted), consistency_level=self._consistency,
                           search_params={"metric_type": schema.MILVUS_METRIC[self.metric], "params": milvus_params})
        return [[rows_.hit(float(h["distance"]), {"id": h["id"], **h["entity"]}, wanted) for h in row]
                for row in found]

    def _completed(self, q: np.ndarray, k: int, expression: str | None, hits: list[list[tuple]],
                   wanted: frozenset[str]) -> list[list[tuple]]:
        """``hits`` with every short answer (fewer than ``min(k, matches)``) made exact."""
        want = min(k, self._count(expression))
        short = [i for i, r in enumerate(hits) if len(r) < want]
        if short:
            where = None if expression is None else expression
            found = [r for page in self._scan(where, ["vector", *rows_.fields_for(wanted)]) for r in page]
            for i, row in zip(short, self._exact(q[short], want, found, wanted)):
                hits[i] = row
        return hits

    def _exact(self, q: np.ndarray, k: int, found: list[dict[str, Any]], wanted: frozenset[str]) -> list[list[tuple]]:
        """The exact top-k of the rows ``found``, scored by numpy as FAISS scores them."""
        if not found:
            return [[] for _ in q]
        x = np.asarray([r["vector"] for r in found], np.float32)
        scores, order = rows_.exact_top_k(q, x, k, self.metric)
        return [[rows_.hit(float(s), found[j], wanted) for s, j in zip(srow, orow)]
                for srow, orow in zip(scores.tolist(), order.tolist())]


def _ids_for(ids: Ids, n: int) -> np.ndarray:
    """``ids`` checked as unique ids of one kind, one for each of ``n`` vectors."""
    given = as_store_ids(ids, None)
    if len(given) != n:
        raise InvalidArgumentError(f"ids has {len(given)} items but there are {n} vectors")
    return given


def _plan(tree: Any) -> str | None | NotOnServer:
    """The server expression of a parsed filter, or NotOnServer: parag evaluates it."""
    try:
        return to_expression(tree)
    except NotOnServer as e:
        return e
