"""HNSW: a graph over the vectors (``faiss.IndexHNSWFlat``; compressed: ``IndexHNSWSQ``, ``IndexHNSWPQ``)."""

from __future__ import annotations

from typing import Any, ClassVar

import faiss

from parag._faiss_integrity import check_hnsw_structure
from parag._validation import Param
from parag.vectorstore.kinds.base import WIDEN_POWER, IndexKind
from parag.vectorstore.kinds.storage import PQ_BITS, SQ_TYPES, codec_problems

# A filter never widens ef_search beyond this (the exact fallback covers what it misses).
MAX_WIDENED_EF = 1024
# The largest ef_search tune tries.
MAX_TUNED_EF = 4096


# The default ef_search for a graph of up to n vectors: (n, ef_search), ascending. Measured
# with raw FAISS HNSW32 (benchmarks/bench_defaults.py, docs/bench-defaults.md) on clustered
# 384-d data, the hardest of the sets: recall@10 at ef 64 falls from 0.984 at 100k to 0.929
# at 300k (0.87 at 1M), where ef 192 gives 0.964. Beyond 400k the steps are extrapolated
# (not yet measured).
EF_SEARCH_BY_SIZE = ((150_000, 64), (400_000, 192), (1_500_000, 512))
EF_SEARCH_LARGEST = 1024

# The default ef_construction for an add that leaves the graph with up to n vectors: (n,
# ef_construction), ascending. Past a hundred thousand clustered vectors a graph linked with
# efConstruction 40 stops finding its neighbours at any ef_search (raw FAISS HNSW32 on
# synthetic clustered 384-d data, docs/bench-defaults.md: recall@10 at most 0.973 at 300k,
# 0.87 at 1M with ef_search 64), while efConstruction 80 gives 0.995 at ef_search 64 at 300k
# for a longer build (measured there). FAISS lets efConstruction change between adds, so a growing
# graph links its later vectors with the larger value; small stores keep the cheap build.
EF_CONSTRUCTION_BY_SIZE = ((150_000, 40),)
EF_CONSTRUCTION_LARGEST = 80


def _by_size(table: tuple[tuple[int, int], ...], largest: int, n: int) -> int:
    """The value of the first ``(most, value)`` step of ``table`` with ``n <= most``, else ``largest``."""
    return next((value for most, value in table if n <= most), largest)


def default_ef_search(n: int) -> int:
    """The ef_search a search of a graph of ``n`` vectors uses when none was given.

    Examples
    --------
    >>> default_ef_search(50_000), default_ef_search(1_000_000)
    (64, 512)
    """
    return _by_size(EF_SEARCH_BY_SIZE, EF_SEARCH_LARGEST, n)


def default_ef_construction(n: int) -> int:
    """The ef_construction an add that leaves a graph with ``n`` vectors uses when none was given.

    Examples
    --------
    >>> default_ef_construction(50_000), default_ef_construction(1_000_000)
    (40, 80)
    """
    return _by_size(EF_CONSTRUCTION_BY_SIZE, EF_CONSTRUCTION_LARGEST, n)


class HNSW(IndexKind):
    """Approximate search on a navigable small-world graph; ``ef_search`` trades recall for time."""

    name = "HNSW"
    # Defaults reach recall@10 0.97 on real MiniLM embeddings (debian-minilm, 59k x 384);
    # FAISS's own efSearch 16 gives 0.9. An ef_search or ef_construction not given follows the
    # graph's size.
    params_table: ClassVar[tuple[Param, ...]] = (
        Param("M", 32, 2, 256),
        Param("ef_construction", default_ef_construction(0), 1, 1 << 16),
        Param("ef_search", default_ef_search(0), 1, 1 << 16, per_search=True),
    )
    scaled = ("ef_search", "ef_construction")
    # FAISS's HNSW-PQ graph is poor for inner products: recall@10 0.82 with rerank 50 on
    # clustered data where HNSW-SQ8 reaches 0.99.
    storage_metrics: ClassVar[dict[str, tuple[str, ...]]] = {"pq": ("L2",)}
    # HNSW cannot remove vectors and rebuilding its graph is slow; recall holds to 80% deleted.
    compact_at = 0.5
    tunable = "ef_search"

    def build(self) -> faiss.Index:
        d, m, metric, storage = self.dimension, self.params["M"], self.faiss_metric, self.storage_type
        if storage == "float32":
            index = faiss.IndexHNSWFlat(d, m, metric)
        elif storage == "pq":
            index = faiss.IndexHNSWPQ(d, self.params["pq_m"], m, PQ_BITS, metric)
        else:
            index = faiss.IndexHNSWSQ(d, SQ_TYPES[storage], m, metric)
        index.hnsw.efConstruction = self.params["ef_construction"]
        self.apply_own_defaults(index)
        return index

    def apply_own_defaults(self, inner: faiss.Index) -> None:
        inner.hnsw.efSearch = self.params["ef_search"]

    def follow_size(self, index: faiss.Index) -> None:
        # The graph's size, tombstones included: a search walks through them too.
        if "ef_search" in self.auto:
            self.params["ef_search"] = default_ef_search(index.ntotal)
        if "ef_construction" in self.auto:
            self.params["ef_construction"] = default_ef_construction(index.ntotal)

    def before_add(self, index: faiss.Index, n_slots: int) -> None:
        # The vectors an add inserts are linked with the ef_construction of the size it leaves
        # (a graph built or rebuilt from them, too: build() reads the parameter).
        if "ef_construction" in self.auto:
            self.params["ef_construction"] = default_ef_construction(n_slots)
            if self.is_trained(index):
                self.inner(index).hnsw.efConstruction = self.params["ef_construction"]

    def own_storage(self, index: faiss.Index) -> faiss.Index:
        return faiss.downcast_index(index.storage)

    def own_parameters(
        self, inner: faiss.Index, sel: faiss.IDSelector | None, overrides: dict[str, Any]
    ) -> faiss.SearchParameters | None:
        if sel is None and "ef_search" not in overrides:
            return None
        kwargs: dict[str, Any] = {"efSearch": overrides.get("ef_search", self.params["ef_search"])}
        if sel is not None:
            kwargs["sel"] = sel
        return faiss.SearchParametersHNSW(**kwargs)

    def splits_one_query(self, index: faiss.Index) -> bool:
        return not self.is_trained(index)  # a graph search runs on the calling thread

    def widened(self, index: faiss.Index, overrides: dict[str, int], share: float, k: int) -> dict[str, int]:
        # FAISS searches with max(efSearch, k): widen what it would really use.
        ef = max(overrides.get("ef_search", self.params["ef_search"]), k)
        return {**overrides, "ef_search": int(min(ef / share**WIDEN_POWER, MAX_WIDENED_EF))}

    def tune_range(self, k: int) -> tuple[int, int]:
        return k, MAX_TUNED_EF

    def own_type(self) -> type:
        return {"float32": faiss.IndexHNSWFlat, "pq": faiss.IndexHNSWPQ}.get(self.storage_type, faiss.IndexHNSWSQ)

    def own_structure(self, inner: faiss.Index, where: str) -> None:
        check_hnsw_structure(inner, where)

    def own_problems(self, inner: faiss.Index) -> list[str]:
        storage = faiss.downcast_index(inner.storage)
        untrained = [] if storage.is_trained else ["its graph's storage is marked as not trained"]
        return untrained + codec_problems(self.storage_type, self.params, self.dimension, storage)
