"""MilvusVectorStore: the FAISSVectorStore API on a Milvus server (``pip install parag[milvus]``).

One Milvus collection per store: an INT64 primary key ``id``, an INT64 ``seq`` (insertion
order, so ``ids()`` lists ids oldest first as the FAISS store does), a FLOAT_VECTOR
``vector`` and a JSON ``meta``. Where Milvus behaves differently, the store bridges it:

- Milvus inserts a second row for an existing primary key: ``add`` checks first and raises
  :class:`~parag.errors.DuplicateIdError`; ``upsert`` replaces.
- A filtered HNSW/IVF search can return fewer than ``k`` hits: a short answer is detected
  (against the number of matching vectors) and answered exactly by numpy over the matching
  vectors (or, for many matches, by a search widened to the whole index).
- Read-your-writes: Session consistency orders reads after this process's inserts, but a
  2.3 server returns no timestamp for a delete, so a delete ends with one Strong read.

Writes are not transactions on the server: a failure part-way through a large ``add``
can leave the first batches written (each batch is all or nothing).
See ``docs/milvus.md``.
"""

from __future__ import annotations

import numbers
import re
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from parag._hybrid import hybridmethod
from parag._validation import MAX_ID, as_ids, as_vectors, check_bool, check_choice, check_int, check_k, unit_rows
from parag.errors import (
    CollectionMismatchError,
    DuplicateIdError,
    IdNotFoundError,
    InvalidArgumentError,
    InvalidTypeError,
    MissingDependencyError,
    ServerAuthenticationError,
    ServerConnectionError,
    ServerError,
    UncopyableStoreError,
    UnsupportedOperationError,
)
from parag.filters import Filter, parse
from parag.metadata import encode_metadata
from parag.vectorstore.base import GetResult, SearchResult, VectorStore
from parag.vectorstore.milvus_filters import to_expression

INDEX_TYPES = {"flat": "Flat", "ivfflat": "IVFFlat", "ivf_flat": "IVFFlat", "hnsw": "HNSW"}
METRICS = {"l2": "L2", "ip": "IP", "cosine": "cosine"}
MILVUS_INDEX = {"Flat": "FLAT", "IVFFlat": "IVF_FLAT", "HNSW": "HNSW"}
MILVUS_METRIC = {"L2": "L2", "IP": "IP", "cosine": "COSINE"}
# name: (default, smallest, largest, Milvus's build parameter or None for a search one)
PARAMS: dict[str, dict[str, tuple[int, int, int, str | None]]] = {
    "Flat": {},
    "IVFFlat": {"nlist": (256, 1, 65536, "nlist"), "nprobe": (64, 1, 65536, None)},
    "HNSW": {"M": (32, 2, 2048, "M"), "ef_construction": (40, 1, 2**31 - 1, "efConstruction"),
             "ef_search": (64, 1, 32768, None)},
}
CONSISTENCY = ("Strong", "Session", "Bounded", "Eventually")
MAX_TOPK = 16384  # Milvus's limit on k (and on a query's limit)
EXACT_MATCH_LIMIT = 50_000  # a short filtered answer is rescored by numpy up to this many matches
BATCH_ROWS = 4096  # rows per insert / query page
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")


