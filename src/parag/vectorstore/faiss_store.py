"""FAISSVectorStore: a vector store on FAISS that keeps ids and metadata in step with the index.

The index types are ``"Flat"`` (exact), ``"IVFFlat"`` and ``"HNSW"`` (approximate); the
metrics ``"L2"``, ``"IP"`` and ``"cosine"``. See :class:`FAISSVectorStore`.
"""

from __future__ import annotations

import io
import numbers
from pathlib import Path
from typing import Any, NamedTuple

import faiss
import numpy as np
import numpy.typing as npt

import parag
from parag import persistence
from parag._faiss_header import MAX_DIMENSION, check_index_file
from parag._faiss_integrity import check_index_structure
from parag._load_checks import check_metadata_lines, check_npy_header
from parag._locks import RWLock
from parag._slots import SlotMap, bitmap_selector
from parag._validation import MAX_ID, as_ids, as_vectors, check_bool, check_k
from parag.filters import Filter, compile_filter
from parag.errors import (
    CorruptStoreError,
    InvalidArgumentError,
    InvalidTypeError,
    NotAStoreError,
    ReadOnlyStoreError,
    UncopyableStoreError,
)
from parag.metadata import Encoded, MetadataStore, encode_metadata
from parag.vectorstore._faiss_index import (
    FAISS_METRIC,
    SEARCH_PARAMS,
    all_vectors,
    check_param,
    exact_index,
    is_ivf,
    ivf_ready_to_train,
    new_index,
    parse_config,
    search_parameters,
    threads_for,
    train_ivf,
    widened,
    without_dead,
)
from parag.vectorstore.base import SearchResult, VectorStore, hybridmethod

# Deleted vectors stay in the index as tombstones (HNSW cannot remove any) until they make
# up this share of it; the write that crosses it rebuilds the index without them. Searches
# skip tombstones through a selector, which costs Flat and IVF their fastest paths, and
# rebuilding those is cheap; rebuilding HNSW is not, and its recall holds to 80% deleted.
COMPACT_AT_DEAD_SHARE = {"Flat": 0.1, "IVFFlat": 0.1, "HNSW": 0.5}
# A filter that allows few vectors is answered by exact search over just those (recall 1.0,
# and cheaper than an ANN search the filter starves) while that scores at most this many
# vector components (allowed vectors x dimension): about a millisecond, 2,600 vectors at
# 384 dimensions. Measured on 59k-100k x 384 stores: beyond it HNSW's widened graph search
# and IVF's widened probe (which scores only allowed vectors) are faster. Flat is always exact.
EXACT_FILTER_BUDGET = 1_000_000


class GetResult(NamedTuple):
    """What :meth:`FAISSVectorStore.get` returns: ids, their metadata, and their vectors
    (an ``(n, dimension)`` float32 array with ``include_vectors=True``, else None)."""

    ids: list[int]
    metadata: list[dict[str, Any]]
    vectors: np.ndarray | None


