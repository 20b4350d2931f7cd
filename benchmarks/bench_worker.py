"""Measure one system on one dataset, in a process of its own (so memory figures are clean).

Usage (run.py does this): python benchmarks/bench_worker.py JOB.json RESULT.json
                          python benchmarks/bench_worker.py --bandwidth MIB RESULT.json

JOB holds: system, index_type, dataset, k, n_single (single queries timed), n_filtered,
batch_repeats, sweep (values of ef_search / nprobe, or []), tune (bool), n_base, n_queries.
RESULT gets every figure measured (see ``measure``), or {"error": ...}.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_data  # noqa: E402
from bench_systems import SYSTEMS, ivf_params  # noqa: E402


def rss_mb() -> float:
    """Resident memory of this process now, in MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def reset_peak() -> None:
    """Reset the kernel's peak-RSS mark (VmHWM), so the next peak is the build's own."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1e3
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def recall(found, truth: np.ndarray, k: int) -> float:
    return float(np.mean([len(set(list(f)[:k]) & set(t[:k].tolist())) / k for f, t in zip(found, truth)]))


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def latencies(fn, queries: np.ndarray, k: int, *args) -> tuple[np.ndarray, list]:
    """Per-query seconds and results of ``fn(q, k, *args)`` for each query, after one warm-up."""
    fn(queries[0], k, *args)
    seconds, found = [], []
    for q in queries:
        t, out = timed(fn, q, k, *args)
        seconds.append(t)
        found.append(out)
    return np.asarray(seconds), found


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure(job: dict) -> dict:
    data = bench_data.load(job["dataset"], job.get("n_queries"), job.get("n_base"))
    k = job["k"]
    metadata, columns = bench_data.metadata(data.n)
    masks = {s: bench_data.filter_mask(s, columns) for s in bench_data.FILTERS}
    system = SYSTEMS[job["system"]](data.d, data.metric, job["index_type"], data.n)
    out: dict = {"describe": system.describe(), "n": data.n, "d": data.d, "metric": data.metric}
    queries = data.queries
    gc.collect()

    # Build: add every vector with its metadata (IVF training included).
    rss_before = rss_mb()
    reset_peak()
    out["build_s"], _ = timed(system.build, data.base, metadata)
    out["rss_build_mb"] = rss_mb() - rss_before
    out["peak_build_mb"] = max(0.0, peak_mb() - rss_before)
    out["metadata_json_mb"] = bench_data.metadata_json_bytes(metadata) / 1e6

    # Batch search over every query, all threads; recall@k from it.
    times = []
    for _ in range(1 if system.batch_loop else job["batch_repeats"]):  # a loop is slow and steady
        t, found = timed(system.search_batch, queries, k)
        times.append(t)
    out["batch_s"] = float(np.median(times))
    out["batch_loop"] = system.batch_loop
    out["batch_qps"] = len(queries) / out["batch_s"]
    out["recall"] = recall(found, data.gt, k)

    # Single queries, one at a time.
    seconds, _ = latencies(system.search_one, queries[: job["n_single"]], k)
    out["single_p50_ms"], out["single_p95_ms"] = (1e3 * np.percentile(seconds, [50, 95])).tolist()

    # Filtered single queries against the exact answer among the allowed vectors.
    fq = queries[: job["n_filtered"]]
    for selectivity, mask in masks.items():
        if hasattr(system, "prepare_filter"):
            system.prepare_filter(selectivity, mask)
        if system.search_filtered(fq[0], k, selectivity) is None:  # the system has no filter: n/a
            out.update(dict.fromkeys(f"filtered_{selectivity}_{f}" for f in ("p50_ms", "recall", "returned")))
            continue
        seconds, found = latencies(system.search_filtered, fq, k, selectivity)
        truth = bench_data.filtered_truth(data, mask, fq, k)
        out[f"filtered_{selectivity}_p50_ms"] = 1e3 * float(np.median(seconds))
        out[f"filtered_{selectivity}_recall"] = recall(found, truth, k)
        out[f"filtered_{selectivity}_returned"] = float(np.mean([len(f) for f in found]))

    if job["system"] == "parag":
        out.update(same_index(system.store, queries, k, min(job["n_single"], 200), job["batch_repeats"]))
        out.update(parag_extras(system, data, k, job.get("tune", False)))

    # Save, then load into a fresh object (and answer one query with it).
    tmp = Path(os.environ["BENCH_TMP"])
    path = tmp / "saved"
    out["save_s"], _ = timed(system.save, path)
    if not system.saves:
        out["save_s"] = None  # persists as it goes: no save step
    saved = system.saved_path() if hasattr(system, "saved_path") else path
    out["disk_mb"] = None if saved is None else dir_bytes(saved) / 1e6  # None: on a server, not measured
    drop_caches_for(system)
    out["load_s"], _ = timed(system.load, path)
    out["first_query_after_load_ms"] = 1e3 * timed(system.search_one, queries[0], k)[0]

    # Last (it changes the search parameter): the recall-QPS curve.
    if job.get("sweep") and system.sweep_param:
        out["sweep"] = sweep(system, queries, data.gt, k, job["sweep"], job["batch_repeats"])
    return out


def sweep(system, queries, gt, k, values, repeats) -> list[dict]:
    """Recall@k and batch QPS for each value of the system's search parameter."""
    if system.sweep_param == "nprobe":  # at most nlist lists can be probed
        nlist = ivf_params(system.n)["nlist"]
        values = sorted({min(v, nlist) for v in values})
    points = []
    for value in values:
        system.set_search_param(value)
        times = []
        for _ in range(repeats):
            t, found = timed(system.search_batch, queries, k)
            times.append(t)
        points.append({"value": value, "recall": recall(found, gt, k), "qps": len(queries) / float(np.median(times))})
    return points


