"""What a loaded index of a kind must be: the checks :mod:`parag.vectorstore.faiss_format`
runs on an index read from a file before a store uses it (FAISS itself checks little)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import faiss

from parag.vectorstore.kinds.rerank import Reranked

if TYPE_CHECKING:
    from parag.vectorstore.kinds.full_vectors import FullVectors


class KindLoading:
    """The loading half of :class:`~parag.vectorstore.kinds.IndexKind` (mixed into it; it
    calls the kind's methods below)."""

    storage_type: str

    if TYPE_CHECKING:
        def train_at(self) -> int: ...
        def is_trained(self, index: faiss.Index) -> bool: ...
        def inner(self, index: faiss.Index) -> faiss.Index: ...
        def storage(self, index: faiss.Index) -> faiss.Index | FullVectors: ...

    def expected_type(self, trained: bool) -> type:
        """The FAISS class a saved index of this kind is (``trained`` as the manifest says)."""
        if self.train_at() and not trained:
            return faiss.IndexFlat
        return Reranked if self.storage_type != "float32" else self.own_type()

    def own_type(self) -> type:
        """The FAISS class of the kind's own index for its storage."""
        return faiss.IndexFlat

    def check_structure(self, index: faiss.Index, where: str) -> None:
        """Raise CorruptStoreError unless the loaded index's internal references hold (what
        FAISS does not check when it reads a file)."""
        if self.is_trained(index):
            self.own_structure(self.inner(index), where)

    def own_structure(self, inner: faiss.Index, where: str) -> None:
        """:meth:`check_structure` of the kind's own (unwrapped, trained) index."""

    def load_problems(self, index: faiss.Index) -> list[str]:
        """What is wrong with a loaded index of the expected type, beyond dimension, metric
        and count (empty: nothing)."""
        if not self.is_trained(index):  # a Flat buffer until trained, which FAISS marks as trained
            return [] if index.is_trained else ["it is marked as not trained"]
        inner = self.inner(index)
        if not isinstance(inner, self.own_type()):
            return [f"it holds a {type(inner).__name__}, expected {self.own_type().__name__}"]
        problems = self.own_problems(inner)
        if not (index.is_trained and inner.is_trained):
            problems.append("it is marked as not trained")
        if isinstance(index, Reranked):
            if self.storage(index).ntotal != index.ntotal or inner.ntotal != index.ntotal:
                problems.append("its float32 vectors and its compressed index hold different counts")
            if inner.metric_type != index.metric_type or self.storage(index).metric_type != index.metric_type:
                problems.append("its parts use different metrics")
        return problems

    def own_problems(self, inner: faiss.Index) -> list[str]:
        """:meth:`load_problems` of the kind's own index."""
        return []
