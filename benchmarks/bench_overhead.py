"""parag's per-call overhead over raw FAISS, on the very same index object (issue 8's targets).

Usage: flock /tmp/parag-bench.lock .venv/bin/python benchmarks/bench_overhead.py [--repeats 3] [--profile]

Prints, for each figure, the median over repeats of the ratio parag / raw FAISS, measured
interleaved in one process (robust to a noisy machine):

- HNSW single-query p50 (debian-minilm, ef_search 64) and IVFFlat single-query p50
  (siftsmall): ``store.search(q, 10)`` against ``store.faiss_index.search(q', 10)`` for
  the store's own FAISS index, alternating calls, each side on a different query (so that
  neither finds the other's data in the CPU caches), ratio of the p50s; and, in the same
  interleaving, ``store.search(q, 10, include=())``, which returns what raw FAISS returns
  (ids and scores: no metadata or documents decoded);
- Flat add of 100k x 384 (synthetic-100k) with metadata: ``store.add(x, metadata)`` on a
  fresh store against ``IndexFlat.add(x)`` plus keeping the metadata list, alternating.

Beside each, the floor: the least that any store returning what parag returns must do on top
of the same FAISS call, timed in the same interleaving. For a search: a lock held around
FAISS's C call, the distances and ids as lists, and the hits' metadata decoded from their JSON
rows kept as bytes (one ``orjson.loads``); for an add: the one ``orjson.dumps`` of the
metadata that keeping it as JSON costs. A target below the floor's ratio cannot be met by
any change to parag's Python: only by doing less than the floor (e.g. no metadata decoded).

``--profile`` prints a cProfile of the parag side instead.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import faiss
import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_data  # noqa: E402
from bench_systems import HNSW, ivf_params  # noqa: E402

from parag import FAISSVectorStore  # noqa: E402


def single_query_ratio(store: FAISSVectorStore, queries: np.ndarray, n: int) -> tuple[float, ...]:
    """(ratio, parag p50 us, raw p50 us, floor ratio, ratio with ``include=()``) of single
    queries, calls interleaved."""
    index, k = store.faiss_index, 10
    floor = floor_search(index, store.get(store.ids(), include=("metadata",)).metadata, k)
    parag, raw, floored, bare = interleaved(
        [lambda q: store.search(q, k), lambda q: index.search(q[None, :], k), floor,
         lambda q: store.search(q, k, include=())],
        queries, n)
    return parag / raw, parag, raw, floored / raw, bare / raw


def floor_search(index: faiss.Index, metadata: list[dict], k: int) -> Callable[[np.ndarray], object]:
    """The least a thread-safe store returning distances, ids and metadata as lists does
    around FAISS's search of one query (see the module's docstring)."""
    lock, rows = threading.Lock(), [orjson.dumps(m) for m in metadata]

    def search(q: np.ndarray) -> tuple[list[float], list[int], list[dict]]:
        with lock:
            distances, labels = np.empty(k, np.float32), np.empty(k, np.int64)
            index.search_c(1, faiss.swig_ptr(q), k, faiss.swig_ptr(distances), faiss.swig_ptr(labels), None)
            ids = labels.tolist()
            return distances.tolist(), ids, orjson.loads(b"[" + b",".join([rows[i] for i in ids]) + b"]")

    return search


def interleaved(calls: Sequence[Callable[[np.ndarray], object]], queries: np.ndarray, n: int) -> list[float]:
    """The p50 (us) of each of ``calls`` over ``n`` single queries, the calls in turn, each on
    a different query (so that none finds another's data in the CPU caches)."""
    n = min(n, len(queries))
    rows = [np.ascontiguousarray(q) for q in queries[:n]]
    for q in rows[:20]:  # warm-up
        for call in calls:
            call(q)
    times: list[list[float]] = [[] for _ in calls]
    for i in range(n):
        for j, (call, spent) in enumerate(zip(calls, times)):
            q = rows[(i + j * n // len(calls)) % n]
            start = time.perf_counter()
            call(q)
            spent.append(time.perf_counter() - start)
    return [1e6 * float(np.median(t)) for t in times]


def add_ratio(x: np.ndarray, metadata: list[dict], metric: str) -> tuple[float, ...]:
    """(ratio, parag ms, raw ms, floor ratio) of one bulk add into an empty Flat index."""
    m = faiss.METRIC_INNER_PRODUCT if metric == "IP" else faiss.METRIC_L2
    start = time.perf_counter()
    store = FAISSVectorStore(x.shape[1], "Flat", metric)
    store.add(x, metadata)
    middle = time.perf_counter()
    index, kept = faiss.IndexFlat(x.shape[1], m), list(metadata)
    index.add(x)
    end = time.perf_counter()
    floor_index, floor_json = faiss.IndexFlat(x.shape[1], m), orjson.dumps(metadata)
    floor_index.add(x)
    floor_end = time.perf_counter()
    del store, index, kept, floor_index, floor_json  # freed after the clocks stop: freeing is no side's add
    p, r, f = middle - start, end - middle, floor_end - end
    return p / r, 1e3 * p, 1e3 * r, f / r


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
    print("| figure | parag / raw FAISS (median of %d) | parag | raw FAISS | parag - raw | floor / raw FAISS "
          "| parag include=() / raw FAISS |" % args.repeats)
    print("|---|---|---|---|---|---|---|")
    units = ["us", "us", "ms"]
    for (name, runs), unit in zip(rows.items(), units):
        ratio, p, r, floor = (float(np.median([run[i] for run in runs])) for i in range(4))
        bare = f"{float(np.median([run[4] for run in runs])):.3f}" if len(runs[0]) > 4 else "-"
        print(f"| {name} | {ratio:.3f} | {p:.1f} {unit} | {r:.1f} {unit} | {p - r:.1f} {unit} | {floor:.3f} | {bare} |")


if __name__ == "__main__":
    main()
