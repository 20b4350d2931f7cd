"""FAISSVectorStore: a vector store on FAISS that keeps ids and metadata in step with the index.

The index types are ``"Flat"`` (exact), ``"IVFFlat"`` and ``"HNSW"`` (approximate); the
metrics ``"L2"``, ``"IP"`` and ``"cosine"``. See :class:`FAISSVectorStore`.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import parag.tuning as tuning
import parag.vectorstore.faiss_format as faiss_format
from parag._hybrid import hybridmethod
from parag._locks import RWLock
from parag._validation import as_ids, as_vectors, check_bool, check_int, check_k, unit_rows
from parag.errors import ReadOnlyStoreError
from parag.filters import Filter, compile_filter
from parag.metadata import encode_metadata
from parag.vectorstore._faiss_state import FAISSState
from parag.vectorstore.base import GetResult, Metadata, SearchResult, VectorStore
from parag.vectorstore.kinds import configure

__all__ = ["FAISSVectorStore", "GetResult"]


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
        self._state = FAISSState(configure(dimension, index_type, metric, params))
        self._lock = RWLock()

    # ----------------------------------------------------------------- properties

    @property
    def dimension(self) -> int:
        return self._state.kind.dimension

    @property
    def metric(self) -> str:
        return self._state.kind.metric

    @property
    def index_type(self) -> str:
        return self._state.kind.name

    @property
    def params(self) -> dict[str, int]:
        """The index parameters in force (a copy)."""
        return dict(self._state.kind.params)

    @property
    def is_trained(self) -> bool:
        """False for an IVFFlat store still answering exactly from its first vectors."""
        return self._state.is_trained

    @property
    def read_only(self) -> bool:
        """True for a store loaded with ``mmap=True``."""
        return self._state.read_only

    @property
    def faiss_index(self) -> Any:
        """The ``faiss.Index`` underneath, for inspection and benchmarks: changing it directly
        breaks the store. Its labels are slots (positions), not ids."""
        return self._state.index

    def __len__(self) -> int:
        return self._state.slots.n_live

    def __contains__(self, id_: object) -> bool:
        return isinstance(id_, numbers.Integral) and not isinstance(id_, bool) and int(id_) in self._state.slots

    def __repr__(self) -> str:
        params = "".join(f", {k}={v}" for k, v in self.params.items())
        return (
            f"{type(self).__name__}(dimension={self.dimension}, index_type={self.index_type!r}, metric={self.metric!r}"
            f"{params}, count={len(self)}{'' if self.is_trained else ', trained=False'})"
        )

    def __copy__(self) -> FAISSVectorStore:
        """An independent store (``copy.copy`` and ``copy.deepcopy``): index, ids, metadata copied."""
        with self._lock.read():
            return self._with_state(self._state.copy())

    # ----------------------------------------------------------------- writing

    def add(self, vectors: npt.ArrayLike, metadata: Metadata = None, ids: npt.ArrayLike | None = None) -> list[int]:
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
        x, _ = as_vectors(vectors, self.dimension)
        encoded = encode_metadata(metadata, len(x))
        given = None if ids is None else as_ids(ids, count=len(x))
        x = self._normalised(x, "vectors")
        with self._writing() as state:
            return state.add(x, given, encoded).tolist()

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
        with self._writing() as state:
            return state.delete(targets, missing_ok)

    def upsert(self, ids: npt.ArrayLike, vectors: npt.ArrayLike, metadata: Metadata = None) -> list[int]:
        """Insert vectors under ``ids``, replacing the vector and metadata of ids already stored."""
        x, _ = as_vectors(vectors, self.dimension)
        new_ids = as_ids(ids, count=len(x))
        encoded = encode_metadata(metadata, len(x))
        x = self._normalised(x, "vectors")
        with self._writing() as state:
            state.upsert(x, new_ids, encoded)
        return new_ids.tolist()

    def update_metadata(self, ids: npt.ArrayLike, metadata: Metadata) -> None:
        """Replace the metadata of stored ids (the vectors stay); all ids must exist."""
        targets = as_ids(ids)
        encoded = encode_metadata(metadata, len(targets))
        with self._writing() as state:
            state.meta.set(state.slots.slots_of(targets).tolist(), encoded)

    def compact(self) -> None:
        """Rebuild the index without deleted vectors now (writes do it when 10% of a Flat or
        IVFFlat index, or 50% of an HNSW index, is deleted)."""
        with self._writing() as state:
            state.compact()

    def tune(
        self,
        queries: npt.ArrayLike | None = None,
        target_recall: float = 0.95,
        k: int = 10,
        *,
        n_samples: int = 200,
        seed: int = 0,
    ) -> tuning.TuneResult:
        """Set the smallest ``ef_search`` (HNSW) or ``nprobe`` (IVFFlat) that reaches a recall.

        Measures recall@k of this store's search against its exact search, for values
        1, 2, 3, 4, 6, 8, 12... upward, and makes the first that reaches ``target_recall``
        the store's default (saved with it); see :mod:`parag.tuning`. A Flat store, or an
        IVFFlat store not trained yet, is exact: nothing to tune. Searches wait meanwhile.

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
            recall@k, whether it reaches the target (else the best recall is chosen), and
            ``(value, recall, median single-query latency_ms)`` for every value measured.

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> store = FAISSVectorStore(dimension=16, index_type="HNSW")
        >>> _ = store.add(rng.standard_normal((2000, 16)))
        >>> result = store.tune(target_recall=0.9)
        >>> result.reached, store.params["ef_search"] == result.value
        (True, True)
        """
        target_recall, k = tuning.check_target(target_recall), check_k(k)
        n_samples, seed = check_int(n_samples, "n_samples"), check_int(seed, "seed", 0, 2**63 - 1)
        q = None if queries is None else self._normalised(as_vectors(queries, self.dimension, "queries")[0], "queries")
        # Measured and set under one write lock: nothing can change the store in between.
        with self._lock.write():
            return tuning.tune(self._state, q, target_recall, k, n_samples, seed)

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
            ``{"source": "a", "year": {"$gte": 2020}}``. A pre-filter: the result is a
            top-k among the matching vectors, never a top-k that lost its non-matching hits.
            It is the exact one on a Flat store and for a filter that matches few vectors
            (searched exhaustively); a broad filter on HNSW / IVF is searched through the
            index, with ``ef_search`` / ``nprobe`` widened, and is as approximate as it.
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
        q, single = as_vectors(query, self.dimension, "query")
        k = check_k(k)
        overrides = {}
        if nprobe is not None or ef_search is not None:
            overrides = self._state.kind.check_overrides({"nprobe": nprobe, "ef_search": ef_search})
        mask = None if filter is None else compile_filter(filter)
        q = self._normalised(q, "query")
        with self._lock.read():
            state = self._state
            allowed = None if mask is None else mask(state.meta)
            distances, slots = state.search_slots(q, k, overrides, allowed)
            return _results(state, distances, slots, single)

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
            state = self._state
            slots = state.slots.slots_of(targets)
            vectors = state.vectors(slots) if include_vectors else None
            return GetResult(targets.tolist(), state.meta.get_many(slots.tolist()), vectors)

    def ids(self) -> list[int]:
        """Every stored id, oldest slot first."""
        with self._lock.read():
            return self._state.slots.live_ids().tolist()

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
            faiss_format.save(path, self._state)

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
        state = faiss_format.load(path, verify=verify, mmap=mmap)
        if isinstance(target, type):
            return target._with_state(state)
        with target._lock.write():
            target._state = state  # a whole new state: searches see the old one or the new one
        return target

    # ----------------------------------------------------------------- internals

    @classmethod
    def _with_state(cls, state: FAISSState) -> FAISSVectorStore:
        store = cls.__new__(cls)
        store._state, store._lock = state, RWLock()
        return store

    def _normalised(self, x: np.ndarray, name: str) -> np.ndarray:
        """Unit-length copies of ``x`` for a cosine store (``x`` itself otherwise)."""
        return unit_rows(x, name) if self.metric == "cosine" else x

    @contextmanager
    def _writing(self) -> Iterator[FAISSState]:
        """The write lock, and the state to change under it (unless the store is read-only)."""
        with self._lock.write():
            if self._state.read_only:
                raise ReadOnlyStoreError(
                    "this store was loaded with mmap=True and is read-only; load it without mmap to change it"
                )
            yield self._state

def _results(state: FAISSState, distances: np.ndarray, slots: np.ndarray, single: bool) -> SearchResult:
    """The search result for ``slots`` found by ``state`` (read under the lock)."""
    ids = state.slots.ids_at(slots).tolist()
    metadata = state.meta.get_rows(slots)
    if single:
        return SearchResult(distances[0].tolist(), ids[0], metadata[0])
    return SearchResult(distances.tolist(), ids, metadata)
