"""parag's per-call overhead over raw FAISS, on the very same index object (issue 8's targets).

Usage: flock /tmp/parag-bench.lock .venv/bin/python benchmarks/bench_overhead.py [--repeats 3] [--profile]

Prints, for each figure, the median over repeats of the ratio parag / raw FAISS, measured
interleaved in one process (robust to a noisy machine):

- HNSW single-query p50 (debian-minilm, ef_search 64) and IVFFlat single-query p50
  (siftsmall): ``store.search(q, 10)`` against ``store.faiss_index.search(q', 10)`` for
  the store's own FAISS index, alternating calls, each side on a different query (so that
  neither finds the other's data in the CPU caches), ratio of the p50s;
- Flat add of 100k x 384 (synthetic-100k) with metadata: ``store.add(x, metadata)`` on a
  fresh store against ``IndexFlat.add(x)`` plus keeping the metadata list, alternating.

``--profile`` prints a cProfile of the parag side instead.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_data  # noqa: E402
from bench_systems import HNSW, ivf_params  # noqa: E402

from parag import FAISSVectorStore  # noqa: E402


def single_query_ratio(store: FAISSVectorStore, queries: np.ndarray, n: int) -> tuple[float, float, float]:
    """(ratio, parag p50 us, raw p50 us) of single queries, calls interleaved."""
    index, k = store.faiss_index, 10
    return interleaved(lambda q: store.search(q, k), lambda q: index.search(q[None, :], k), queries, n)


def interleaved(
    call: Callable[[np.ndarray], object], base: Callable[[np.ndarray], object], queries: np.ndarray, n: int
) -> tuple[float, float, float]:
    """(ratio, p50 us of ``call``, p50 us of ``base``) over ``n`` single queries, the two
    calls alternating, each on a different query (so that neither finds the other's data in
    the CPU caches)."""
    n = min(n, len(queries))
    rows = [np.ascontiguousarray(q) for q in queries[:n]]
    for q in rows[:20]:  # warm-up
        call(q), base(q)
    call_s, base_s = [], []
    for i in range(n):
        start = time.perf_counter()
        call(rows[i])
        middle = time.perf_counter()
        base(rows[(i + n // 2) % n])
        call_s.append(middle - start)
        base_s.append(time.perf_counter() - middle)
    c, b = float(np.median(call_s)), float(np.median(base_s))
    return c / b, 1e6 * c, 1e6 * b


def add_ratio(x: np.ndarray, metadata: list[dict], metric: str) -> tuple[float, float, float]:
    """(ratio, parag ms, raw ms) of one bulk add into an empty Flat index."""
    m = faiss.METRIC_INNER_PRODUCT if metric == "IP" else faiss.METRIC_L2
    start = time.perf_counter()
    store = FAISSVectorStore(x.shape[1], "Flat", metric)
    store.add(x, metadata)
    middle = time.perf_counter()
    index, kept = faiss.IndexFlat(x.shape[1], m), list(metadata)
    index.add(x)
    end = time.perf_counter()
    del store, index, kept  # freed after both clocks stop: freeing is neither side's add
    p, r = middle - start, end - middle
    return p / r, 1e3 * p, 1e3 * r


def search_store(name: str, index_type: str) -> tuple[FAISSVectorStore, np.ndarray]:
    data = bench_data.load(name)
    params = HNSW if index_type == "HNSW" else ivf_params(data.n)
    store = FAISSVectorStore(data.d, index_type, data.metric, **params)
    store.add(data.base, bench_data.metadata(data.n)[0])
    return store, data.queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-single", type=int, default=1000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    hnsw = search_store("debian-minilm", "HNSW")
    ivf = search_store("siftsmall", "IVFFlat")
    flat = bench_data.load("synthetic-100k")
    flat_meta = bench_data.metadata(flat.n)[0]
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        for store, queries in (hnsw, ivf):
            for q in queries[: args.n_single]:
                store.search(q, 10)
        FAISSVectorStore(flat.d, "Flat", flat.metric).add(flat.base, flat_meta)
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
        return
    rows = {"HNSW single-query p50 (debian-minilm, ef_search 64)": [], "IVFFlat single-query p50 (siftsmall)": [],
            "Flat add 100k x 384 with metadata (synthetic-100k)": []}
    for _ in range(args.repeats):
        figures = [single_query_ratio(*hnsw, args.n_single), single_query_ratio(*ivf, args.n_single),
                   add_ratio(flat.base, flat_meta, flat.metric)]
        for row, figure in zip(rows.values(), figures):
            row.append(figure)
    # The difference column is the "us of Python per call" (medians of each side).
    print("| figure | parag / raw FAISS (median of %d) | parag | raw FAISS | parag - raw |" % args.repeats)
    print("|---|---|---|---|---|")
    units = ["us", "us", "ms"]
    for (name, runs), unit in zip(rows.items(), units):
        ratio, p, r = (float(np.median([run[i] for run in runs])) for i in range(3))
        print(f"| {name} | {ratio:.3f} | {p:.1f} {unit} | {r:.1f} {unit} | {p - r:.1f} {unit} |")


if __name__ == "__main__":
    main()