def _pymilvus() -> Any:
    try:
        import pymilvus
    except ImportError:
        raise MissingDependencyError("MilvusVectorStore needs pymilvus: pip install 'parag[milvus]'") from None
    return pymilvus


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
        Created when missing; an existing one must have this configuration.
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
        consistency: str = "Session", timeout: float = 10.0, db_name: str | None = None, **params: int,
    ) -> None:
        if isinstance(dimension, bool) or not isinstance(dimension, numbers.Integral):
            raise InvalidTypeError(f"dimension must be a positive int, got {dimension!r}")
        if not 0 < dimension <= 32768:
            raise InvalidArgumentError(f"dimension must be an int from 1 to 32768 (Milvus's limit), got {dimension}")
        self._dimension = int(dimension)
        self._index_type = check_choice(index_type, "index_type", INDEX_TYPES)
        self._metric = check_choice(metric, "metric", METRICS)
        self._params = _check_params(self._index_type, params)
        if consistency not in CONSISTENCY:
            raise InvalidArgumentError(f"consistency must be one of {list(CONSISTENCY)}, got {consistency!r}")
        if not isinstance(collection, str) or not _NAME.fullmatch(collection):
            raise InvalidArgumentError(
                f"collection must be a Milvus collection name (letters, digits, _; not starting with a digit), got {collection!r}"
            )
        self._consistency, self._name, self._uri = consistency, collection, uri
        self._write_lock = threading.Lock()
        self._client = _connect(uri, token, timeout, db_name)
        self._call(self._open_or_create)
        self._next_id, self._next_seq = self._call(self._counters)

    @classmethod
    def open(cls, collection: str = "parag", **connection: Any) -> MilvusVectorStore:
        """The store in an existing collection, with the configuration read from the server."""
        client = _connect(connection.get("uri", "http://127.0.0.1:19530"), connection.get("token"),
                          connection.get("timeout", 10.0), connection.get("db_name"))
        try:
            if not client.has_collection(collection):
                raise CollectionMismatchError(f"there is no collection {collection!r} on the server")
            config = _read_config(client, collection)
        finally:
            client.close()
        return cls(config.pop("dimension"), config.pop("index_type"), config.pop("metric"),
                   collection=collection, **connection, **config)

    # ----------------------------------------------------------------- properties

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def metric(self) -> str:
        return self._metric

    @property
    def index_type(self) -> str:
        return self._index_type

    @property
    def params(self) -> dict[str, int]:
        return dict(self._params)

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
        rows = self._call(self._client.query, self._name, filter="", output_fields=["count(*)"],
                          consistency_level=self._consistency)
        return int(rows[0]["count(*)"])

    def __contains__(self, id_: object) -> bool:
        if isinstance(id_, bool) or not isinstance(id_, numbers.Integral) or not 0 <= id_ <= MAX_ID:
            return False
        return bool(self._existing(np.asarray([id_], np.int64)))

    def __repr__(self) -> str:
        params = "".join(f", {k}={v}" for k, v in self._params.items())
        return (f"MilvusVectorStore(dimension={self._dimension}, index_type={self._index_type!r}, "
                f"metric={self._metric!r}, uri={self._uri!r}, collection={self._name!r}{params})")

    def __copy__(self) -> MilvusVectorStore:
        raise UncopyableStoreError("a MilvusVectorStore holds a server connection and cannot be pickled or copied; "
                                   "open the same collection again with MilvusVectorStore.open(collection, uri=...)")

    def __reduce_ex__(self, protocol: Any) -> Any:
        return self.__copy__()

    def flush(self, timeout: float = 600.0) -> None:
        """Seal what was written, wait until the index covers it, and reload the collection.

        Milvus searches new rows (growing segments) by brute force, and on a default server
        through a temporary index, until they are sealed and indexed: call this after a bulk
        load, before measuring recall or speed. Searches are answered throughout.
        """
        import time

        with self._write_lock:
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
            self._call(self._client.compact, self._name)

    def close(self) -> None:
        """Close the connection (the collection stays on the server)."""
        self._client.close()

    def drop(self) -> None:
        """Delete the collection and everything in it from the server."""
        with self._write_lock:
            self._call(self._client.drop_collection, self._name)

    # ----------------------------------------------------------------- writing

    def add(
        self,
        vectors: npt.ArrayLike,
        metadata: list[dict[str, Any] | None] | dict[str, Any] | None = None,
        ids: npt.ArrayLike | None = None,
    ) -> list[int]:
        """Add vectors (one 1-D or many 2-D) with metadata; ids as in FAISSVectorStore.add."""
        x, _ = as_vectors(vectors, self._dimension)
        dicts = encode_metadata(metadata, len(x)).dicts
        given = None if ids is None else as_ids(ids, count=len(x))
        x = self._normalised(x, "vectors")
        with self._write_lock:
            if given is None:
                if self._next_id + len(x) > MAX_ID:
                    raise InvalidArgumentError("the id space is exhausted: pass ids explicitly")
                new_ids = np.arange(self._next_id, self._next_id + len(x), dtype=np.int64)
            else:
                taken = self._existing(given)
                if taken:
                    raise DuplicateIdError(f"ids already in the store: {taken[:10]}; delete them first or use upsert()")
                new_ids = given
            self._write(self._client.insert, new_ids, x, dicts)
        return new_ids.tolist()

    def upsert(
        self,
        ids: npt.ArrayLike,
        vectors: npt.ArrayLike,
        metadata: list[dict[str, Any] | None] | dict[str, Any] | None = None,
    ) -> list[int]:
        """Insert vectors under ``ids``, replacing the vector and metadata of ids already stored."""
        x, _ = as_vectors(vectors, self._dimension)
        new_ids = as_ids(ids, count=len(x))
        dicts = encode_metadata(metadata, len(x)).dicts
        x = self._normalised(x, "vectors")
        with self._write_lock:
            self._write(self._client.upsert, new_ids, x, dicts)
        return new_ids.tolist()

    def update_metadata(
        self, ids: npt.ArrayLike, metadata: list[dict[str, Any] | None] | dict[str, Any] | None
    ) -> None:
        """Replace the metadata of stored ids (the vectors and their order stay); all must exist."""
        targets = as_ids(ids)
        dicts = encode_metadata(metadata, len(targets)).dicts
        with self._write_lock:
            rows = self._rows(targets, ["seq", "vector"])
            vectors = np.asarray([rows[i]["vector"] for i in targets.tolist()], np.float32).reshape(-1, self._dimension)
            seqs = np.asarray([rows[i]["seq"] for i in targets.tolist()], np.int64)
            self._write(self._client.upsert, targets, vectors, dicts, seqs)

    def delete(self, ids: npt.ArrayLike, *, missing_ok: bool = False) -> int:
        """Delete vectors by id; an unknown id is an error (nothing deleted) unless ``missing_ok``."""
        targets = as_ids(ids)
        check_bool(missing_ok, "missing_ok")
        with self._write_lock:
            present = self._existing(targets)
            if not missing_ok and len(present) < len(targets):
                found = set(present)
                raise IdNotFoundError(f"ids not in the store: {[i for i in targets.tolist() if i not in found][:10]}")
            for start in range(0, len(present), BATCH_ROWS):
                self._call(self._client.delete, self._name, filter=f"id in {present[start:start + BATCH_ROWS]}")
            if present and self._consistency == "Session":
                # A 2.3 server returns no timestamp for a delete, so Session reads would not
                # wait for it: one Strong read (~200 ms) makes the server apply it first.
                self._call(self._client.query, self._name, filter=f"id in {present[:1]}", output_fields=["id"],
                           consistency_level="Strong")
        return len(present)

    # ----------------------------------------------------------------- reading

    def search(
        self,
        query: npt.ArrayLike,
        k: int = 10,
        *,
        filter: Filter | None = None,  # noqa: A002 - the name every vector store uses
        nprobe: int | None = None,
        ef_search: int | None = None,
    ) -> SearchResult:
        """The ``k`` nearest vectors to one query (1-D) or each of a batch (2-D), as
        FAISSVectorStore.search: ``min(k, matching vectors)`` hits per query, best first."""
        q, single = as_vectors(query, self._dimension, "query")
        k = check_k(k)
        overrides = {n: v for n, v in (("nprobe", nprobe), ("ef_search", ef_search)) if v is not None}
        search_params = _check_params(self._index_type, {**self._params, **overrides})
        expression = None if filter is None else to_expression(parse(filter))
        q = self._normalised(q, "query")
        rows = self._search(q, k, expression, search_params)
        if any(len(r) < k for r in rows):
            rows = self._completed(q, k, expression, rows)
        dist = [[d for d, _, _ in r] for r in rows]
        ids = [[i for _, i, _ in r] for r in rows]
        meta = [[m for _, _, m in r] for r in rows]
        return SearchResult(dist[0], ids[0], meta[0]) if single else SearchResult(dist, ids, meta)

    def get(self, ids: npt.ArrayLike, *, include_vectors: bool = False) -> GetResult:
        """``GetResult(ids, metadata, vectors)`` of ``ids`` in the order asked (all must exist)."""
        targets = as_ids(ids, unique=False)
        check_bool(include_vectors, "include_vectors")
        rows = self._rows(np.unique(targets), ["meta", "vector"] if include_vectors else ["meta"])
        order = targets.tolist()
        vectors = None
        if include_vectors:
            vectors = np.asarray([rows[i]["vector"] for i in order], np.float32).reshape(-1, self._dimension)
        return GetResult(order, [rows[i]["meta"] for i in order], vectors)

    def ids(self) -> list[int]:
        """Every stored id, oldest first (an upsert makes an id the newest)."""
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
        exception = _pymilvus().MilvusException
        try:
            return function(*args, **kwargs)
        except exception as e:
            raise _server_error(e, f"Milvus collection {self._name!r} at {self._uri}") from e

    def _open_or_create(self) -> None:
        if self._client.has_collection(self._name):
            found = _read_config(self._client, self._name)
            wanted = {"dimension": self._dimension, "index_type": self._index_type, "metric": self._metric}
            wanted.update({n: v for n, v in self._params.items() if PARAMS[self._index_type][n][3]})
            different = {n: (found.get(n), v) for n, v in wanted.items() if found.get(n) != v}
            if different:
                detail = ", ".join(f"{n} {f!r} (asked {w!r})" for n, (f, w) in different.items())
                raise CollectionMismatchError(
                    f"collection {self._name!r} exists with {detail}; open it with MilvusVectorStore.open"
                    f"({self._name!r}, uri=...) or use another collection name"
                )
            self._client.load_collection(self._name)
            return
        pymilvus = _pymilvus()
        schema = self._client.create_schema(auto_id=False, enable_dynamic_field=False,
                                            description="parag " + orjson.dumps(self._params).decode())
        schema.add_field("id", pymilvus.DataType.INT64, is_primary=True)
        schema.add_field("seq", pymilvus.DataType.INT64)
        schema.add_field("vector", pymilvus.DataType.FLOAT_VECTOR, dim=self._dimension)
        schema.add_field("meta", pymilvus.DataType.JSON)
        index = self._client.prepare_index_params()
        build = {spec[3]: self._params[n] for n, spec in PARAMS[self._index_type].items() if spec[3]}
        index.add_index(field_name="vector", index_type=MILVUS_INDEX[self._index_type],
                        metric_type=MILVUS_METRIC[self._metric], params=build)
        self._client.create_collection(self._name, schema=schema, index_params=index,
                                       consistency_level=self._consistency)

    def _counters(self) -> tuple[int, int]:
        """The next generated id and insertion number: above every one stored."""
        ids, seqs = [-1], [-1]
        for page in self._scan(None, ["seq"]):
            ids.append(max(r["id"] for r in page))
            seqs.append(max(r["seq"] for r in page))
        return max(ids) + 1, max(seqs) + 1

    def _normalised(self, x: np.ndarray, name: str) -> np.ndarray:
        return unit_rows(x, name) if self._metric == "cosine" else x

    def _write(self, send: Any, ids: np.ndarray, x: np.ndarray, dicts: list, seqs: np.ndarray | None = None) -> None:
        """Insert or upsert rows, a batch per request; the caller holds the write lock."""
        if seqs is None:
            seqs = np.arange(self._next_seq, self._next_seq + len(ids), dtype=np.int64)
        for start in range(0, len(ids), BATCH_ROWS):
            end = start + BATCH_ROWS
            rows = [{"id": i, "seq": s, "vector": v, "meta": m}
                    for i, s, v, m in zip(ids[start:end].tolist(), seqs[start:end].tolist(), x[start:end], dicts[start:end])]
            self._call(send, self._name, rows)
        self._next_id = max(self._next_id, int(ids.max()) + 1)
        self._next_seq = max(self._next_seq, int(seqs.max()) + 1)

    def _scan(self, expression: str | None, fields: list[str]) -> Iterator[list[dict[str, Any]]]:
        """Every row matching ``expression``, a page at a time in id order."""
        last = -1
        while True:
            where = f"id > {last}" if expression is None else f"({expression}) and id > {last}"
            page = self._call(self._client.query, self._name, filter=where, output_fields=["id", *fields],
                              limit=BATCH_ROWS, consistency_level=self._consistency)
            if not page:
                return
            yield page
            last = max(r["id"] for r in page)

    def _rows(self, targets: np.ndarray, fields: list[str]) -> dict[int, dict[str, Any]]:
        """``{id: row}`` for ``targets``; IdNotFoundError naming those not stored."""
        rows: dict[int, dict[str, Any]] = {}
        for start in range(0, len(targets), BATCH_ROWS):
            chunk = targets[start:start + BATCH_ROWS].tolist()
            found = self._call(self._client.query, self._name, filter=f"id in {chunk}", output_fields=["id", *fields],
                               consistency_level=self._consistency)
            rows.update((r["id"], r) for r in found)
        missing = [i for i in targets.tolist() if i not in rows]
        if missing:
            raise IdNotFoundError(f"ids not in the store: {missing[:10]}")
        return rows

    def _existing(self, targets: np.ndarray) -> list[int]:
        """Those of ``targets`` that are stored, in the order given."""
        found: set[int] = set()
        for start in range(0, len(targets), BATCH_ROWS):
            chunk = targets[start:start + BATCH_ROWS].tolist()
            rows = self._call(self._client.query, self._name, filter=f"id in {chunk}", output_fields=["id"],
                              consistency_level=self._consistency)
            found.update(r["id"] for r in rows)
        return [i for i in targets.tolist() if i in found]

    def _search(self, q: np.ndarray, k: int, expression: str | None, params: dict[str, int]) -> list[list[tuple]]:
        limit = min(k, MAX_TOPK)
        milvus_params: dict[str, int] = {}
        if self._index_type == "HNSW":
            milvus_params["ef"] = min(max(params["ef_search"], limit), PARAMS["HNSW"]["ef_search"][2])
        elif self._index_type == "IVFFlat":
            milvus_params["nprobe"] = min(params["nprobe"], self._params["nlist"])
        hits = self._call(self._client.search, self._name, data=[v for v in q], limit=limit,
                          filter=expression or "", output_fields=["meta"], consistency_level=self._consistency,
                          search_params={"metric_type": MILVUS_METRIC[self._metric], "params": milvus_params})
        return [[(float(h["distance"]), int(h["id"]), h["entity"]["meta"]) for h in row] for row in hits]

    def _completed(self, q: np.ndarray, k: int, expression: str | None, rows: list[list[tuple]]) -> list[list[tuple]]:
        """``rows`` with every short answer (fewer than ``min(k, matches)`` hits) made complete."""
        where = expression or ""
        counted = self._call(self._client.query, self._name, filter=where, output_fields=["count(*)"],
                             consistency_level=self._consistency)
        want = min(k, int(counted[0]["count(*)"]))
        short = [i for i, r in enumerate(rows) if len(r) < want]
        if not short:
            return rows
        if want > MAX_TOPK or int(counted[0]["count(*)"]) <= EXACT_MATCH_LIMIT:
            exact = self._exact(q[short], want, expression)
        else:  # many matches: the whole index, as wide as Milvus searches
            exact = self._search(q[short], want, expression, {"ef_search": 32768, "nprobe": 65536})
        for i, row in zip(short, exact):
            rows[i] = row
        return rows

    def _exact(self, q: np.ndarray, k: int, expression: str | None) -> list[list[tuple]]:
        """The exact top-k among the matching vectors, scored by numpy as FAISS scores them."""
        found = [r for page in self._scan(expression, ["vector", "meta"]) for r in page]
        if not found:
            return [[] for _ in q]
        x = np.asarray([r["vector"] for r in found], np.float32)
        if self._metric == "L2":
            scores = (q.astype(np.float64) ** 2).sum(1)[:, None] - 2 * (q.astype(np.float64) @ x.T.astype(np.float64)) \
                + (x.astype(np.float64) ** 2).sum(1)[None, :]
            order = np.argsort(scores, axis=1, kind="stable")[:, :k]
        else:
            scores = q.astype(np.float64) @ x.T.astype(np.float64)
            order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return [[(float(np.float32(scores[row, j])), int(found[j]["id"]), found[j]["meta"]) for j in order[row]]
                for row in range(len(q))]


