"""Flat: every query scored against every stored vector (``faiss.IndexFlat``; compressed:
``faiss.IndexScalarQuantizer``)."""

from __future__ import annotations

from typing import ClassVar

import faiss

from parag.vectorstore.kinds.base import IndexKind
from parag.vectorstore.kinds.storage import SQ_TYPES, codec_problems


class Flat(IndexKind):
    """Exact search: every query is scored against every stored vector (with a compressed
    storage, every code is scored and the best ``rerank * k`` re-scored exactly)."""

    name = "Flat"
    aliases: ClassVar[dict[str, str]] = {"flatl2": "L2", "flatip": "IP"}
    # FAISS's flat PQ index ignores selectors: deleted and filtered-out vectors would come back.
    storages: ClassVar[tuple[str, ...]] = ("float32", "float16", "sq8")
    # Rebuilding a Flat index is a copy, and tombstones cost it its selector-free fast path.
    compact_at = 0.1

    def build(self) -> faiss.Index:
        if self.storage_type == "float32":
            return super().build()
        return faiss.IndexScalarQuantizer(self.dimension, SQ_TYPES[self.storage_type], self.faiss_metric)

    def exact_filter_limit(self, n_live: int) -> int:
        return n_live  # a filtered Flat search scores the allowed float32 vectors: exact

    def own_type(self) -> type:
        return faiss.IndexFlat if self.storage_type == "float32" else faiss.IndexScalarQuantizer

    def own_problems(self, inner: faiss.Index) -> list[str]:
        return codec_problems(self.storage_type, self.params, self.dimension, inner)

