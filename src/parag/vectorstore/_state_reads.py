"""The searches of a :class:`~parag.vectorstore._faiss_state.FAISSState`: over its live
slots, filtered or not, approximate or exact, and the fast path of one unfiltered query.

Like the state's writes, they check nothing and lock nothing: the store checks every
argument and holds its read lock around them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import faiss
import numpy as np

from parag._slots import SlotMap, bitmap_selector
from parag._threads import threads_for
from parag.documents import DocumentStore
from parag._validation import MAX_SQUARED_NORM
from parag.errors import CorruptStoreError
from parag.metadata import MetadataStore
from parag.vectorstore.base import SearchResult
from parag.vectorstore.kinds import IndexKind

_new_tuple = tuple.__new__


class StateReads:
    """The reading half of :class:`~parag.vectorstore._faiss_state.FAISSState` (which sets
    these attributes)."""

    kind: IndexKind
    index: faiss.Index
    slots: SlotMap
    meta: MetadataStore
    docs: DocumentStore
    # (index, whether a single unfiltered query may search it bare): see search_one.
    _bare: tuple[faiss.Index | None, bool]

    def matching(self, compiled: Callable[..., np.ndarray]) -> np.ndarray:
        """A mask over slots: the live ones ``compiled`` (a filter) allows."""
        allowed = compiled(self.meta, self.docs)
        if self.slots.n_dead:
            allowed &= self.slots.live_mask()
        return allowed

    def vectors(self, slots: np.ndarray) -> np.ndarray:
        """The stored vectors at ``slots`` (copies)."""
        return self.index.reconstruct_batch(slots)

    def search_one(self, query: Any, k: int, wanted: Collection[str]) -> SearchResult | None:
        """The result of one unfiltered query on the fast path (the parts ``wanted``
        decoded), ``query`` being FAISS's pointer to it (``faiss.swig_ptr``; checked already);
        None where the fast path does not apply (use :meth:`search_slots`).

        It applies when no slot is dead, the store holds at least k vectors and the index
        searches one query on the calling thread with its own parameters (HNSW, a trained
        IVF): then nothing is built per call (no selector, no SearchParameters, no OpenMP
        setting) and FAISS is called directly. Every step saved here counts: FAISS's search
        leaves the CPU caches cold, and each Python step after it costs ~1-2 us, not 0.1.
        """
        index, slots = self.index, self.slots
        bare = self._bare
        if bare[0] is not index:  # worked out once per index (the index changes only under the write lock)
            kind = self.kind
            bare = self._bare = (
                index,
                isinstance(index, faiss.Index)  # not a Python wrapper around one
                and not kind.splits_one_query(index)
                and kind.search_parameters(index, None, {}) is None,
            )
        if not bare[1] or k > slots.n_live or slots.n_dead:
            return None
        distances, found = np.empty(k, np.float32), np.empty(k, np.int64)
        index.search_c(1, query, k, faiss.swig_ptr(distances), faiss.swig_ptr(found), None)
        listed = found.tolist()
        if listed[-1] < 0:  # fewer than k found: search_slots completes it exactly
            return None
        # Made as SearchResult's own __new__ makes it, without that Python call.
        result = _new_tuple(SearchResult, (
            distances.tolist(),
            listed if slots.ids_are_slots else slots.ids_at(found).tolist(),
            self.meta.get_many(listed) if "metadata" in wanted else None,
        ))
        result.documents = self.docs.get_many(listed) if "documents" in wanted else None
        return result

    def search_slots(
        self, q: np.ndarray, k: int, overrides: dict[str, int], allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Distances and slots of the top-k live vectors for each query row.

        ``allowed`` is a filter's mask over slots (None: every live slot). k is cut to the
        number of vectors allowed, so every row is complete.
        """
        slots, kind, index = self.slots, self.kind, self.index
        n = slots.n_live
        if allowed is not None:
            if slots.n_dead:
                allowed &= slots.live_mask()
            n = int(np.count_nonzero(allowed))
            if n == slots.n_live:
                allowed = None  # the filter excludes nothing: search as if unfiltered
        k = min(k, n)
        if k == 0:
            return np.empty((len(q), 0), np.float32), np.empty((len(q), 0), np.int64)
        if allowed is None:
            sel = slots.live_selector()
            if len(q) == 1 and not kind.splits_one_query(index):
                # FAISS runs this search on the calling thread alone: no OpenMP setting to
                # change (and restore) on the path every single-query search takes.
                return self._search(q, k, sel, overrides)
        with threads_for(len(q), index.ntotal):
            if allowed is None:
                return self._search(q, k, sel, overrides)
            if n <= kind.exact_filter_limit(slots.n_live):
                distances, found = kind.subset_search(index, q, k, np.flatnonzero(allowed))
                _check_no_missing(found)
                return distances, found
            sel, _bits = bitmap_selector(allowed)
            return self._search(q, k, sel, kind.widened(index, overrides, n / slots.n_live, k))

    def _search(
        self, q: np.ndarray, k: int, sel: faiss.IDSelector | None, overrides: dict[str, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The index's top-k among the slots ``sel`` allows, exact where it found fewer than k."""
        kind, index = self.kind, self.index
        distances, found = index.search(q, k, params=kind.search_parameters(index, sel, overrides))
        # An approximate index may find fewer than k allowed vectors (tombstones, filters,
        # few probed lists): answer those queries exactly rather than leave holes.
        # (A single query checks its last hit as a scalar: a numpy reduction costs 2 us.)
        if found[0, -1] < 0 if len(found) == 1 else found[:, -1].min() < 0:
            short = found[:, -1] < 0
            with threads_for(int(short.sum()), index.ntotal):
                distances[short], found[short] = kind.exact_search(index, q[short], k, sel)
            _check_no_missing(found)
        return distances, found

    def exact_slots(self, q: np.ndarray, k: int) -> np.ndarray:
        """The true top-k live slots of each query row, by exhaustive search."""
        with threads_for(len(q), self.index.ntotal):
            return self.kind.exact_search(self.index, q, k, self.slots.live_selector())[1]


def _check_no_missing(found: np.ndarray) -> None:
    """Raise CorruptStoreError if a label of an exact search for no more vectors than there
    are is -1 (FAISS's "none"): numpy would read -1 as the last slot.

    FAISS leaves a -1 only where a distance is inf or NaN: impossible for vectors and queries
    within :data:`~parag._validation.MAX_SQUARED_NORM`, which every write and search checks;
    a store loaded from files may still hold vectors beyond it (saved by an older parag, or
    crafted).
    """
    if found.size and found.min() < 0:
        raise CorruptStoreError(
            "the store holds vectors whose distances to the query overflow float32 (a squared length "
            f"over {MAX_SQUARED_NORM:.3g}, which parag refuses to add): rebuild it from vectors scaled down"
        )
