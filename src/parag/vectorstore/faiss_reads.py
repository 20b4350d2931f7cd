"""The reads of a :class:`~parag.vectorstore.FAISSVectorStore`: ``search``, ``get``, ``ids``,
``len``, ``in``, and the results they build.

:class:`FAISSReads` is the half of the store that never changes it: each method checks its
arguments first, takes the read lock (any number of reads run at once) and turns the slots
the state finds into ids, metadata and documents, decoding only what ``include`` asks for.
``FAISSVectorStore`` inherits it (and ``save`` and ``load``, from
:class:`~parag.vectorstore.faiss_save_load.FAISSSaveLoad`) and adds construction, the writes and ``tune``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import faiss
import numpy as np
import numpy.typing as npt

from parag._ids import Ids, as_store_ids
from parag._locks import RWLock
from parag._validation import (
    as_vectors,
    check_bool,
    check_int,
    check_k,
    checked_query_pointer,
    converted_vectors,
    unit_rows,
)
from parag.errors import InvalidArgumentError, InvalidTypeError
from parag.filters import Filter, compile_filter
from parag.vectorstore._faiss_state import FAISSState
from parag.vectorstore.base import GetResult, SearchResult

__all__ = ["INCLUDABLE", "FAISSReads"]

# What search and get may return besides ids (and scores): ``include=`` picks among these.
INCLUDABLE = ("metadata", "documents")
_EVERYTHING = frozenset(INCLUDABLE)


class FAISSReads:
    """The reads of a FAISS store: its subclass sets ``_state`` (a :class:`FAISSState`) and
    ``_lock`` (the store's reader-writer lock)."""

    _state: FAISSState
    _lock: RWLock

    @property
    def dimension(self) -> int:
        return self._state.kind.dimension

    @property
    def metric(self) -> str:
        return self._state.kind.metric

    def __len__(self) -> int:
        return self._state.slots.n_live

    def __contains__(self, id_: object) -> bool:
        # Under the read lock: the first ``in`` builds the slot map's id -> slot dict, and an
        # add running meanwhile would not be in the dict it installs (lost for good).
        with self._lock.reading:
            slots = self._state.slots  # (first: a closed store raises, whatever ``id_`` is)
            if isinstance(id_, bool) or not isinstance(id_, (numbers.Integral, str)):
                return False
            return (int(id_) if isinstance(id_, numbers.Integral) else id_) in slots

    def search(
        self,
        query: npt.ArrayLike,
        k: int = 10,
        *,
        filter: Filter | None = None,  # noqa: A002 - the name every vector store uses
        nprobe: int | None = None,
        ef_search: int | None = None,
        include: Sequence[str] = INCLUDABLE,
        rerank: int | None = None,
    ) -> SearchResult:
        """The ``k`` nearest vectors to one query, or to each query of a batch.

        Parameters
        ----------
        query : array-like, shape (dimension,) or (n_queries, dimension)
        k : int
            Hits per query. Fewer come back only when fewer than ``k`` vectors match.
        filter : dict or callable, optional
            Only vectors whose metadata (or document) matches (see :mod:`parag.filters`),
            e.g. ``{"source": "a", "year": {"$gte": 2020}}``. A pre-filter: the result is a
            top-k among the matching vectors, never a top-k that lost its non-matching hits.
            It is the exact one on a Flat store and for a filter that matches few vectors
            (searched exhaustively); a broad filter on HNSW / IVF is searched through the
            index, with ``ef_search`` / ``nprobe`` widened, and is as approximate as it.
        nprobe, ef_search, rerank : int, optional
            Override the index's parameter for this call only (IVFFlat / HNSW / compressed
            storage: re-score the best ``rerank * k`` candidates exactly).
        include : sequence of {"metadata", "documents"}, default both
            What to return besides ids and scores; what is left out is None in the result
            and costs nothing (``include=()``: no metadata is decoded).

        Returns
        -------
        SearchResult
            ``(distances, ids, metadata)``, best first, and ``.documents``. For a 1-D query
            lists of ``min(k, number of matching vectors)`` items (all stored vectors match
            when there is no filter); for a 2-D batch a list of such lists per query.
            Metadata dicts are copies: changing them does not change the store.
            ``.records()`` gives the hits as dicts.

        Examples
        --------
        >>> from parag.vectorstore import FAISSVectorStore
        >>> store = FAISSVectorStore(dimension=2)
        >>> store.add([[0, 0], [3, 4]], [{"p": "origin"}, {"p": "far"}], documents=["zero", None])
        [0, 1]
        >>> store.search([3, 3], k=1)
        SearchResult(distances=[1.0], ids=[1], metadata=[{'p': 'far'}], documents=[None])
        >>> store.search([0, 1], k=1, filter={"$document": {"$contains": "ze"}}).records()
        [{'id': 0, 'score': 1.0, 'document': 'zero', 'metadata': {'p': 'origin'}}]
        """
        kind = self._state.kind  # (read once: each property is a Python call on the path of every search)
        cosine = kind.metric == "cosine"
        # The usual query, one finite float32 vector (not a cosine store's: it is normalised
        # first), is checked in a few steps and goes to FAISS as its pointer, with no array
        # made; anything else is converted, or rejected, by as_vectors.
        pointer = None if cosine else checked_query_pointer(query, kind.dimension)
        if pointer is not None:
            q, single = None, True
        elif cosine:  # (as_vectors tries checked_query_pointer first: the query's one check)
            q, single = as_vectors(query, kind.dimension, "query")
        else:  # turned down by checked_query_pointer: not tried again
            q, single = converted_vectors(query, kind.dimension, "query")
        if type(k) is not int or k < 1:  # (the common case spared the check's two calls)
            k = check_k(k)
        overrides = {}
        if nprobe is not None or ef_search is not None or rerank is not None:
            overrides = kind.check_overrides({"nprobe": nprobe, "ef_search": ef_search, "rerank": rerank})
        wanted = _EVERYTHING if include is INCLUDABLE else check_include(include)
        matching = None if filter is None else compile_filter(filter)
        if cosine:
            q = unit_rows(q, "query")
        if single and pointer is None:  # a converted query: the fast path's pointer to it
            # Checked already (as_vectors: finite, within the squared-norm limit), float32 and
            # contiguous, as are unit rows: nothing to check again.
            pointer = faiss.swig_ptr(q[0])
        with self._lock.reading:
            state = self._state
            if state.kind is kind:  # (else see below: one ``is`` test per search)
                if pointer is not None and matching is None and not overrides:
                    result = state.search_one(pointer, k, wanted)
                    if result is not None:
                        return result
                if q is None:
                    q = query[None]  # type: ignore[index]
                allowed = None if matching is None else matching(state.meta, state.docs)
                distances, slots = state.search_slots(q, k, overrides, allowed)
                return _search_result(state, distances, slots, single, wanted)
        # A load swapped the state between the checks above and the lock: the query
        # was checked, and its pointer made, for another dimension. Again, from the checks,
        # against the state there is now (the lock released: they need not hold it).
        return self.search(query, k, filter=filter, nprobe=nprobe, ef_search=ef_search, include=include, rerank=rerank)

    def get(
        self,
        ids: Ids | None = None,
        *,
        filter: Filter | None = None,  # noqa: A002 - the name every vector store uses
        limit: int | None = None,
        offset: int = 0,
        include_vectors: bool = False,
        include: Sequence[str] = INCLUDABLE,
    ) -> GetResult:
        """Stored vectors' metadata, documents (and vectors): of ``ids`` in the order asked,
        of those matching ``filter``, or of every vector (oldest first).

        Parameters
        ----------
        ids : ints or strings, optional
            Every one must be stored. With ``filter`` too, those of ``ids`` that match.
        filter : dict or callable, optional
            As in :meth:`search`; evaluated on the filter columns, never by decoding metadata.
        limit, offset : int, optional
            Skip the first ``offset`` results and return at most ``limit`` (pages).
        include_vectors : bool
            Also return the vectors (normalised for a cosine store, as stored; a compressed
            store's float32 copies, not decoded approximations).
        include : sequence of {"metadata", "documents"}, default both
            What else to return; what is left out is None.

        Examples
        --------
        >>> from parag.vectorstore import FAISSVectorStore
        >>> store = FAISSVectorStore(dimension=2)
        >>> store.add([[0, 1], [1, 0]], [{"tag": "a"}, {"tag": "b"}], documents=["A", "B"])
        [0, 1]
        >>> store.get([1]).metadata
        [{'tag': 'b'}]
        >>> store.get(filter={"tag": "a"}).records()
        [{'id': 0, 'document': 'A', 'metadata': {'tag': 'a'}}]
        """
        targets = None if ids is None else as_store_ids(ids, None, unique=False)
        matching = None if filter is None else compile_filter(filter)
        limit = None if limit is None else check_int(limit, "limit", 0)
        offset = check_int(offset, "offset", 0)
        check_bool(include_vectors, "include_vectors")
        wanted = check_include(include)
        with self._lock.read():
            state = self._state
            if targets is not None:
                state.check_kind(targets, "ids")
                slots = state.slots.slots_of(targets)
                if matching is not None:
                    slots = slots[state.matching(matching)[slots]]
            elif matching is not None:
                slots = np.flatnonzero(state.matching(matching))
            else:
                slots = np.flatnonzero(state.slots.live_mask())
            slots = slots[offset : None if limit is None else offset + limit]
            return GetResult(
                state.slots.ids_at(slots).tolist(),
                state.meta.get_many(slots.tolist()) if "metadata" in wanted else None,
                state.vectors(slots) if include_vectors else None,
                state.docs.get_many(slots.tolist()) if "documents" in wanted else None,
            )

    def ids(self) -> list[int] | list[str]:
        """Every stored id, oldest slot first."""
        with self._lock.read():
            return self._state.slots.live_ids().tolist()


def check_include(include: Sequence[str]) -> frozenset[str]:
    """``include`` checked: a collection of names from :data:`INCLUDABLE`."""
    if include is INCLUDABLE:  # the default
        return _EVERYTHING
    if isinstance(include, str) or not isinstance(include, (Sequence, set, frozenset)):
        raise InvalidTypeError(f"include must be a list of names from {list(INCLUDABLE)}, got {include!r}")
    unknown = [name for name in include if name not in INCLUDABLE]
    if unknown:
        raise InvalidArgumentError(f"include names {unknown[0]!r}; it takes names from {list(INCLUDABLE)}")
    return frozenset(include)


def _search_result(
    state: FAISSState, distances: np.ndarray, slots: np.ndarray, single: bool, wanted: frozenset[str]
) -> SearchResult:
    """The search result for ``slots`` found by ``state`` (read under the lock): only the
    parts ``wanted`` are decoded."""
    ids = state.slots.ids_at(slots).tolist()
    metadata = state.meta.get_rows(slots) if "metadata" in wanted else None
    documents = state.docs.get_rows(slots) if "documents" in wanted else None
    if single:
        return SearchResult(
            distances[0].tolist(),
            ids[0],
            None if metadata is None else metadata[0],
            None if documents is None else documents[0],
        )
    return SearchResult(distances.tolist(), ids, metadata, documents)

