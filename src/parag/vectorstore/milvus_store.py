"""MilvusVectorStore: the FAISSVectorStore API on a Milvus server (``pip install parag[milvus]``).

One Milvus collection per store (its fields: :mod:`parag.vectorstore.milvus_schema`), created
by the first write, whose ids fix its key: INT64 for int ids, VARCHAR for string ids, as the
first ids fix a FAISS store's kind. Where Milvus behaves differently, the store bridges it:

- Milvus inserts a second row for an existing primary key: ``add`` checks first and raises
  :class:`~parag.errors.DuplicateIdError`; ``upsert`` replaces.
- A filtered HNSW/IVF search starves (and can return fewer than ``k`` hits): as in the FAISS
  store, a selective filter is answered exactly, a broad one with ``ef`` / ``nprobe`` widened,
  and a short answer is completed (:mod:`parag.vectorstore.milvus_search`).
- Filters the server cannot evaluate exactly (``$document``, ``$substring``, null / object
  values: :mod:`parag.vectorstore.milvus_filters`) are evaluated by parag over the
  collection's rows, then searched exactly by numpy: exact, but they read every row.
- Read-your-writes: Session consistency orders reads after this process's inserts, but a
  2.3 server returns no timestamp for a delete, so a delete ends with one Strong read.

Writes are not transactions: a failure part-way through a large ``add`` can leave its first
batches written (each all or nothing). See ``docs/milvus.md``.

The reads (``search``, ``get``, ``ids``, ``len``, ``in``) are
:class:`~parag.vectorstore.milvus_reads.MilvusReads`'s; this module adds construction, the
writes and the lifecycle.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import numpy.typing as npt

import parag.tuning as tuning
import parag.vectorstore.milvus_rows as rows_
import parag.vectorstore.milvus_schema as schema
import parag.vectorstore.milvus_tune as milvus_tune
from parag._hybrid import hybridmethod
from parag._locks import RWLock
from parag._ids import INT_IDS, STR_IDS, Ids, IdKind, as_store_ids, check_kind, generated_str_ids
from parag._validation import check_bool, check_choice
from parag.errors import DuplicateIdError, IdNotFoundError, InvalidArgumentError, UncopyableStoreError, UnsupportedOperationError
from parag.filters import Filter, parse
from parag.tuning import TuneResult
from parag.vectorstore.base import Closed, Documents, Metadata, VectorStore
from parag.vectorstore.milvus_collection import Collection
from parag.vectorstore.milvus_filters import server_plan
from parag.vectorstore.milvus_reads import MilvusReads

# What a closed store holds in place of its collection and configuration: every method and
# property reads one of them first, so any use raises StoreClosedError.
_CLOSED: Any = Closed(
    "this store is closed (close(), or the end of its with block): open its collection again with "
    "MilvusVectorStore.open(collection, uri=...)"
)


class MilvusVectorStore(MilvusReads, VectorStore):
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
    client : pymilvus.MilvusClient, optional
        A connection to share (many stores, one connection); ``uri`` then only names the
        server in messages, and :meth:`close` leaves the client open.
    **params : int
        HNSW: ``M`` (32), ``ef_construction`` (40), ``ef_search`` (64). IVFFlat: ``nlist``
        (256), ``nprobe`` (64).
    """

    def __init__(
        self, dimension: int, index_type: str = "HNSW", metric: str = "cosine", *,
        uri: str = "http://127.0.0.1:19530", token: str | None = None, collection: str = "parag",
        id_type: str | None = None, consistency: str = "Session", timeout: float = 10.0,
        db_name: str | None = None, client: Any = None, **params: int,
    ) -> None:
        dimension = schema.check_config(dimension, collection, consistency)
        index_type = check_choice(index_type, "index_type", schema.INDEX_TYPES)
        self._config = {"dimension": dimension, "index_type": index_type,
                        "metric": check_choice(metric, "metric", schema.METRICS),
                        "params": schema.check_params(index_type, params)}
        self._given = frozenset(params)  # a search parameter not given is the collection's tuned one, if any
        wanted_kind = schema.check_id_type(id_type)
        self._name, self._uri = collection, uri
        self._write_lock = threading.Lock()
        self._lock = RWLock()  # reads share it; close takes it alone, so reads under way finish first
        self._next_id = self._next_seq = 0
        self._own_client = client is None
        client = schema.connect(uri, token, timeout, db_name) if client is None else schema.check_client(client)
        self._server = Collection(client, collection, uri, consistency)
        self._adopt(wanted_kind)
        if self._server.kind is None and wanted_kind is not None:
            self._server.create(self._config, wanted_kind)

    @classmethod
    def open(cls, collection: str = "parag", **connection: Any) -> MilvusVectorStore:
        """The store in an existing collection, with the configuration read from the server."""
        config = schema.config_on_server(collection, connection.get("uri", "http://127.0.0.1:19530"),
                                          connection.get("token"), connection.get("timeout", 10.0),
                                          connection.get("db_name"))
        return cls(config["dimension"], config["index_type"], config["metric"], collection=collection,
                   id_type=config["id_kind"].name, **connection, **config["params"])

    # ----------------------------------------------------------------- properties

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

    def __repr__(self) -> str:
        if self.closed:
            return "MilvusVectorStore(closed)"
        params = "".join(f", {k}={v}" for k, v in self._config["params"].items())
        return (f"MilvusVectorStore(dimension={self.dimension}, index_type={self.index_type!r}, "
                f"metric={self.metric!r}, uri={self._uri!r}, collection={self._name!r}{params})")

    def __copy__(self) -> MilvusVectorStore:
        raise UncopyableStoreError("a MilvusVectorStore holds a server connection and cannot be pickled or copied; "
                                   "open the same collection again with MilvusVectorStore.open(collection, uri=...)")

    def __reduce_ex__(self, protocol: Any) -> Any:  # no pickling either
        return self.__copy__()

    def flush(self, timeout: float = 600.0) -> None:
        """Seal what was written, wait until the index covers it, and reload the collection:
        Milvus searches new rows by brute force until then. Call it after a bulk load."""
        with self._write_lock:
            if self._server.kind is not None:
                self._server.flush(timeout)

    def compact(self) -> None:
        """Ask the server to compact the collection now (drop deleted rows from its segments)."""
        with self._write_lock:
            if self._server.kind is not None:
                self._server.call(self._server.client.compact, self._name)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._server is _CLOSED

    def close(self) -> None:
        """Close the connection (a ``client`` given to the constructor stays open, and the
        collection stays on the server); afterwards every method and property but ``closed``
        and ``collection`` raises StoreClosedError. Closing a closed store does nothing; a
        ``with`` block closes the store at its end (as :meth:`VectorStore.close` shows). Reads
        and writes under way finish first (as in FAISSVectorStore); later ones raise StoreClosedError."""
        with self._write_lock, self._lock.write():
            server, self._server, self._config = self._server, _CLOSED, _CLOSED
            if server is not _CLOSED and self._own_client:
                server.client.close()

    def drop(self) -> None:
        """Delete the collection and everything in it from the server."""
        with self._write_lock:
            self._server.drop()

    # ----------------------------------------------------------------- writing

    def add(self, vectors: npt.ArrayLike, metadata: Metadata = None, ids: Ids | None = None,
            documents: Documents = None) -> list[int] | list[str]:
        """Add vectors (one 1-D or many 2-D) with metadata, ids and documents, as in
        FAISSVectorStore.add; documents of at most 65,535 bytes (Milvus's VARCHAR)."""
        x, dicts, docs = rows_.records(vectors, metadata, documents, self.dimension, self.metric)
        given = None if ids is None else rows_.ids_for(ids, len(x))
        with self._write_lock:
            kind = self._writable(given)
            if given is None and kind is STR_IDS:
                given = generated_str_ids(len(x))
            if given is None:
                if self._next_id + len(x) > rows_.MAX_ID + 1:
                    raise InvalidArgumentError("the id space is exhausted: pass ids explicitly")
                given = np.arange(self._next_id, self._next_id + len(x), dtype=np.int64)
            else:
                taken = self._server.existing(given)
                if taken:
                    raise DuplicateIdError(f"ids already in the store: {taken[:10]}; delete them first or use upsert()")
            self._write(False, given, x, dicts, docs)
        return given.tolist()

    def upsert(self, ids: Ids, vectors: npt.ArrayLike, metadata: Metadata = None,
               documents: Documents = None) -> list[int] | list[str]:
        """Insert vectors under ``ids``, replacing the vector, metadata and document of ids
        already stored (an upserted id becomes the newest)."""
        x, dicts, docs = rows_.records(vectors, metadata, documents, self.dimension, self.metric)
        given = rows_.ids_for(ids, len(x))
        with self._write_lock:
            self._writable(given)
            self._write(True, given, x, dicts, docs)
        return given.tolist()

    def update_metadata(self, ids: Ids, metadata: Metadata) -> None:
        """Replace the metadata of stored ids (vectors, documents and order stay); all must exist."""
        targets = as_store_ids(ids, self._server.kind)
        dicts = rows_.metadata_dicts(metadata, len(targets))
        with self._write_lock:
            found = self._server.rows(targets, ["seq", "vector", "doc", "has_doc"])
            got = [found[i] for i in targets.tolist()]
            vectors = np.asarray([r["vector"] for r in got], np.float32).reshape(-1, self.dimension)
            seqs = np.asarray([r["seq"] for r in got], np.int64)
            self._write(True, targets, vectors, dicts, [rows_.document(r) for r in got], seqs)

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
        targets = None if ids is None else as_store_ids(ids, self._server.kind)
        tree = None if filter is None else parse(filter)
        plan = None if tree is None else server_plan(tree)
        with self._write_lock:
            if self._server.kind is None:
                if targets is not None and len(targets) and not missing_ok:
                    raise IdNotFoundError(f"ids not in the store: {targets[:10].tolist()}")
                return 0
            if tree is not None:
                present = [r["id"] for r in self._server.matching(tree, plan, [])]
            else:
                present = self._server.existing(targets)
                if not missing_ok and len(present) < len(targets):
                    found = set(present)
                    raise IdNotFoundError(f"ids not in the store: {[i for i in targets.tolist() if i not in found][:10]}")
            self._server.delete(present)
        return len(present)

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

    def tune(self, queries: npt.ArrayLike | None = None, target_recall: float = 0.95, k: int = 10, *,
             n_samples: int = 200, seed: int = 0) -> TuneResult:
        """Set the smallest ``ef_search`` (HNSW) or ``nprobe`` (IVFFlat) that reaches a
        recall, as FAISSVectorStore.tune, and save it with the collection.

        Measures recall@k of the store's searches against the exact answer (numpy over every
        row's vector, read from the server a page at a time) for the values 1, 2, 3, 4, 6,
        8, 12... (from ``k`` for HNSW) and makes the first that reaches ``target_recall`` the
        store's default; :meth:`open` reads it back, as does a store constructed without it. A
        Flat collection, or one of fewer than 1,024 rows (searched exhaustively by the server),
        has nothing to tune. Flush first (:meth:`flush`): Milvus searches rows it has not indexed yet by
        brute force, which every value would find exactly. This store's writes wait meanwhile;
        another client's writes do not. The arguments and the :class:`~parag.tuning.TuneResult`
        are :meth:`FAISSVectorStore.tune`'s (``rerank`` is None: Milvus stores float32 vectors).
        """
        q, target_recall, k, n_samples, seed = tuning.check_arguments(
            queries, target_recall, k, n_samples, seed, self.dimension, self.metric)
        with self._write_lock, self._lock.reading:
            result = milvus_tune.tune(self._server, self._config, q, target_recall, k, n_samples, seed)
            if result.param is not None:
                params = {**self._config["params"], result.param: result.value}
                self._server.save_search_params(self.index_type, params)
                self._config["params"] = params
        return result

    # ----------------------------------------------------------------- internals

    def _adopt(self, wanted_kind: IdKind | None) -> None:
        """Open the collection if it exists (refusing another configuration), with the search
        parameters ``tune`` chose for it where this store was not given them."""
        found = self._server.open(self._config, wanted_kind)
        if found is not None:
            self._next_id, self._next_seq = self._server.counters()
            tuned = {n: v for n, v in found["tuned"].items() if n not in self._given}
            self._config["params"] = {**self._config["params"], **tuned}

    def _writable(self, given: np.ndarray | None) -> IdKind:
        """The store's id kind, checked against ``given``; the collection made on the first write."""
        if self._server.kind is None:
            self._adopt(None)  # made meanwhile by another store?
        kind = self._server.kind or (INT_IDS if given is None or given.dtype == INT_IDS.dtype else STR_IDS)
        if given is not None:
            check_kind(given, kind)
        if self._server.kind is None:
            self._server.create(self._config, kind)
        return kind

    def _write(self, upsert: bool, ids: np.ndarray, x: np.ndarray, dicts: list, docs: list,
               seqs: np.ndarray | None = None) -> None:
        """Insert or upsert records; the caller holds the write lock."""
        if seqs is None:
            seqs = np.arange(self._next_seq, self._next_seq + len(ids), dtype=np.int64)
        rows = rows_.rows(ids, seqs, x, dicts, docs)
        # The counters move before the write: one that fails part way, or is interrupted while
        # the server may still take it, can leave rows stored, whose ids and insertion numbers
        # must not be generated again (Milvus would keep a second row under the same key).
        if len(ids) and self._server.kind is INT_IDS:
            self._next_id = max(self._next_id, int(ids.max()) + 1)
        self._next_seq = max(self._next_seq, int(seqs.max(initial=-1)) + 1)
        self._server.write(upsert, rows)
