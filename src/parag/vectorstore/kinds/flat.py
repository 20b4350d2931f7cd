"""Flat: exact search over every vector (``faiss.IndexFlat``)."""

from __future__ import annotations

from typing import ClassVar

from parag.vectorstore.kinds.base import IndexKind


class Flat(IndexKind):
    """Exact search: every query is scored against every stored vector."""

    name = "Flat"
    aliases: ClassVar[dict[str, str]] = {"flatl2": "L2", "flatip": "IP"}
    # Rebuilding a Flat index is a copy, and tombstones cost it its selector-free fast path.
    compact_at = 0.1

    def exact_filter_limit(self, n_live: int) -> int:
        return n_live  # a Flat search is always exact
