"""The 10M x 384 benchmark (opt-in, not in the default run): ``./run bench --scale 10m``.

Usage::

    flock /tmp/parag-bench.lock ./run bench --scale 10m [--n 10000000] [--index HNSW] [--storage sq8]
                                                        [--checkpoint-every 1000000] [--fresh]

Builds an ``n`` x 384 store of synthetic clustered unit vectors (1,000 centres, inner
product, generated and added a chunk of 200,000 at a time: 10M x 384 float32 is 15 GB) with a
small metadata dict per vector, in the memory-saving configuration (HNSW + sq8 + re-ranking by
default), saves it, and measures, in a fresh process that loads it with ``mmap=True``:
build time, peak RSS of the build, disk size, steady RSS after loading and after the
queries, recall@10 against exact search (brute force over the chunks), single-query p50/p95,
batch QPS and the p50 of a 1%-selective filtered search. Raw JSON goes to
``docs/bench-results/scale/`` for the full size, ``benchmarks/results/scale/`` otherwise.
The store takes parag's defaults: ``ef_construction`` and ``ef_search`` follow its size.

A full 10M run takes hours on 2 cores (a 1M HNSW store at the defaults built in 1,485 s on
the shared machine, docs/bench-defaults.md; 0.3-0.4 ms per vector at 200k-600k), longer than
a working session, so the build is **resumable**. Its work directory,
``benchmarks/results/scale-work/<index>-<storage>-<n>/``, holds one checkpoint: the store,
saved (atomically) every ``--checkpoint-every`` vectors and at the end, and ``progress.json``
(vectors added, build seconds so far, each run's start). Rerunning the same command (same
``--n``, ``--index``, ``--storage``) loads the checkpoint and adds the chunks after it; a
stop (SIGTERM, SIGKILL, a session's end) loses at most the chunks since the last checkpoint.
The report adds the build seconds of every run (``build_s``; ``runs`` lists them, and
``resumed`` is true when there was more than one); ``peak_build_rss`` is the largest of
theirs, ``build_rss`` the RSS at the last checkpoint. Once the build is complete a rerun only
re-measures. ``--fresh`` discards the checkpoint and starts again. The data are not cached:
each chunk is regenerated from its seed (about a second) instead of taking 15 GB of disk;
the exact top 10 of the queries is computed once per ``n`` and cached beside the work
directories. A resumed HNSW graph draws its new vectors' levels from a fresh generator (FAISS
does not save its state): the same distribution, so the graph's quality is unchanged.

The store is built with ``vectors_dir`` (the work directory): its float32 vectors (4·d =
1,536 bytes per vector, 15.4 GB at 10M) go to an unnamed temporary file there as they are
added instead of RAM, which then holds the sq8 codes, the graph, ids and metadata; a killed
run's file goes with its process. A resumed run copies the checkpoint's vectors into a new
one. Disk: the checkpoint (about 2,200 bytes per vector, 22 GB at 10M) plus that file, plus
the new checkpoint while it is saved; when the free disk would not hold both checkpoints, the
old one is removed before the save (said on the console and counted in ``unprotected_saves``:
a stop during that save loses the build). Remove the work directory to free the disk after
the run: ``rm -r benchmarks/results/scale-work``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_provenance import PUBLISHED_RESULTS, ROOT, provenance, read_json, write_json  # noqa: E402

from parag import FAISSVectorStore  # noqa: E402

FULL = 10_000_000
D, CENTRES, CHUNK = 384, 1000, 200_000
WORK = ROOT / "benchmarks" / "results" / "scale-work"
# Disk per vector of a saved HNSW sq8 store (2,222 measured at 600k), before the first
# checkpoint says; and the disk left to others after a save.
STORE_BYTES_PER_VECTOR, DISK_RESERVE = 2_300, 3 * 2**30


def chunk(i: int, n: int) -> np.ndarray:
    """Chunk ``i`` (``n`` rows) of the dataset: unit vectors around shared centres."""
    centres = np.random.default_rng(0).standard_normal((CENTRES, D)).astype(np.float32)
    rng = np.random.default_rng(i + 1)
    x = centres[rng.integers(0, CENTRES, n)] + 0.5 * rng.standard_normal((n, D)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def chunks(n: int, start: int = 0) -> Iterator[tuple[int, np.ndarray]]:
    """``(first row, rows)`` of each chunk of the ``n``-row dataset from row ``start`` (a chunk boundary)."""
    for first in range(start, n, CHUNK):
        yield first, chunk(first // CHUNK, min(CHUNK, n - first))


def exact_top10(n: int, queries: np.ndarray) -> np.ndarray:
    """The true top 10 of ``queries`` over the whole dataset, chunk by chunk; cached on disk."""
    cached = WORK / f"truth-{n}x{D}-chunk{CHUNK}-q{len(queries)}.npy"
    if cached.exists():
        return np.load(cached)
    heap = faiss.ResultHeap(len(queries), 10, keep_max=True)
    for start, x in chunks(n):
        distances, labels = faiss.knn(queries, x, 10, metric=faiss.METRIC_INNER_PRODUCT)
        heap.add_result(distances, labels + start)
    heap.finalize()
    cached.parent.mkdir(parents=True, exist_ok=True)
    np.save(cached.with_suffix(".tmp.npy"), heap.I)
    os.replace(cached.with_suffix(".tmp.npy"), cached)
    return heap.I


def rss() -> dict[str, int]:
    """This process's resident anonymous and file-backed memory, in bytes."""
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {k: 1024 * int(fields[k].split()[0]) for k in ("RssAnon", "RssFile")}


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


def run(first: int, load_s: float) -> dict[str, Any]:
    """The record of one build run: where it started, its checkpoint's load time, its code."""
    prov = provenance()
    return {"from": first, "load_s": load_s, **{k: prov[k] for k in ("commit", "src", "started")}}


