"""The search half of the scale benchmark (``bench_scale.py`` runs it in a fresh process).

Usage: ``python bench_scale_search.py STORE QUERIES.npy TRUTH.npy`` prints one JSON record.

It loads the store with ``mmap=True`` (the RSS after loading is ``rss_loaded``), warms it up
with 1,000 other queries (as a serving process has answered some: a cold page cache would
dominate every figure) and measures, at the store's default parameters: recall@10 of a batch search of every query against the
exact top 10, single-query p50/p95, batch QPS and the p50 of a 1%-selective filtered search
(``{"source": "s7"}``). Then ``sweep``: for each value of the per-search parameter
(``ef_search`` or ``nprobe``), recall@10 and single-query p50 of the store, and of raw FAISS
on the very same index object with the same re-ranking (the index's ``rerank x 10`` best
re-scored exactly from the store's float32 vector file, memory-mapped read-only, as
``faiss.IndexRefineFlat`` does but without its copy of the vectors): single queries alternate between the
two, each on its own query. ``rss_searched`` is taken before raw FAISS touches the file.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import faiss
import numpy as np

from bench_scale import rss
from parag import FAISSVectorStore

SWEEP = {"HNSW": (16, 32, 64, 128, 256, 512), "IVFFlat": (4, 8, 16, 32, 64, 128)}
N_SINGLE = 200


def recall(ids: np.ndarray, truth: np.ndarray) -> float:
    return sum(len(set(r.tolist()) & set(t.tolist())) for r, t in zip(ids, truth)) / truth.size


def p50_ms(times: list[float]) -> float:
    return 1000 * float(np.median(times))


def raw_search(store: FAISSVectorStore, path: Path) -> tuple[faiss.Index, np.ndarray]:
    """Raw FAISS over the store's own index: the index re-ranked exactly from the vector file."""
    file = next(path.glob("vectors.*.f32"))
    vectors = np.memmap(file, np.float32, "r", shape=(file.stat().st_size // (4 * store.dimension), store.dimension))
    return faiss.IndexRefineFlat(store.faiss_index.base, faiss.swig_ptr(vectors)), vectors


def raw_params(index_type: str, name: str, value: int, rerank: int) -> faiss.SearchParameters:
    inner = (faiss.SearchParametersHNSW(efSearch=value) if index_type == "HNSW"
             else faiss.SearchParametersIVF(nprobe=value))
    return faiss.IndexRefineSearchParameters(k_factor=rerank, base_index_params=inner)


def at_defaults(store: FAISSVectorStore, queries: np.ndarray, truth: np.ndarray) -> dict:
    single = []
    for q in queries[:N_SINGLE]:
        start = time.perf_counter()
        store.search(q, k=10)
        single.append(time.perf_counter() - start)
    start = time.perf_counter()
    ids = store.search(queries, k=10).ids
    batch = time.perf_counter() - start
    filtered = []
    for q in queries[:100]:
        start = time.perf_counter()
        store.search(q, k=10, filter={"source": "s7"})
        filtered.append(time.perf_counter() - start)
    return {"recall": recall(np.array(ids), truth), "single_p50_ms": p50_ms(single),
            "single_p95_ms": 1000 * float(np.percentile(single, 95)), "batch_qps": len(queries) / batch,
            "filtered_1%_p50_ms": p50_ms(filtered)}


def sweep(store: FAISSVectorStore, path: Path, queries: np.ndarray, truth: np.ndarray) -> list[dict]:
    name = "ef_search" if store.index_type == "HNSW" else "nprobe"
    rerank = int(store.params["rerank"])
    raw, _vectors = raw_search(store, path)
    rows = []
    for value in SWEEP[store.index_type]:
        params = raw_params(store.index_type, name, value, rerank)
        ids = np.array(store.search(queries, k=10, **{name: value}).ids)
        raw_ids = raw.search(queries, 10, params=params)[1]
        ours, theirs = [], []
        for i in range(0, 2 * N_SINGLE, 2):  # alternate, each side on its own query
            mine, other = queries[i % len(queries)], queries[(i + 1) % len(queries)]
            start = time.perf_counter()
            store.search(mine, k=10, **{name: value})
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            raw.search(other[None], 10, params=params)
            theirs.append(time.perf_counter() - start)
        rows.append({name: value, "recall": recall(ids, truth), "single_p50_ms": p50_ms(ours),
                     "raw_recall": recall(raw_ids, truth), "raw_single_p50_ms": p50_ms(theirs)})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def main(path: Path, queries: np.ndarray, truth: np.ndarray) -> dict:
    store = FAISSVectorStore.load(path, mmap=True, verify=False)
    record = {"params": store.params, "rss_loaded": rss()}
    record.update(at_defaults(store, queries, truth))
    record["rss_searched"] = rss()
    record["sweep"] = sweep(store, path, queries, truth)
    return record


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), np.load(sys.argv[2]), np.load(sys.argv[3]))))
