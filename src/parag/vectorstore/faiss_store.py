"""FAISSVectorStore: a vector store on FAISS that keeps ids, metadata and documents in step
with the index.

The index types are ``"Flat"`` (exact), ``"IVFFlat"`` and ``"HNSW"`` (approximate); the
metrics ``"L2"``, ``"IP"`` and ``"cosine"``. See :class:`FAISSVectorStore`. This module holds
construction, the writes and ``tune``; the reads come from ``faiss_reads.py`` and ``save`` and
``load`` from ``faiss_save_load.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import numpy.typing as npt

import parag.tuning as tuning
from parag._locks import RWLock
from parag._ids import Ids, as_store_ids
from parag._validation import as_vectors, check_bool, normalised
from parag.errors import InvalidArgumentError, StoreClosedError
from parag.filters import Filter, compile_filter
from parag.metadata import encode_metadata
from parag.vectorstore._faiss_state import FAISSState
from parag.vectorstore._write_input import Checked, checked_add, checked_upsert
from parag.vectorstore.base import Documents, GetResult, Metadata, VectorStore
from parag.vectorstore.faiss_reads import FAISSReads
from parag.vectorstore.faiss_save_load import FAISSSaveLoad
from parag.vectorstore.kinds import IndexKind, configure
from parag.vectorstore.kinds.storage import check_vectors_dir

__all__ = ["FAISSVectorStore", "GetResult"]


class FAISSVectorStore(FAISSReads, FAISSSaveLoad, VectorStore):
    """A FAISS index whose vectors carry ids (ints or strings), JSON metadata and documents,
    saved to a directory.

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
    storage : {"float32", "float16", "sq8", "pq"}, default "float32"
        How the index stores vectors: exactly (float32), or compressed to 2 bytes
        (float16), 1 byte (sq8, 8-bit scalar quantisation) per component, or ``pq_m`` bytes
        per vector (pq, product quantisation; IVFFlat and HNSW only). A compressed store also
        keeps every float32 vector (in RAM, or in a file with ``vectors_dir``; once saved, a
        raw file of its own, read in place by ``load(mmap=True)``) and re-scores its index's
        best ``rerank * k`` candidates with them: scores are always exact. sq8 and pq answer
        exactly until trained (1,000 / 9,984 vectors).
    vectors_dir : str or PathLike, optional
        Compressed storage: keep the float32 vectors in an unnamed temporary file in this
        directory (on a disk, not tmpfs) instead of RAM; RAM then holds the compressed index,
        ids, metadata and, until trained, the flat index. ``save`` copies the file. A forked
        child process shares that file with its parent: it may search such a store, but an
        add there raises UnsupportedOperationError (make or load the store in the child).
    **params : int
        IVFFlat: ``nlist``, ``nprobe``. HNSW: ``M`` (32), ``ef_construction`` (40), ``ef_search``.
        Not given, ``ef_search``, ``nlist`` and ``nprobe`` follow the store's size (README,
        "Choosing an index"; measured in docs/bench-defaults.md); given, they are fixed.
        Compressed storage: ``rerank`` (float16 2, sq8 4, pq 10) and, for pq, ``pq_m``
        (the largest divisor of the dimension up to dimension / 8).

    Notes
    -----
    Ids are all ints or all strings, fixed by the first ids the store holds (ids given to
    ``add`` or ``upsert``; ``add`` without ids makes an int store). A string store generates
    ``uuid4().hex`` ids; string ids are non-empty and at most 512 characters.

    Thread safety: any number of threads may ``search``, ``get``, ``len`` and ``save`` at once;
    the writes (and ``load`` and ``close``) wait for them and run alone. A call's input is
    checked before it waits (but an add or upsert of a million values or more into a flat
    float32 index is copied in while it is checked, under the write lock: ``_add_ahead.py``):
    should a ``store.load`` meanwhile bring another dimension or metric, a search checks its
    query again, and a write (or ``tune``) raises InvalidArgumentError: call it again. (A
    load of the same dimension and metric, whatever its index, lets the write go on.)

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
        self,
        dimension: int,
        index_type: str = "Flat",
        metric: str | None = None,
        storage: str = "float32",
        vectors_dir: str | os.PathLike[str] | None = None,
        **params: int,
    ) -> None:
        kind = configure(dimension, index_type, metric, {"storage": storage, **params})
        kind.vectors_dir = check_vectors_dir(vectors_dir, kind.storage_type)
        self._state = FAISSState(kind)
        self._lock = RWLock()

    # ----------------------------------------------------------------- properties

    @property
    def index_type(self) -> str:
        return self._state.kind.name

    @property
    def storage(self) -> str:
        """How the index stores vectors: ``"float32"``, ``"float16"``, ``"sq8"`` or ``"pq"``."""
        return self._state.kind.storage_type

    @property
    def params(self) -> dict[str, int | str]:
        """The index parameters in force (a copy); a compressed store's include ``storage``.
        Those not given to the constructor (nor set by ``tune``) follow the store's size."""
        return dict(self._state.kind.params)

    @property
    def auto_params(self) -> frozenset[str]:
        """The names in :attr:`params` not given to the constructor nor set by ``tune``:
        their values follow the store's size (saved as the manifest's ``auto_params``).

        Examples
        --------
        >>> sorted(FAISSVectorStore(dimension=4, index_type="HNSW", M=16).auto_params)
        ['ef_construction', 'ef_search']
        """
        return frozenset(self._state.kind.auto)

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
        breaks the store. Its labels are slots (positions), not ids. A trained compressed
        store's is a ``Reranked``: the FAISS index is its ``.base``, the float32 vectors its
        ``.vectors``: read them with ``.vectors.take(slots)`` or ``.vectors.blocks()``; ``.array``
        exists only in RAM (in a file, ``mmap=True``/``vectors_dir``: VectorsNotInMemoryError).
        Once the store closes, is loaded again or rebuilds its index (a compaction), the file
        such an index read is closed (StoreClosedError): take ``faiss_index`` again."""
        return self._state.index

    def __repr__(self) -> str:
        if self.closed:
            return f"{type(self).__name__}(closed)"
        params = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return (
            f"{type(self).__name__}(dimension={self.dimension}, index_type={self.index_type!r}, metric={self.metric!r}"
            f"{params}, count={len(self)}{'' if self.is_trained else ', trained=False'})"
        )

    def __copy__(self) -> FAISSVectorStore:
        """An independent store (``copy.copy`` and ``copy.deepcopy``): index, ids, metadata copied.

        The copy is in RAM, however this store was loaded: a store loaded with ``mmap=True``
        is read whole (its float32 vectors too). A ``vectors_dir`` store's copy keeps its
        float32 vectors in a new temporary file there."""
        with self._lock.read():
            return self._with_state(self._state.copy())

    # ----------------------------------------------------------------- writing

    def add(
        self,
        vectors: npt.ArrayLike,
        metadata: Metadata = None,
        ids: Ids | None = None,
        documents: Documents = None,
    ) -> list[int] | list[str]:
        """Add one vector (1-D) or many (2-D); return their ids.

        Parameters
        ----------
        vectors : array-like, shape (dimension,) or (n, dimension)
            Real numbers; converted once to float32.
        metadata : list of dict, dict or None
            One JSON-serialisable dict per vector (a single dict for a single vector).
            None, or a None item, stores ``{}``.
        ids : ints or strings, optional
            Unique, not yet stored, of the store's kind: non-negative ints, or non-empty
            strings of at most 512 characters. By default an int store generates ids from 0
            upward, above every id it has ever held, never reused; a string store generates
            ``uuid4().hex`` strings.
        documents : list of str or None, or a str for a single vector, optional
            The text of each vector (None: none). Returned by ``get`` and ``search``,
            matched by ``{"$document": {"$contains": ...}}`` filters; not metadata.

        Examples
        --------
        >>> store = FAISSVectorStore(dimension=2)
        >>> store.add([[0, 1], [1, 0]], [{"tag": "a"}, {"tag": "b"}])
        [0, 1]
        >>> store.add([2, 2], {"tag": "c"}, ids=[10])
        [10]
        >>> docs = FAISSVectorStore(dimension=2)
        >>> docs.add([[0, 1], [1, 0]], ids=["guide.md#0", "guide.md#1"], documents=["Install", "Use"])
        ['guide.md#0', 'guide.md#1']
        """
        kind = self._state.kind  # what the input is checked against (see _writing)
        x, _ = as_vectors(vectors, kind.dimension, check=False)
        with self._writing_vectors(x, kind, lambda bg: checked_add(x, metadata, ids, documents, bg)) as written:
            state, vectors_in, (given, encoded, docs), in_index = written
            return state.add(vectors_in, given, encoded, docs, in_index).tolist()

    def delete(
        self,
        ids: Ids | None = None,
        *,
        filter: Filter | None = None,  # noqa: A002 - the name every vector store uses
        missing_ok: bool = False,
    ) -> int:
        """Delete vectors by id, or those matching a filter; return how many were deleted.

        Give exactly one of ``ids`` and ``filter``. An unknown id is an error (and nothing is
        deleted) unless ``missing_ok=True``. Deleted ids never come back in results and are
        never reused by generated ids.

        Examples
        --------
        >>> store = FAISSVectorStore(dimension=2)
        >>> store.add([[0, 1], [1, 0], [1, 1]], [{"src": "a"}, {"src": "b"}, {"src": "a"}])
        [0, 1, 2]
        >>> store.delete([0])
        1
        >>> store.delete(filter={"src": "a"})
        1
        >>> store.ids()
        [1]
        """
        if (ids is None) == (filter is None):
            raise InvalidArgumentError(
                "delete needs exactly one of ids (the ids to delete) and filter (delete what matches), "
                f"got {'neither' if ids is None else 'both'}"
            )
        check_bool(missing_ok, "missing_ok")
        targets = None if ids is None else as_store_ids(ids, None)
        matching = None if filter is None else compile_filter(filter)
        with self._writing() as state:
            if matching is not None:
                return state.delete_matching(matching)
            return state.delete(targets, missing_ok)

    def upsert(
        self,
        ids: Ids,
        vectors: npt.ArrayLike,
        metadata: Metadata = None,
        documents: Documents = None,
    ) -> list[int] | list[str]:
        """Insert vectors under ``ids``, replacing the vector, metadata and document of ids
        already stored."""
        kind = self._state.kind
        x, _ = as_vectors(vectors, kind.dimension, check=False)
        with self._writing_vectors(x, kind, lambda bg: checked_upsert(x, metadata, ids, documents, bg)) as written:
            state, vectors_in, (given, encoded, docs), in_index = written
            state.upsert(vectors_in, given, encoded, docs, in_index)
        return given.tolist()

    def update_metadata(self, ids: Ids, metadata: Metadata) -> None:
        """Replace the metadata of stored ids (the vectors and documents stay); all ids must exist."""
        targets = as_store_ids(ids, None)
        encoded = encode_metadata(metadata, len(targets))
        with self._writing() as state:
            state.set_metadata(targets, encoded)

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
        """Set the smallest ``ef_search`` (HNSW) or ``nprobe`` (IVFFlat), and on a compressed
        store the fastest ``rerank`` with it, that reaches a recall.

        Measures recall@k against exact search for values 1, 2, 3, 4, 6, 8, 12... and makes
        the first that reaches ``target_recall`` the store's default (saved with it); a
        compressed store tries each ``rerank`` of 1, 2, 4, 8, 16 and keeps the fastest pair
        (see :mod:`parag.tuning`). Exact stores have nothing to tune. Searches wait meanwhile.

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
            ``(param, value, recall, reached, settings, rerank)``: the value in force, its
            recall@k, whether it reaches the target (else the best recall is chosen), every
            ``(value, recall, p50 latency_ms, rerank)`` measured, and the ``rerank`` in force (or None).

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> store = FAISSVectorStore(dimension=16, index_type="HNSW")
        >>> _ = store.add(rng.standard_normal((2000, 16)))
        >>> result = store.tune(target_recall=0.9)
        >>> result.reached, store.params["ef_search"] == result.value
        (True, True)
        """
        kind = self._state.kind
        q, target_recall, k, n_samples, seed = tuning.check_arguments(
            queries, target_recall, k, n_samples, seed, kind.dimension, kind.metric)
        # Measured and set under one write lock: nothing can change the store in between.
        with self._writing(kind, changes=False) as state:
            return tuning.tune(state, q, target_recall, k, n_samples, seed)

    # ----------------------------------------------------------------- internals

    @contextmanager
    def _writing_vectors(
        self, x: np.ndarray, kind: IndexKind, check: Callable[[bool], Checked]
    ) -> Iterator[tuple[FAISSState, np.ndarray, Checked, bool]]:
        """The write lock and state for a write of the vectors ``x`` (converted, values
        unchecked), with ``check(background)``, the rest of its input's checks, done: before
        the lock; or under it, while FAISS adds ``x`` ahead (``FAISSState.adds_ahead``; a
        store that turns read-only, closed or reloaded meanwhile still reports a bad input first).
        Yields the state, ``x`` as the index takes it, what ``check`` returned, and whether
        the index holds ``x`` already."""
        if self._state.adds_ahead(x):
            input_check = lambda: (check(True), normalised(x, "vectors", kind.metric))  # noqa: E731
            with self._writing(kind, input_check=input_check) as state, state.adding_ahead(x) as batch:
                checked = check(not batch.started)
                yield state, batch.vectors(), checked, batch.started  # (started: read after vectors())
            return
        checked = check(True)
        x = normalised(x, "vectors", kind.metric)
        with self._writing(kind) as state:
            yield state, x, checked, False

    @contextmanager
    def _writing(
        self, checked: IndexKind | None = None, changes: bool = True, input_check: Callable[[], object] | None = None
    ) -> Iterator[FAISSState]:
        """The write lock, and the state to change under it (unless the store is read-only
        and the call ``changes`` it).

        ``checked`` is the index kind the call's input was checked against, before the lock:
        a ``load`` may have swapped in a store of another dimension or metric since, and the
        input is then refused rather than handed to FAISS unchecked. Compared by value: every
        load makes a new kind, and one like the old leaves the checks valid. ``input_check``:
        the input's checks, for a call that makes them under the lock: a bad input's error
        comes before the store's refusal, as where they are made before it.
        """
        with self._lock.write():
            state = self._state
            try:
                refusal = state.write_refusal(checked, changes)
            except StoreClosedError as closed:  # (every attribute of a closed store's state raises it)
                refusal = closed
            if refusal is not None:
                if input_check is not None:
                    input_check()
                raise refusal
            state.settle()
            yield state

