"""Exact re-ranking: a compressed FAISS index beside the full-precision vector of every slot.

A compressed store (``storage`` float16, sq8 or pq) keeps two things: the compressed index,
which proposes ``rerank * k`` candidates per query, and :class:`FullVectors`, the float32
vector of every slot in slot order, which re-scores those candidates with the exact metric.
The full vectors are also what ``get(include_vectors=True)`` returns, what a compaction
rebuilds from and what exact (filtered, fallback) searches score.

They are plain float32 rows, not part of the FAISS index, so that a store saves them as a
raw file of their own (``vectors.<gen>-<tag>.f32``) and a store loaded with ``mmap=True``
reads from that file: then only the compressed index takes RAM, and a search reads just
the ``rerank * k`` rows it re-scores (:mod:`.full_vectors`). In a store built in memory, or
loaded without ``mmap``, they are in RAM (4 bytes per component, beside the codes) unless it
was given a ``vectors_dir`` to keep them in a file.
"""

from __future__ import annotations

import faiss
import numpy as np

from parag._threads import threads_for
from parag.vectorstore.kinds.full_vectors import FullVectors


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
        """An independent copy: the compressed index cloned, the vectors copied as
        :meth:`FullVectors.copy` copies them (into a new temporary file of ``vectors_dir``,
        else into RAM, a mapped store's too)."""
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
        """The best ``k`` of each row's ``candidates`` (slots, -1: none) by the exact metric,
        best first (labels -1 and the worst score, float32 max or its negative, where fewer
        were found).

        FAISS's ``knn_*_by_idx`` score each query against its candidates' rows and keep the
        best k in one C++ pass (what ``IndexRefineFlat`` runs; a numpy sort after it cost
        ~0.5 ms per batch of 500 queries): in place for vectors in RAM, else in the
        candidates' rows read from the file.
        """
        candidates = np.ascontiguousarray(candidates, np.int64)
        if candidates.size and candidates.max() >= self.vectors.ntotal:  # never read past the array
            raise RuntimeError(f"the compressed index returned slot {candidates.max()} of {self.vectors.ntotal}")
        n = len(q)
        distances, labels = np.empty((n, k), np.float32), np.empty((n, k), np.int64)
        knn = faiss.knn_L2sqr_by_idx if self.metric_type == faiss.METRIC_L2 else faiss.knn_inner_products_by_idx
        ptr = faiss.swig_ptr
        xb, rows, row_slots = self.vectors.gathered(candidates)
        # FAISS scores even one query's candidates in an OpenMP region: after an IVF search,
        # waking the other thread for those few microseconds of work cost 0.35 ms per search on
        # average (a mapped 10M store). So the threads its search would use, one for one query.
        m = candidates.shape[1]
        with threads_for(n, self.ntotal):  # (the row stride m given: FAISS's default for it is the array's length)
            knn(ptr(q), ptr(xb), ptr(rows), self.d, n, len(xb), m, k, ptr(distances), ptr(labels), m)
        if row_slots is not None:  # rows read from the file: their slots
            found = labels >= 0
            labels[found] = row_slots[labels[found]]
        return distances, labels