def same_index(store, queries: np.ndarray, k: int, n_single: int, repeats: int) -> dict:
    """parag against raw FAISS searching the very same FAISS index object (with its default
    OpenMP threads), interleaved in one process: the overhead ratios least disturbed by a
    noisy machine. Batch: median of per-pair time ratios; single: ratio of the p50s."""
    index = store.faiss_index
    pairs = [(lambda: store.search(queries, k)), (lambda: index.search(queries, k))]
    batch = []
    for i in range(repeats):
        first, second = pairs if i % 2 == 0 else pairs[::-1]
        a, b = timed(first)[0], timed(second)[0]
        batch.append(a / b if i % 2 == 0 else b / a)
    parag_s, raw_s = [], []
    n = min(n_single, len(queries))
    for i in range(n):
        parag_s.append(timed(store.search, queries[i], k)[0])
        # Another query for raw FAISS: the one just searched would still be in the CPU caches
        # (measured: HNSW 3x faster), which a real stream of queries never is.
        raw_s.append(timed(index.search, queries[(i + n // 2) % n][None, :], k)[0])
    return {"same_index_batch_ratio": float(np.median(batch)),
            "same_index_single_ratio": float(np.median(parag_s) / np.median(raw_s)),
            "same_index_single_ms": [1e3 * float(np.median(parag_s)), 1e3 * float(np.median(raw_s))]}


def parag_extras(system, data, k: int, tune: bool) -> dict:
    """Sizes for the RSS target, and store.tune() measured on held-out queries."""
    import faiss

    store = system.store
    extras = {"index_bytes_mb": len(faiss.serialize_index(store.faiss_index)) / 1e6}
    if tune and store.index_type != "Flat":
        half = len(data.queries) // 2
        t, result = timed(store.tune, data.queries[:half], 0.95, k)
        found = np.asarray(store.search(data.queries[half:], k).ids)
        extras["tune"] = {
            "seconds": t,
            "param": result.param,
            "value": result.value,
            "recall_tuning_queries": result.recall,
            "recall_held_out": recall(found, data.gt[half:], k),
            "settings": [s._asdict() for s in result.settings],
        }
    return extras


def drop_caches_for(system) -> None:
    """Chroma caches clients per path: forget them, so that load really opens the files."""
    if system.name == "chroma":
        from chromadb.api.client import SharedSystemClient

        SharedSystemClient.clear_system_cache()


def bandwidth(mib: int) -> dict:
    """This machine's memory read bandwidth, GB/s: numpy streaming reads of a ``mib`` MiB
    array (best of 5), by 1 thread and by every core (numpy releases the GIL while it reads)."""
    from concurrent.futures import ThreadPoolExecutor

    x = np.ones(mib * 2**18, np.float32)  # touched once, so it is resident
    threads = os.cpu_count() or 1
    parts = np.array_split(x, threads)
    with ThreadPoolExecutor(threads) as pool:
        def read_all():
            list(pool.map(np.max, parts))

        one = min(timed(np.max, x)[0] for _ in range(5))
        every = min(timed(read_all)[0] for _ in range(5))
    return {"gb_per_s_1_thread": x.nbytes / one / 1e9, "gb_per_s_all_threads": x.nbytes / every / 1e9,
            "threads": threads, "mib": mib}


def main() -> None:
    if sys.argv[1] == "--bandwidth":
        Path(sys.argv[3]).write_text(json.dumps(bandwidth(int(sys.argv[2]))))
        return
    job = json.loads(Path(sys.argv[1]).read_text())
    tmp = tempfile.mkdtemp(prefix="parag-bench-", dir=job.get("tmp_dir"))
    os.environ["BENCH_TMP"] = tmp
    try:
        result = measure(job)
    except Exception as e:  # reported, not fatal to the whole run
        result = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["job"] = job
    result["loadavg_after"] = os.getloadavg()[0]
    Path(sys.argv[2]).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
