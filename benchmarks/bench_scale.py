"""The 10M x 384 benchmark (opt-in, not in the default run): ``./run bench --scale 10m``.

Usage::

    flock /tmp/parag-bench.lock ./run bench --scale 10m [--n 10000000] [--index HNSW] [--storage sq8]

Builds an ``n`` x 384 store of synthetic clustered unit vectors (1,000 centres, inner
product, generated and added a chunk at a time: 10M x 384 float32 is 15 GB) with a small
metadata dict per vector, in the memory-saving configuration (HNSW + sq8 + re-ranking by
default), saves it, and measures, in a fresh process that loads it with ``mmap=True``:
build time, peak RSS of the build, disk size, steady RSS after loading and after the
queries, recall@10 against exact search (brute force over the chunks), single-query p50/p95,
batch QPS and the p50 of a 1%-selective filtered search. Raw JSON goes to
``docs/bench-results/scale/`` for the full size, ``benchmarks/results/scale/`` otherwise.
The store takes parag's defaults: ``ef_construction`` and ``ef_search`` follow its size.

A full 10M run takes hours on 2 cores: a 1M HNSW store at the defaults built in 1,485 s on
the shared machine (docs/bench-defaults.md), so 10M needs at least ten times that. The store
is built with ``vectors_dir`` (a temporary directory beside this script, on disk): its
float32 vectors (4·d = 1,536 bytes per vector, 15.4 GB at 10M) go to a file as they are
added instead of RAM, which then holds the sq8 codes, the graph, ids and metadata. Disk
needed at 10M: that file plus the saved store (its copy of the vectors and the index),
about 38 GB. Each chunk's add time and the RSS after the build are recorded too.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_provenance import PUBLISHED_RESULTS, ROOT, provenance, write_json  # noqa: E402

from parag import FAISSVectorStore  # noqa: E402

FULL = 10_000_000
D, CENTRES, CHUNK = 384, 1000, 200_000


def chunk(i: int, n: int) -> np.ndarray:
    """Chunk ``i`` (``n`` rows) of the dataset: unit vectors around shared centres."""
    centres = np.random.default_rng(0).standard_normal((CENTRES, D)).astype(np.float32)
    rng = np.random.default_rng(i + 1)
    x = centres[rng.integers(0, CENTRES, n)] + 0.5 * rng.standard_normal((n, D)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def chunks(n: int):
    for i, start in enumerate(range(0, n, CHUNK)):
        yield start, chunk(i, min(CHUNK, n - start))


def exact_top10(n: int, queries: np.ndarray) -> np.ndarray:
    """The true top 10 of ``queries`` over the whole dataset, chunk by chunk."""
    heap = faiss.ResultHeap(len(queries), 10, keep_max=True)
    for start, x in chunks(n):
        distances, labels = faiss.knn(queries, x, 10, metric=faiss.METRIC_INNER_PRODUCT)
        heap.add_result(distances, labels + start)
    heap.finalize()
    return heap.I


def rss() -> dict[str, int]:
    """This process's resident anonymous and file-backed memory, in bytes."""
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {k: 1024 * int(fields[k].split()[0]) for k in ("RssAnon", "RssFile")}


SEARCH = """
import json, sys, time
import numpy as np
from parag import FAISSVectorStore
def rss():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {k: 1024 * int(fields[k].split()[0]) for k in ("RssAnon", "RssFile")}
path, queries, truth = sys.argv[1], np.load(sys.argv[2]), np.load(sys.argv[3])
store = FAISSVectorStore.load(path, mmap=True, verify=False)
loaded = rss()
single = []
for q in queries:
    start = time.perf_counter(); store.search(q, k=10); single.append(time.perf_counter() - start)
start = time.perf_counter(); ids = store.search(queries, k=10).ids; batch = time.perf_counter() - start
filtered = []
for q in queries[:100]:
    start = time.perf_counter(); store.search(q, k=10, filter={"source": "s7"}); filtered.append(time.perf_counter() - start)
recall = sum(len(set(r) & set(t.tolist())) for r, t in zip(ids, truth)) / truth.size
print(json.dumps({"rss_loaded": loaded, "rss_searched": rss(), "recall": recall,
                  "single_p50_ms": 1000 * float(np.median(single)), "single_p95_ms": 1000 * float(np.percentile(single, 95)),
                  "batch_qps": len(queries) / batch, "filtered_1%_p50_ms": 1000 * float(np.median(filtered))}))
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=FULL)
    parser.add_argument("--index", default="HNSW")
    parser.add_argument("--storage", default="sq8")
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args(argv)
    results = PUBLISHED_RESULTS / "scale" if args.n == FULL else ROOT / "benchmarks" / "results" / "scale"
    prov = provenance()
    queries = chunk(10**6, args.queries)  # a seed no data chunk uses
    with tempfile.TemporaryDirectory(dir=ROOT / "benchmarks") as tmp:
        store = FAISSVectorStore(D, args.index, "IP", storage=args.storage, vectors_dir=tmp)
        start, chunk_s = time.perf_counter(), []
        for first, x in chunks(args.n):
            metadata = [{"source": f"s{i % 100}"} for i in range(first, first + len(x))]
            chunk_start = time.perf_counter()
            store.add(x, metadata)
            chunk_s.append(time.perf_counter() - chunk_start)
        build_s, build_rss = time.perf_counter() - start, rss()
        path = Path(tmp) / "store"
        start = time.perf_counter()
        store.save(path)
        save_s = time.perf_counter() - start
        params, disk = store.params, sum(f.stat().st_size for f in path.iterdir())
        del store
        np.save(Path(tmp) / "q.npy", queries)
        np.save(Path(tmp) / "truth.npy", exact_top10(args.n, queries))
        done = subprocess.run([sys.executable, "-c", SEARCH, str(path), str(Path(tmp) / "q.npy"),
                               str(Path(tmp) / "truth.npy")], capture_output=True, text=True, check=True)
        shutil.rmtree(path)
    record = {"n": args.n, "d": D, "index_type": args.index, "params": params, "provenance": prov,
              "build_s": build_s, "chunk_s": chunk_s, "save_s": save_s, "build_rss": build_rss,
              "peak_build_rss": 1024 * resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
              "disk_bytes": disk, **json.loads(done.stdout)}
    write_json(results / f"scale-{args.n}.json", record)
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