def start_or_resume(args: argparse.Namespace, work: Path) -> tuple[FAISSVectorStore | None, dict[str, Any]]:
    """The store to add to (None when the build is complete) and its progress record."""
    progress_file, path = work / "progress.json", work / "store"
    if progress_file.exists() and (path / "manifest.json").exists():
        progress = read_json(progress_file)
        if progress["done"]:
            return None, progress
        start = time.perf_counter()
        store = FAISSVectorStore.load(path, verify=False, vectors_dir=work)
        if len(store) != progress["n_added"]:  # stopped between the save and the progress file
            progress.update(n_added=len(store), build_s_incomplete=True)
        progress["runs"].append(run(len(store), time.perf_counter() - start))
        print(f"resuming at {len(store):,} of {args.n:,} vectors ({progress['build_s']:.0f} s of build so far)", flush=True)
        return store, progress
    if progress_file.exists():
        print("the checkpoint was lost (a stop during an unprotected save): building from the start", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    store = FAISSVectorStore(D, args.index, "IP", storage=args.storage, vectors_dir=work)
    progress = {"n": args.n, "chunk": CHUNK, "n_added": 0, "done": False, "build_s": 0.0, "chunk_s": [],
                "save_s": [], "unprotected_saves": 0, "runs": [run(0, 0.0)]}
    return store, progress


def checkpoint(store: FAISSVectorStore, work: Path, progress: dict[str, Any]) -> None:
    """Save ``store`` over the work directory's checkpoint, then record ``progress``."""
    path = work / "store"
    per_vector = progress["disk_bytes"] / progress["n_added"] if progress.get("disk_bytes") else STORE_BYTES_PER_VECTOR
    if path.exists() and shutil.disk_usage(work).free < per_vector * len(store) + DISK_RESERVE:
        print("not enough disk for two checkpoints: the old one is removed before this save", flush=True)
        shutil.rmtree(path)
        progress["unprotected_saves"] += 1
    start = time.perf_counter()
    store.save(path)
    progress["save_s"].append(time.perf_counter() - start)
    progress.update(n_added=len(store), done=len(store) == progress["n"], disk_bytes=dir_bytes(path))
    write_json(work / "progress.tmp.json", progress)
    os.replace(work / "progress.tmp.json", work / "progress.json")
    print(f"checkpoint at {len(store):,} vectors: build {progress['build_s']:.0f} s, save "
          f"{progress['save_s'][-1]:.1f} s, {progress['disk_bytes'] / 2**30:.2f} GiB", flush=True)


def build(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Add the chunks not yet in the checkpoint, saving one every ``--checkpoint-every`` vectors."""
    store, progress = start_or_resume(args, work)
    if store is None:
        print(f"build complete ({progress['build_s']:.0f} s): measuring again", flush=True)
        return progress
    every = max(CHUNK, args.checkpoint_every // CHUNK * CHUNK)
    for first, x in chunks(args.n, progress["n_added"]):
        start, cpu = time.perf_counter(), time.process_time()
        metadata = [{"source": f"s{i % 100}"} for i in range(first, first + len(x))]
        store.add(x, metadata)
        progress["chunk_s"].append(time.perf_counter() - start)
        # CPU seconds (all threads) too: on a shared machine wall time says little alone.
        progress.setdefault("chunk_cpu_s", []).append(time.process_time() - cpu)
        progress["build_s"] += progress["chunk_s"][-1]
        if len(store) % every == 0 or len(store) == args.n:
            peak = 1024 * resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            progress.update(build_rss=rss(), peak_build_rss=max(peak, progress.get("peak_build_rss", 0)))
            checkpoint(store, work, progress)
    return progress


SEARCH = """
import json, sys, time
import numpy as np
from parag import FAISSVectorStore
sys.path.insert(0, sys.argv[4])
from bench_scale import rss  # (its import adds ~0.2 MB to rss_loaded)
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
print(json.dumps({"params": store.params, "rss_loaded": loaded, "rss_searched": rss(), "recall": recall,
                  "single_p50_ms": 1000 * float(np.median(single)), "single_p95_ms": 1000 * float(np.percentile(single, 95)),
                  "batch_qps": len(queries) / batch, "filtered_1%_p50_ms": 1000 * float(np.median(filtered))}))
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=FULL)
    parser.add_argument("--index", default="HNSW")
    parser.add_argument("--storage", default="sq8")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--checkpoint-every", type=int, default=1_000_000,
                        help="vectors between checkpoints (a multiple of the 200,000-row chunk)")
    parser.add_argument("--fresh", action="store_true", help="discard the checkpoint and build from the start")
    args = parser.parse_args(argv)
    results = PUBLISHED_RESULTS / "scale" if args.n == FULL else ROOT / "benchmarks" / "results" / "scale"
    work = WORK / f"{args.index}-{args.storage}-{args.n}"
    if args.fresh:
        shutil.rmtree(work, ignore_errors=True)
    progress = build(args, work)
    prov = provenance()
    queries = chunk(10**6, args.queries)  # a seed no data chunk uses
    np.save(work / "q.npy", queries)
    np.save(work / "truth.npy", exact_top10(args.n, queries))
    done = subprocess.run([sys.executable, "-c", SEARCH, str(work / "store"), str(work / "q.npy"),
                           str(work / "truth.npy"), str(Path(__file__).resolve().parent)],
                          capture_output=True, text=True, check=True)
    record = {"n": args.n, "d": D, "index_type": args.index, "provenance": prov,
              "resumed": len(progress["runs"]) > 1, **progress, **json.loads(done.stdout)}
    write_json(results / f"scale-{args.n}.json", record)
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
