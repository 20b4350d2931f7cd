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

from bench_scale import chunk, rss
from parag import FAISSVectorStore

SWEEP = {"HNSW": (16, 32, 64, 128, 256, 512), "IVFFlat": (4, 8, 16, 32, 64, 128)}
N_SINGLE = 200
WARM_UP = 1000


def recall(ids: np.ndarray, truth: np.ndarray) -> float:
    return sum(len(set(r.tolist()) & set(t.tolist())) for r, t in zip(ids, truth)) / truth.size


def p50_ms(times: list[float]) -> float:
    return 1000 * float(np.median(times))


def raw_vectors(store: FAISSVectorStore, path: Path) -> np.ndarray:
    """The store's float32 vector file, memory-mapped read-only (raw FAISS's re-ranking reads it)."""
    file = next(path.glob("vectors.*.f32"))
    return np.memmap(file, np.float32, "r", shape=(file.stat().st_size // (4 * store.dimension), store.dimension))


def raw_params(index_type: str, value: int) -> faiss.SearchParameters:
    return faiss.SearchParametersHNSW(efSearch=value) if index_type == "HNSW" else faiss.SearchParametersIVF(nprobe=value)


def raw_search(base: faiss.Index, vectors: np.ndarray, q: np.ndarray, rerank: int,
               params: faiss.SearchParameters) -> np.ndarray:
    """Raw FAISS with re-ranking, as ``IndexRefineFlat`` does it (which would copy the 15 GB of
    vectors into RAM): the index's ``rerank`` x 10 best, re-scored exactly; labels (slots)."""
    labels = base.search(q, 10 * rerank, params=params)[1]
    scores = np.einsum("qd,qcd->qc", q, vectors[np.maximum(labels, 0)])  # inner product
    scores[labels < 0] = -np.inf
    best = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    return np.take_along_axis(labels, best, axis=1)


def warm_up(store: FAISSVectorStore) -> None:
    """Searches of other queries first, as a serving process has answered some: a cold page
    cache (codes and vectors read from disk) would dominate every figure."""
    store.search(chunk(10**6 + 1, WARM_UP), k=10)


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
    if not store.is_trained:  # a store too small to train searches exactly: nothing to sweep
        return []
    rerank, base, vectors = int(store.params["rerank"]), store.faiss_index.base, raw_vectors(store, path)
    rows = []
    for value in SWEEP[store.index_type]:
        params = raw_params(store.index_type, value)
        ids = np.array(store.search(queries, k=10, **{name: value}).ids)
        raw_ids = raw_search(base, vectors, queries, rerank, params)  # slots: the ids of a store never deleted from
        ours, theirs = [], []
        for i in range(0, 2 * N_SINGLE, 2):  # alternate, each side on its own query
            mine, other = queries[i % len(queries)], queries[(i + 1) % len(queries)]
            start = time.perf_counter()
            store.search(mine, k=10, **{name: value})
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            raw_search(base, vectors, other[None], rerank, params)
            theirs.append(time.perf_counter() - start)
        rows.append({name: value, "recall": recall(ids, truth), "single_p50_ms": p50_ms(ours),
                     "raw_recall": recall(raw_ids, truth), "raw_single_p50_ms": p50_ms(theirs)})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def main(path: Path, queries: np.ndarray, truth: np.ndarray) -> dict:
    store = FAISSVectorStore.load(path, mmap=True, verify=False)
    record = {"params": store.params, "rss_loaded": rss()}
    warm_up(store)
    record.update(at_defaults(store, queries, truth))
    record["rss_searched"] = rss()
    record["sweep"] = sweep(store, path, queries, truth)
    return record


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), np.load(sys.argv[2]), np.load(sys.argv[3]))))