def _check_params(index_type: str, params: dict[str, Any]) -> dict[str, int]:
    """``params`` checked against the index type's table, defaults filled in."""
    table = PARAMS[index_type]
    unknown = sorted(set(params) - set(table))
    if unknown:
        raise InvalidArgumentError(
            f"{unknown[0]!r} does not apply to a {index_type} store; its parameters: {list(table) or 'none'}"
        )
    checked = {}
    for name, (default, low, high, _) in table.items():
        checked[name] = check_int(params.get(name, default), name, low, high)
    return checked


def _connect(uri: Any, token: Any, timeout: Any, db_name: Any) -> Any:
    if not isinstance(uri, str) or not uri:
        raise InvalidTypeError(f"uri must be a server address such as 'http://127.0.0.1:19530', got {uri!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise InvalidArgumentError(f"timeout must be a positive number of seconds, got {timeout!r}")
    pymilvus = _pymilvus()
    extra = {} if db_name is None else {"db_name": db_name}
    try:
        return pymilvus.MilvusClient(uri=uri, token=token or "", timeout=timeout, **extra)
    except pymilvus.MilvusException as e:
        raise _server_error(e, f"Milvus at {uri}") from e


def _server_error(e: Exception, where: str) -> Exception:
    text = str(getattr(e, "message", "") or e)
    causes, cause = [], e.__cause__ or e.__context__
    while cause is not None and len(causes) < 5:  # pymilvus wraps gRPC's UNAUTHENTICATED
        causes.append(str(cause))
        cause = cause.__cause__ or cause.__context__
    lowered = " ".join([text, *causes]).lower()
    if "unauthenticated" in lowered or "auth check failure" in lowered:
        return ServerAuthenticationError(f"{where} refused the credentials; check the token ('user:password' or an API key)")
    if any(w in lowered for w in ("auth", "credential", "password", "token", "unauthenticated", "permission")):
        return ServerAuthenticationError(f"{where} refused the credentials: {text}; check the token ('user:password' or an API key)")
    if any(w in lowered for w in ("connect", "unavailable", "deadline", "timeout", "timed out")):
        return ServerConnectionError(f"cannot reach {where}: {text}; check the uri and that the server is running")
    return ServerError(f"{where} failed: {text}")


def _read_config(client: Any, name: str) -> dict[str, Any]:
    """Dimension, index type, metric and build parameters of a parag collection on the server."""
    info = client.describe_collection(name)
    fields = {f["name"]: f for f in info["fields"]}
    pymilvus = _pymilvus()
    expected = {"id": pymilvus.DataType.INT64, "seq": pymilvus.DataType.INT64,
                "vector": pymilvus.DataType.FLOAT_VECTOR, "meta": pymilvus.DataType.JSON}
    if any(n not in fields or fields[n]["type"] != t for n, t in expected.items()) or not fields["id"].get("is_primary"):
        has = ", ".join(f"{n} {f['type'].name}" for n, f in fields.items())
        raise CollectionMismatchError(
            f"collection {name!r} is not a parag collection (it needs fields id INT64 primary key, seq INT64, "
            f"vector FLOAT_VECTOR, meta JSON; it has {has})"
        )
    index = client.describe_index(name, "vector")
    by_milvus = {v: k for k, v in MILVUS_INDEX.items()}
    metric = {v: k for k, v in MILVUS_METRIC.items()}.get(index.get("metric_type"))
    index_type = by_milvus.get(index.get("index_type"))
    if metric is None or index_type is None:
        raise CollectionMismatchError(
            f"collection {name!r} has a {index.get('index_type')} index with metric {index.get('metric_type')}; "
            f"parag reads {sorted(by_milvus)} with {sorted(metric for metric in MILVUS_METRIC.values())}"
        )
    config: dict[str, Any] = {"dimension": int(fields["vector"]["params"]["dim"]), "index_type": index_type, "metric": metric}
    for name_, (_, _, _, built) in PARAMS[index_type].items():
        if built and built in index:
            config[name_] = int(index[built])
    description = info.get("description", "")
    if description.startswith("parag "):
        saved = orjson.loads(description[6:])
        config.update({n: v for n, v in saved.items() if n in PARAMS[index_type] and n not in config})
    return config