class FAISSVectorStore(VectorStore):
    """A FAISS index whose vectors carry int ids and JSON metadata, saved to a directory.

    Parameters
    ----------
    dimension : int
        Length of every vector.
    index_type : {"Flat", "IVFFlat", "HNSW"}, default "Flat"
        Case-insensitive. ``"FlatL2"`` and ``"FlatIP"`` are Flat with that metric.
        ``"Flat"`` searches exactly. ``"IVFFlat"`` searches exactly until it holds
        ``39 * nlist`` vectors, then trains on them and searches ``nprobe`` of its ``nlist``
        clusters. ``"HNSW"`` searches a graph.
    metric : {"L2", "IP", "cosine"}, default "L2"
        Scores are squared Euclidean distances for L2 (smaller is closer), inner products for
        IP and cosine similarities for cosine (larger is closer). Cosine normalises stored and
        query vectors to unit length.
    **params : int
        IVFFlat: ``nlist`` (256), ``nprobe`` (64). HNSW: ``M`` (32), ``ef_construction`` (40),
        ``ef_search`` (64). The defaults reach recall@10 >= 0.95 on real sentence embeddings.

    Notes
    -----
    Thread safety: any number of threads may call ``search``, ``get``, ``len`` and ``save``
    at once; ``add``, ``delete``, ``upsert``, ``update_metadata``, ``compact`` and ``load``
    wait for them and run alone.

    Examples
    --------
    >>> import numpy as np
    >>> from parag.vectorstore import FAISSVectorStore
    >>> store = FAISSVectorStore(dimension=4, metric="cosine")
    >>> store.add(np.eye(4), [{"n": i} for i in range(4)])
    [0, 1, 2, 3]
    >>> dist, ids, meta = store.search([1, 0.1, 0, 0], k=2)
    >>> ids, meta[0]
    ([0, 1], {'n': 0})
    """

    def __init__(
        self, dimension: int, index_type: str = "Flat", metric: str | None = None, **params: int
    ) -> None:
        if isinstance(dimension, bool) or not isinstance(dimension, numbers.Integral):
            raise InvalidTypeError(f"dimension must be a positive int, got {dimension!r}")
        if not 0 < dimension <= MAX_DIMENSION:
            raise InvalidArgumentError(f"dimension must be an int from 1 to {MAX_DIMENSION} (FAISS's limit), got {dimension}")
        self._dimension = int(dimension)
        self._index_type, self._metric, self._params = parse_config(index_type, metric, params)
        self._index = new_index(self._index_type, self._dimension, self._metric, self._params)
        self._slots = SlotMap()
        self._meta = MetadataStore()
        self._next_id = 0
        self._read_only = False
        self._lock = RWLock()

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
        """The index parameters in force (a copy)."""
        return dict(self._params)

    @property
    def is_trained(self) -> bool:
        """False for an IVFFlat store still answering exactly from its first vectors."""
        return self._index_type != "IVFFlat" or is_ivf(self._index)

    @property
    def read_only(self) -> bool:
        """True for a store loaded with ``mmap=True``."""
        return self._read_only

    def __len__(self) -> int:
        return self._slots.n_live

    def __contains__(self, id_: object) -> bool:
        return isinstance(id_, numbers.Integral) and not isinstance(id_, bool) and int(id_) in self._slots

    def __repr__(self) -> str:
        params = "".join(f", {k}={v}" for k, v in self._params.items())
        state = "" if self.is_trained else ", trained=False"
        return (
            f"{type(self).__name__}(dimension={self._dimension}, index_type={self._index_type!r}, "
            f"metric={self._metric!r}{params}, count={len(self)}{state})"
        )

    # ----------------------------------------------------------------- copies

    def __copy__(self) -> FAISSVectorStore:
        """An independent store: ``copy.copy`` and ``copy.deepcopy`` both copy the index,
        ids and metadata (sharing a FAISS index between two stores would let one change
        the other)."""
        with self._lock.read():
            clone = object.__new__(type(self))
            clone.__dict__.update(vars(self))
            clone._index = faiss.clone_index(self._index)
            clone._slots = SlotMap(self._slots.slot_ids.copy())
            clone._meta = MetadataStore.from_jsonl(self._meta.to_jsonl(), self._slots.n_slots)
            clone._params = dict(self._params)
            clone._lock = RWLock()
        return clone

    def __deepcopy__(self, memo: dict[int, Any]) -> FAISSVectorStore:
        return self.__copy__()

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise UncopyableStoreError(
            f"a {type(self).__name__} cannot be pickled: parag never pickles (loading a pickle can "
            "run code). Save it with store.save(path) and load it with FAISSVectorStore.load(path), "
            "or copy it in memory with copy.deepcopy(store)"
        )

    # ----------------------------------------------------------------- writing

    def add(
        self,
        vectors: npt.ArrayLike,
        metadata: list[dict[str, Any] | None] | dict[str, Any] | None = None,
        ids: npt.ArrayLike | None = None,
    ) -> list[int]:
        """Add one vector (1-D) or many (2-D); return their ids.

        Parameters
        ----------
        vectors : array-like, shape (dimension,) or (n, dimension)
            Real numbers; converted once to float32.
        metadata : list of dict, dict or None
            One JSON-serialisable dict per vector (a single dict for a single vector).
            None, or a None item, stores ``{}``.
        ids : array-like of int, optional
            Non-negative, unique, not yet stored. By default ids are generated from 0 upward,
            above every id the store has ever held, and never reused.

        Examples
        --------
        >>> store = FAISSVectorStore(dimension=2)
        >>> store.add([[0, 1], [1, 0]], [{"tag": "a"}, {"tag": "b"}])
        [0, 1]
        >>> store.add([2, 2], {"tag": "c"}, ids=[10])
        [10]
        """
        x, _ = as_vectors(vectors, self._dimension)
        encoded = encode_metadata(metadata, len(x))
        given = None if ids is None else self._ids_for(ids, len(x))
        x = self._normalised(x, "vectors")
        with self._lock.write():
            self._check_writable()
            if given is None:
                if self._next_id + len(x) > MAX_ID:
                    raise InvalidArgumentError("the id space is exhausted: pass ids explicitly")
                new_ids = np.arange(self._next_id, self._next_id + len(x), dtype=np.int64)
            else:
                self._slots.check_new(given)
                new_ids = given
            self._append(x, new_ids, encoded)
        return new_ids.tolist()

    def delete(self, ids: npt.ArrayLike, *, missing_ok: bool = False) -> int:
        """Delete vectors by id; return how many were deleted.

        An unknown id is an error (and nothing is deleted) unless ``missing_ok=True``.
        Deleted ids never come back in results and are never reused by generated ids.

        Examples
        --------
        >>> store = FAISSVectorStore(dimension=2)
        >>> store.add([[0, 1], [1, 0]])
        [0, 1]
        >>> store.delete([0])
        1
        >>> store.ids()
        [1]
        """
        targets = as_ids(ids)
        check_bool(missing_ok, "missing_ok")
        with self._lock.write():
            self._check_writable()
            if missing_ok:
                targets = np.asarray([i for i in targets.tolist() if i in self._slots], np.int64)
            self._kill(self._slots.slots_of(targets))
        return len(targets)

    def upsert(
        self,
        ids: npt.ArrayLike,
        vectors: npt.ArrayLike,
        metadata: list[dict[str, Any] | None] | dict[str, Any] | None = None,
    ) -> list[int]:
        """Insert vectors under ``ids``, replacing the vector and metadata of ids already stored."""
        x, _ = as_vectors(vectors, self._dimension)
        new_ids = self._ids_for(ids, len(x))
        encoded = encode_metadata(metadata, len(x))
        x = self._normalised(x, "vectors")
        with self._lock.write():
            self._check_writable()
            present = [i for i in new_ids.tolist() if i in self._slots]
            old_slots = self._slots.slots_of(np.asarray(present, np.int64))
            self._append(x, new_ids, encoded, replacing=old_slots)
        return new_ids.tolist()

    def update_metadata(
        self, ids: npt.ArrayLike, metadata: list[dict[str, Any] | None] | dict[str, Any] | None
    ) -> None:
        """Replace the metadata of stored ids (the vectors stay); all ids must exist."""
        targets = as_ids(ids)
        encoded = encode_metadata(metadata, len(targets))
        with self._lock.write():
            self._check_writable()
            self._meta.set(self._slots.slots_of(targets).tolist(), encoded)

    def compact(self) -> None:
        """Rebuild the index without deleted vectors now (writes do it when 10% of a Flat or
        IVFFlat index, or 50% of an HNSW index, is deleted)."""
        with self._lock.write():
            self._check_writable()
            self._compact()

    def tune(
        self,
        queries: npt.ArrayLike | None = None,
        target_recall: float = 0.95,
        k: int = 10,
        *,
        n_samples: int = 200,
        seed: int = 0,
    ) -> parag.tuning.TuneResult:
        """Set the smallest ``ef_search`` (HNSW) or ``nprobe`` (IVFFlat) that reaches a recall.

        Measures recall@k of this store's search against its exact search over the live
        vectors, for ``ef_search`` / ``nprobe`` = 1, 2, 3, 4, 6, 8, 12, 16, 24... upward,
        one query at a time, and makes the first value that reaches ``target_recall`` the
        store's default (saved with it). A Flat store, or an IVFFlat store not trained yet,
        is exact: nothing to tune. See :mod:`parag.tuning`.

        Parameters
        ----------
        queries : array-like, shape (n_queries, dimension), optional
            Queries like the real ones (best). By default ``n_samples`` stored vectors,
            drawn with ``seed``, each measured on its neighbours other than itself.
        target_recall : float in (0, 1]
        k : int
            Recall is measured on the top ``k``.

        Returns
        -------
        TuneResult
            ``(param, value, recall, reached, settings)``: the value now in force, its
            recall@k, whether it reaches the target (if no value does, the best recall is
            chosen), and ``(value, recall, latency_ms)`` for every value measured, with the
            median single-query latency.

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> store = FAISSVectorStore(dimension=16, index_type="HNSW")
        >>> _ = store.add(rng.standard_normal((2000, 16)))
        >>> result = store.tune(target_recall=0.9)
        >>> result.reached, store.params["ef_search"] == result.value
        (True, True)
        """
        from parag.tuning import tune_store

        return tune_store(self, queries, target_recall, k, n_samples=n_samples, seed=seed)

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
        """The ``k`` nearest vectors to one query, or to each query of a batch.

        Parameters
        ----------
        query : array-like, shape (dimension,) or (n_queries, dimension)
        k : int
            Hits per query. Fewer come back only when fewer than ``k`` vectors match.
        filter : dict or callable, optional
            Only vectors whose metadata matches (see :mod:`parag.filters`), e.g.
            ``{"source": "a", "year": {"$gte": 2020}}``. A pre-filter: the result is the
            top-k among the matching vectors, never a top-k that lost its non-matching hits.
        nprobe, ef_search : int, optional
            Override the index's parameter for this call only (IVFFlat / HNSW).

        Returns
        -------
        SearchResult
            ``(distances, ids, metadata)``, best first. For a 1-D query three lists of
            ``min(k, number of matching vectors)`` items (all stored vectors match when there
            is no filter); for a 2-D batch a list of such lists per query.
            Metadata dicts are copies: changing them does not change the store.

        Examples
        --------
        >>> store = FAISSVectorStore(dimension=2)
        >>> store.add([[0, 0], [3, 4]], [{"p": "origin"}, {"p": "far"}])
        [0, 1]
        >>> store.search([3, 3], k=1)
        SearchResult(distances=[1.0], ids=[1], metadata=[{'p': 'far'}])
        """
        q, single = as_vectors(query, self._dimension, "query")
        k = check_k(k)
        overrides = self._search_overrides(nprobe=nprobe, ef_search=ef_search)
        mask = None if filter is None else compile_filter(filter)
        q = self._normalised(q, "query")
        with self._lock.read():
            allowed = None if mask is None else mask(self._meta)
            distances, slots = self._search_slots(q, k, overrides, allowed)
            return self._results(distances, slots, single)

    def get(self, ids: npt.ArrayLike, *, include_vectors: bool = False) -> GetResult:
        """Metadata (and, with ``include_vectors``, the stored vectors) of ``ids``, in order.

        Vectors of a cosine store come back normalised, as stored.

        Examples
        --------
        >>> store = FAISSVectorStore(dimension=2)
        >>> store.add([[0, 1], [1, 0]], [{"tag": "a"}, {"tag": "b"}])
        [0, 1]
        >>> store.get([1]).metadata
        [{'tag': 'b'}]
        """
        targets = as_ids(ids, unique=False)
        check_bool(include_vectors, "include_vectors")
        with self._lock.read():
            slots = self._slots.slots_of(targets)
            vectors = self._index.reconstruct_batch(slots) if include_vectors else None
            return GetResult(targets.tolist(), self._meta.get_many(slots.tolist()), vectors)

    def ids(self) -> list[int]:
        """Every stored id, oldest slot first."""
        with self._lock.read():
            return self._slots.live_ids().tolist()

    # ----------------------------------------------------------------- persistence

    def save(self, path: str | Path) -> None:
        """Write the store to the directory ``path``, atomically.

        The directory holds the complete old store until the new one is complete and
        fsynced, then the complete new one (``docs/format.md`` describes the files and the
        commit protocol). Every byte is hashed (XXH3-128) as it is written. Searches may run
        while a save does; writes wait for it.

        Raises
        ------
        NotAStoreError
            ``path`` is a file, or a non-empty directory that is not a parag store: nothing
            of it is touched.
        StoreWriteError
            Writing failed (disk full, read-only file system...); also an OSError. The old
            store, if any, is left as it was, and a directory the save created is removed.
        """
        with self._lock.read():
            index = self._index
            body = {
                "kind": type(self).__name__,
                "parag_version": parag.__version__,
                "dimension": self._dimension,
                "index_type": self._index_type,
                "metric": self._metric,
                "params": self._params,
                "count": len(self),
                "n_slots": self._slots.n_slots,
                "next_id": self._next_id,
                "trained": self.is_trained,
            }
            slot_ids = np.ascontiguousarray(self._slots.slot_ids)
            persistence.save(
                path,
                body,
                {
                    "index": ("faiss", lambda f: faiss.write_index(index, faiss.PyCallbackIOWriter(f.write))),
                    "ids": ("npy", lambda f: np.save(f, slot_ids, allow_pickle=False)),
                    "metadata": ("jsonl", lambda f: f.write(self._meta.to_jsonl())),
                },
            )

    @hybridmethod
    def load(
        target: type[FAISSVectorStore] | FAISSVectorStore,  # noqa: N805 - class or instance
        path: str | Path,
        *,
        verify: bool = True,
        mmap: bool = False,
    ) -> FAISSVectorStore:
        """Load a saved store.

        ``FAISSVectorStore.load(path)`` returns a new store; ``store.load(path)`` replaces
        the contents of ``store`` and returns it.

        Parameters
        ----------
        path : str or Path
            A directory written by :meth:`save`.
        verify : bool, default True
            Check the checksum of every block of every file before FAISS or parag parses
            it. False skips hashing and checks only sizes and counts: faster on large
            stores, but damaged bytes may then load silently or fail later.
        mmap : bool, default False
            Map the index file into memory instead of reading it: the index takes almost
            no RAM (the OS pages it in as searches touch it) and the store is read-only:
            ``add``, ``delete``, ``upsert``, ``update_metadata`` and ``compact`` raise
            ReadOnlyStoreError (FAISS would abort the process if a mapped index were
            modified). Searching, ``get``, ``save`` and ``tune`` work. With ``verify`` the
            index file is read once to check it before it is mapped.

        Raises
        ------
        StoreNotFoundError, NotAStoreError, CorruptStoreError, UnsupportedFormatError
            See :mod:`parag.persistence` and ``docs/format.md``: the message says what is
            wrong and in which file.
        """
        check_bool(mmap, "mmap")
        with persistence.load(path, verify=verify) as files:
            store = _restore(files, mmap)
        if isinstance(target, type):
            return store
        with target._lock.write():
            target.__dict__.update({k: v for k, v in vars(store).items() if k != "_lock"})
        return target

    # ----------------------------------------------------------------- internals

    def _ids_for(self, ids: npt.ArrayLike, n: int) -> np.ndarray:
        """``ids`` checked as unique non-negative ints, one for each of ``n`` vectors."""
        given = as_ids(ids)
        if len(given) != n:
            raise InvalidArgumentError(f"ids has {len(given)} items but there are {n} vectors")
        return given

    def _normalised(self, x: np.ndarray, name: str) -> np.ndarray:
        """Unit-length copies of ``x`` for a cosine store (``x`` itself otherwise)."""
        if self._metric != "cosine":
            return x
        with np.errstate(over="ignore"):
            norms = np.linalg.norm(x, axis=1, keepdims=True)
        if not (norms.all() and np.isfinite(norms).all()):
            row = int(np.flatnonzero((norms == 0) | ~np.isfinite(norms))[0])
            raise InvalidArgumentError(
                f"{name} row {row} has length {norms[row, 0]} in float32: its cosine similarity "
                "is undefined (all zeros) or cannot be computed (too large); scale it first"
            )
        return x / norms

    def _search_overrides(self, **given: int | None) -> dict[str, int]:
        allowed = SEARCH_PARAMS[self._index_type]
        overrides = {}
        for name, value in given.items():
            if value is None:
                continue
            if name not in allowed:
                raise InvalidArgumentError(
                    f"{name} does not apply to a {self._index_type} store; "
                    f"search parameters it takes: {list(allowed) or 'none'}"
                )
            overrides[name] = check_param(name, value)
        return overrides

    def _check_writable(self) -> None:
        if self._read_only:
            raise ReadOnlyStoreError(
                "this store was loaded with mmap=True and is read-only; load it without mmap to change it"
            )

    def _append(
        self, x: np.ndarray, ids: np.ndarray, encoded: Encoded, replacing: np.ndarray | None = None
    ) -> None:
        """Add vectors under new slots (killing ``replacing`` slots); caller holds the write lock."""
        with threads_for(len(x), self._index.ntotal + len(x)):
            self._index.add(x)
        if replacing is not None and len(replacing):
            self._slots.kill(replacing)
            self._meta.kill(replacing.tolist())
        self._slots.append(ids)
        self._meta.append(encoded)
        self._next_id = max(self._next_id, int(ids.max()) + 1)
        if self._index_type == "IVFFlat" and not is_ivf(self._index) and ivf_ready_to_train(len(self), self._params):
            self._index = train_ivf(self._index, self._params, self._slots.live_mask())
        self._compact_if_needed()

    def _kill(self, slots: np.ndarray) -> None:
        self._slots.kill(slots)
        self._meta.kill(slots.tolist())
        self._compact_if_needed()

    def _compact_if_needed(self) -> None:
        if self._slots.n_dead > COMPACT_AT_DEAD_SHARE[self._index_type] * self._slots.n_slots:
            self._compact()

    def _compact(self) -> None:
        if not self._slots.n_dead:
            return
        keep = self._slots.slot_ids >= 0
        self._index = without_dead(self._index, keep, self._index_type, self._metric, self._params)
        self._slots.compact()
        self._meta.keep(keep)

    def _search_slots(
        self, q: np.ndarray, k: int, overrides: dict[str, int], allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Distances and slots of the top-k live vectors for each query row.

        ``allowed`` is a filter's mask over slots (None: every live slot). k is cut to the
        number of vectors allowed, so every row is complete.
        """
        n = self._slots.n_live
        if allowed is not None:
            if self._slots.n_dead:
                allowed &= self._slots.live_mask()
            n = int(np.count_nonzero(allowed))
            if n == self._slots.n_live:
                allowed = None  # the filter excludes nothing: search as if unfiltered
        sel = self._slots.live_selector() if allowed is None else None
        k = min(k, n)
        if k == 0:
            return np.empty((len(q), 0), np.float32), np.empty((len(q), 0), np.int64)
        with threads_for(len(q), self._index.ntotal):
            if allowed is not None:
                if n <= self._exact_filter_limit():
                    return self._search_subset(q, k, np.flatnonzero(allowed))
                sel, _bits = bitmap_selector(allowed)
                overrides = widened(self._index, overrides, n / self._slots.n_live, k)
            distances, slots = self._index.search(q, k, params=search_parameters(self._index, sel, overrides))
            # An approximate index may find fewer than k allowed vectors (tombstones,
            # filters, few probed lists): answer those queries exactly rather than leave holes.
            short = slots[:, -1] < 0
            if short.any():
                exact, exact_overrides = exact_index(self._index)
                params = search_parameters(exact, sel, exact_overrides)
                distances[short], slots[short] = exact.search(q[short], k, params=params)
        return distances, slots

    def _exact_filter_limit(self) -> int:
        """Filters allowing at most this many vectors are answered by exact search over them."""
        if self._index_type == "Flat":
            return self._slots.n_live
        return EXACT_FILTER_BUDGET // self._dimension

    def _search_subset(self, q: np.ndarray, k: int, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k among ``slots``: only their distances are computed."""
        if is_ivf(self._index):
            flat = faiss.IndexFlat(self._dimension, self._index.metric_type)
            flat.add(self._index.reconstruct_batch(slots))
            distances, positions = flat.search(q, k)
            return distances, slots[positions]
        # A bare IndexFlat (HNSW's storage is one) scores only an IDSelectorArray's ids.
        flat, _ = exact_index(self._index)
        return flat.search(q, k, params=faiss.SearchParameters(sel=faiss.IDSelectorArray(slots)))

    def _results(self, distances: np.ndarray, slots: np.ndarray, single: bool) -> SearchResult:
        ids = self._slots.slot_ids[slots].tolist()
        metadata = self._meta.get_rows(slots)
        if single:
            return SearchResult(distances[0].tolist(), ids[0], metadata[0])
        return SearchResult(distances.tolist(), ids, metadata)


def _restore(files: persistence.StoreFiles, mmap: bool) -> FAISSVectorStore:
    """Build a store from the files of a checked manifest, or raise CorruptStoreError.

    The small files are read first, so counts that disagree are reported before the big
    index is parsed; every count is then checked against every other.
    """
    manifest = files.manifest
    missing = {"index", "ids", "metadata"} - set(manifest["files"])
    if missing:
        raise CorruptStoreError(f"the manifest of store {str(files.path)!r} lists no {sorted(missing)} file")
    store = _configured(manifest)
    n_slots, count, next_id = _counts(manifest)
    slot_ids = _read_slot_ids(files, n_slots)
    slots = SlotMap(slot_ids)
    if slots.n_live != count or slots.has_duplicates() or (slots.n_live and int(slot_ids.max()) >= next_id):
        raise CorruptStoreError(
            f"{files.describe('ids')} disagrees with the manifest: it holds {slots.n_live} distinct "
            f"live ids (largest {int(slot_ids.max(initial=-1))}); the manifest says {count}, all below {next_id}"
        )
    meta = _read_metadata(files, slot_ids)
    index = _read_index(files, mmap)
    _check_index(store, manifest, index, n_slots, files.describe("index"))
    check_index_structure(index, files.describe("index"))
    store._index, store._slots, store._meta, store._next_id = index, slots, meta, next_id
    store._read_only = mmap
    return store


def _configured(manifest: dict[str, Any]) -> FAISSVectorStore:
    """An empty store with the manifest's configuration."""
    if manifest.get("kind") != FAISSVectorStore.__name__:
        raise NotAStoreError(f"the store holds a {manifest.get('kind')!r}, not a FAISSVectorStore")
    try:
        return FAISSVectorStore(
            manifest["dimension"], manifest["index_type"], manifest["metric"], **manifest["params"]
        )
    except (KeyError, TypeError, InvalidArgumentError) as e:
        raise CorruptStoreError(f"the manifest's configuration is invalid: {e}") from None


def _counts(manifest: dict[str, Any]) -> tuple[int, int, int]:
    """The manifest's ``n_slots``, ``count`` and ``next_id``, checked to be plausible."""
    values = [manifest.get(name) for name in ("n_slots", "count", "next_id")]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
        raise CorruptStoreError(f"the manifest's counts are invalid: n_slots, count, next_id = {values}")
    n_slots, count, next_id = values
    if count > n_slots:
        raise CorruptStoreError(f"the manifest is inconsistent: count {count} > n_slots {n_slots}")
    return n_slots, count, next_id


def _read_slot_ids(files: persistence.StoreFiles, n_slots: int) -> np.ndarray:
    """The ids file: a little-endian int64 ``.npy`` vector of ``n_slots`` entries.

    Parsed by hand (header, then exactly the bytes expected) rather than by ``np.load``,
    so a damaged header can neither allocate a huge array nor be read as another shape.
    """
    data, where = files.read("ids"), files.describe("ids")
    check_npy_header(data, where)
    header = io.BytesIO(data)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        shape, fortran_order, dtype = readers[np.lib.format.read_magic(header)](header)
    except (ValueError, KeyError, SyntaxError, EOFError) as e:
        raise CorruptStoreError(f"{where} is not a valid .npy file: {e!r}") from None
    if dtype != np.dtype("<i8") or fortran_order or shape != (n_slots,):
        raise CorruptStoreError(
            f"{where} holds a {dtype} array of shape {shape}, expected int64 ({n_slots},) as the manifest says"
        )
    if len(data) - header.tell() != 8 * n_slots:
        raise CorruptStoreError(f"{where} has {len(data) - header.tell()} bytes of ids, expected {8 * n_slots}")
    slot_ids = np.frombuffer(data, "<i8", n_slots, header.tell()).astype(np.int64)  # a writable copy
    if n_slots and slot_ids.min() < -1:
        raise CorruptStoreError(f"{where} holds negative ids other than -1 (the mark of a deleted slot)")
    return slot_ids


def _read_metadata(files: persistence.StoreFiles, slot_ids: np.ndarray) -> MetadataStore:
    """The metadata file: one JSON line per slot, ``null`` exactly on the deleted slots."""
    data, where = files.read("metadata"), files.describe("metadata")
    lines = data.split(b"\n") if data else []
    if len(lines) != len(slot_ids):
        raise CorruptStoreError(f"{where} has {len(lines)} lines, the ids file {len(slot_ids)} slots")
    deleted = np.fromiter((line == b"null" for line in lines), bool, len(lines))
    disagree = np.flatnonzero(deleted != (slot_ids == -1))
    if len(disagree):
        slot = int(disagree[0])
        raise CorruptStoreError(
            f"{where} disagrees with the ids file on {len(disagree)} slots: slot {slot} has "
            f"{'no' if deleted[slot] else 'some'} metadata but id {int(slot_ids[slot])}"
        )
    check_metadata_lines(lines, where)
    return MetadataStore.from_jsonl(data, len(slot_ids))


def _read_index(files: persistence.StoreFiles, mmap: bool) -> faiss.Index:
    """The FAISS index; FAISS sees no byte that has not passed its check."""
    check_index_file(files.handle("index"), files.size("index"), files.describe("index"))
    try:
        if mmap:
            # IO_FLAG_MMAP_IFC maps Flat and HNSW storage and IVF lists alike. Adding
            # IO_FLAG_MMAP would make FAISS refuse IVF indexes ("mmap only supported for
            # File objects"), and it maps nothing IO_FLAG_MMAP_IFC does not.
            return faiss.read_index(files.checked_path("index"), faiss.IO_FLAG_MMAP_IFC)
        if not files.verify:
            return faiss.read_index(files.checked_path("index"))
        with files.stream("index") as stream:
            return faiss.read_index(faiss.PyCallbackIOReader(stream.read, stream.block_size))
    except (RuntimeError, MemoryError) as e:
        message = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
        raise CorruptStoreError(f"FAISS cannot read the {files.describe('index')}: {message}") from None


def _check_index(
    store: FAISSVectorStore, manifest: dict[str, Any], index: faiss.Index, n_slots: int, where: str
) -> None:
    """Raise CorruptStoreError unless ``index`` is what the manifest describes; then give it
    the manifest's search parameters (the manifest is the record of the configuration)."""
    if store.index_type == "IVFFlat":
        expected_type = faiss.IndexIVFFlat if manifest.get("trained") else faiss.IndexFlat
    else:
        expected_type = {"HNSW": faiss.IndexHNSWFlat, "Flat": faiss.IndexFlat}[store.index_type]
    problems = [
        (not isinstance(index, expected_type), f"it holds a {type(index).__name__}, expected {expected_type.__name__}"),
        (index.d != store.dimension, f"its dimension is {index.d}, the manifest says {store.dimension}"),
        (index.metric_type != FAISS_METRIC[store.metric], f"its metric differs from the manifest's {store.metric!r}"),
        (index.ntotal != n_slots, f"it holds {index.ntotal} vectors, the manifest says {n_slots}"),
    ]
    if is_ivf(index) and isinstance(index, expected_type):  # nlist only once the class is right
        problems += [
            (index.nlist != store.params["nlist"], f"it has {index.nlist} lists, the manifest says {store.params['nlist']}"),
            (index.direct_map.no(), "it has no direct map (vectors could not be reconstructed)"),
        ]
    for bad, message in problems:
        if bad:
            raise CorruptStoreError(f"{where} disagrees with the manifest: {message}")
    if isinstance(index, faiss.IndexHNSW):
        index.hnsw.efSearch = store.params["ef_search"]
    elif is_ivf(index):
        index.nprobe = store.params["nprobe"]
