"""Exact re-ranking: a compressed FAISS index beside the full-precision vector of every slot.

A compressed store (``storage`` float16, sq8 or pq) keeps two things: the compressed index,
which proposes ``rerank * k`` candidates per query, and :class:`FullVectors`, the float32
vector of every slot in slot order, which re-scores those candidates with the exact metric.
The full vectors are also what ``get(include_vectors=True)`` returns, what a compaction
rebuilds from and what exact (filtered, fallback) searches score.

They are a plain float32 array, not part of the FAISS index, so that a store saves them as a
raw file of their own (``vectors.<gen>-<tag>.f32``) and a store loaded with ``mmap=True``
maps that file read-only: then only the compressed index takes RAM, and a search reads just
the ``rerank * k`` rows it re-scores. In a store built in memory, or loaded without ``mmap``,
the array is in RAM (4 bytes per component, beside the codes).
"""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np

# Grow the in-RAM array by a quarter at a time: adds stay amortised O(1) while the slack
# (capacity not yet used) stays under a quarter of the vectors.
GROWTH = 1.25
# FAISS's distance for "no result" (label -1): the worst score of each metric.
NO_RESULT = float(np.finfo(np.float32).max)


class FullVectors:
    """The float32 vector of every slot, in slot order: a growable array in RAM, or a
    read-only memory map of a saved store's vectors file.

    It answers the calls the store makes of a float32 ``faiss.IndexFlat`` (``search`` with
    a selector, ``reconstruct_n``, ``ntotal``, ``metric_type``), so exact searches need no
    copy of the vectors into FAISS.

    Examples
    --------
    >>> v = FullVectors(np.eye(3, dtype=np.float32), faiss.METRIC_L2)
    >>> v.append(np.full((1, 3), 2, np.float32)); v.ntotal
    4
    >>> v.search(np.zeros((1, 3), np.float32), 2)[1].tolist()
    [[0, 1]]
    """

    def __init__(self, data: np.ndarray, metric_type: int, owner: Any = None) -> None:
        self._data = data  # rows beyond ntotal are spare capacity
        self.ntotal = len(data)
        self.d = data.shape[1]
        self.metric_type = metric_type
        self._owner = owner  # what keeps a mapped file's memory valid

    @property
    def array(self) -> np.ndarray:
        """The vectors, shape (ntotal, d): a view, not a copy."""
        return self._data[: self.ntotal]

    def append(self, x: np.ndarray) -> None:
        """Add rows after the last slot (an in-RAM array only)."""
        needed = self.ntotal + len(x)
        if needed > len(self._data):
            grown = np.empty((max(needed, int(len(self._data) * GROWTH)), self.d), np.float32)
            grown[: self.ntotal] = self.array
            self._data = grown
        self._data[self.ntotal : needed] = x
        self.ntotal = needed

    def truncate(self, n: int) -> None:
        """Forget the rows from slot ``n`` on (a failed add's)."""
        self.ntotal = min(self.ntotal, n)

    def take(self, slots: np.ndarray) -> np.ndarray:
        """Copies of the vectors at ``slots``."""
        return np.array(self.array[slots], np.float32)

    def copy(self) -> FullVectors:
        """An independent in-RAM copy."""
        return FullVectors(np.array(self.array, np.float32), self.metric_type)

    def reconstruct_n(self, start: int, n: int) -> np.ndarray:
        """The vectors of slots ``start`` to ``start + n`` (a view)."""
        return self.array[start : start + n]

    def search(
        self, q: np.ndarray, k: int, params: faiss.SearchParameters | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The exact top-k among the slots ``params.sel`` allows, as ``IndexFlat.search``
        gives it (labels -1 where fewer are allowed). An ``IDSelectorArray`` scores only its ids."""
        q = np.ascontiguousarray(q, np.float32)
        distances = np.empty((len(q), k), np.float32)
        labels = np.empty((len(q), k), np.int64)
        sel = None if params is None else params.sel
        xb, n, ptr = self.array, self.ntotal, faiss.swig_ptr
        if not n:
            distances.fill(NO_RESULT if self.metric_type == faiss.METRIC_L2 else -NO_RESULT)
            labels.fill(-1)
        elif self.metric_type == faiss.METRIC_L2:
            faiss.knn_L2sqr(ptr(q), ptr(xb), self.d, len(q), n, k, ptr(distances), ptr(labels), None, sel)
        else:
            faiss.knn_inner_product(ptr(q), ptr(xb), self.d, len(q), n, k, ptr(distances), ptr(labels), sel)
        return distances, labels


class RerankParameters:
    """Per-search parameters of a :class:`Reranked` index: its ``k_factor`` and the compressed
    index's own SearchParameters (None: its defaults)."""

    __slots__ = ("k_factor", "base")

    def __init__(self, k_factor: float, base: faiss.SearchParameters | None) -> None:
        self.k_factor = k_factor
        self.base = base


class Reranked:
    """A compressed index whose ``k_factor * k`` best candidates are re-scored exactly with
    :class:`FullVectors`: the store's index for compressed storage.

    It offers what the store asks of a ``faiss.Index`` (``ntotal``, ``d``, ``metric_type``,
    ``is_trained``, ``add``, ``search``, ``reconstruct_batch``); ``base`` is the FAISS index.
    """

    def __init__(self, base: faiss.Index, vectors: FullVectors, k_factor: float) -> None:
        self.base = base
        self.vectors = vectors
        self.k_factor = k_factor

    @property
    def ntotal(self) -> int:
        return self.vectors.ntotal

    @property
    def d(self) -> int:
        return int(self.base.d)

    @property
    def metric_type(self) -> int:
        return int(self.base.metric_type)

    @property
    def is_trained(self) -> bool:
        return bool(self.base.is_trained)

    def add(self, x: np.ndarray) -> None:
        """Add to both parts, or to neither."""
        n = self.vectors.ntotal
        self.vectors.append(x)
        try:
            self.base.add(x)
        except BaseException:
            self.vectors.truncate(n)
            raise

    def copy(self) -> Reranked:
        """An independent copy (the compressed index cloned, the vectors copied into RAM)."""
        return Reranked(faiss.clone_index(self.base), self.vectors.copy(), self.k_factor)

    def reconstruct_batch(self, slots: np.ndarray) -> np.ndarray:
        """The full-precision vectors at ``slots``, never decoded approximations."""
        return self.vectors.take(np.asarray(slots, np.int64))

    def search(
        self, q: np.ndarray, k: int, params: RerankParameters | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The compressed index's best ``k_factor * k`` candidates, re-scored exactly: the
        best ``k`` of them by the exact metric (labels -1 where fewer were found)."""
        k_factor = self.k_factor if params is None else params.k_factor
        _, candidates = self.base.search(q, max(k, int(k * k_factor)), params=None if params is None else params.base)
        return self.rescore(np.ascontiguousarray(q, np.float32), candidates, k)

    def rescore(self, q: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The best ``k`` of each row's ``candidates`` (slots, -1: none) by the exact metric.

        FAISS's ``fvec_*_by_idx`` score each query against its candidates' rows in place (no
        gathered copy; what ``IndexRefineFlat`` runs), a -1 as the worst score.
        """
        candidates = np.ascontiguousarray(candidates, np.int64)
        if candidates.size and candidates.max() >= self.vectors.ntotal:  # never read past the array
            raise RuntimeError(f"the compressed index returned slot {candidates.max()} of {self.vectors.ntotal}")
        scores = np.empty(candidates.shape, np.float32)
        l2 = self.metric_type == faiss.METRIC_L2
        by_idx = faiss.fvec_L2sqr_by_idx if l2 else faiss.fvec_inner_products_by_idx
        ptr = faiss.swig_ptr
        by_idx(ptr(scores), ptr(q), ptr(self.vectors.array), ptr(candidates), self.d, len(q), candidates.shape[1])
        order = np.argsort(scores if l2 else -scores, axis=1, kind="stable")[:, :k]
        labels = np.take_along_axis(candidates, order, axis=1)
        distances = np.take_along_axis(scores, order, axis=1)
        none = labels < 0
        if none.any():
            distances[none] = NO_RESULT if l2 else -NO_RESULT
        return distances, labels
