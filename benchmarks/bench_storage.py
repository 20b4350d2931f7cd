"""Compressed storage: recall, memory and speed of every storage x index kind, with and
without re-ranking, against raw FAISS on the very same index.

Usage::

    flock /tmp/parag-bench.lock .venv/bin/python benchmarks/bench_storage.py [--dataset debian-minilm]
        [--n-base N] [--repeats 3] [--results docs/bench-results/storage] [--report docs/bench-storage.md]
    .venv/bin/python benchmarks/bench_storage.py --report-only    # rewrite the report from the raw JSON

For each configuration one store is built at default parameters (HNSW M 32, ef_search 64;
IVFFlat nlist 256, nprobe 64) and measured:

- ``recall``: recall@10 of a batch search against the dataset's ground truth, at the
  storage's default ``rerank`` and at ``rerank=1`` (the compressed index's own top 10,
  re-scored exactly);
- ``batch_ratio``: batch search time, ``store.search`` over ``store.faiss_index.search``
  with the same parameters (raw FAISS on the same index), median over interleaved repeats;
- ``index_bytes``: the saved index file per vector (codes + graph or lists + the float32 copy)
  and ``codes_bytes``: the compressed index alone per vector;
- ``rss``: in a fresh process, resident memory per vector after loading the store (``load``)
  and after loading it with ``mmap=True`` and running every query: anonymous memory (owned
  by the process) and file-backed pages (the page cache of the mapped index, which the
  kernel can drop and re-read).

debian-minilm is inner product on unit vectors; FAISS's HNSW-PQ graph supports L2 only, so
HNSW + pq runs with metric L2 there (the same ranking on unit vectors).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_data  # noqa: E402
from bench_provenance import PUBLISHED_RESULTS, ROOT, describe, need, provenance, read_json, write_json  # noqa: E402
from bench_systems import HNSW, ivf_params  # noqa: E402

from parag import FAISSVectorStore  # noqa: E402
from parag.vectorstore.kinds.storage import RERANK_DEFAULT  # noqa: E402

CONFIGS = [("Flat", "float32"), ("Flat", "float16"), ("Flat", "sq8"),
           ("IVFFlat", "float32"), ("IVFFlat", "float16"), ("IVFFlat", "sq8"), ("IVFFlat", "pq"),
           ("HNSW", "float32"), ("HNSW", "float16"), ("HNSW", "sq8"), ("HNSW", "pq")]
REPORT = ROOT / "docs" / "bench-storage.md"

MEMORY = """
import json, sys
import numpy as np
from parag import FAISSVectorStore
def rss():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {k: 1024 * int(fields[k].split()[0]) for k in ("RssAnon", "RssFile")}
queries = np.load(sys.argv[2])
before = rss()
store = FAISSVectorStore.load(sys.argv[1], verify=False, mmap=sys.argv[3] == "mmap")
loaded = rss()
store.search(queries, k=10)
searched = rss()
print(json.dumps({"loaded": {k: loaded[k] - before[k] for k in before}, "searched": {k: searched[k] - before[k] for k in before}}))
"""


def memory(path: Path, queries: Path, mode: str) -> dict:
    done = subprocess.run([sys.executable, "-c", MEMORY, str(path), str(queries), mode],
                          capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(done.stdout)


def measure(data: bench_data.Dataset, index_type: str, storage: str, repeats: int, tmp: Path) -> dict:
    params = HNSW if index_type == "HNSW" else ivf_params(data.n) if index_type == "IVFFlat" else {}
    metric = "L2" if (index_type, storage) == ("HNSW", "pq") else data.metric
    store = FAISSVectorStore(data.d, index_type, metric, storage=storage, **params)
    start = time.perf_counter()
    store.add(data.base)
    record: dict = {"index_type": index_type, "storage": storage, "metric": metric, "params": store.params,
                    "build_s": time.perf_counter() - start, "recall": {}, "batch_ratio": {}, "batch_s": {}}
    q, gt = data.queries, data.gt[:, :10]
    index = store.faiss_index
    for rerank in ([1, RERANK_DEFAULT[storage]] if storage != "float32" else [None]):
        kw = {} if rerank is None else {"rerank": rerank}
        raw = None if rerank is None else faiss.IndexRefineSearchParameters(k_factor=rerank)
        ids = store.search(q, k=10, **kw).ids
        hits = sum(len(set(row) & set(truth.tolist())) for row, truth in zip(ids, gt))
        ratios, times = [], []
        for _ in range(repeats):  # interleaved: parag, then raw FAISS on the same index
            t0 = time.perf_counter()
            store.search(q, k=10, **kw)
            t1 = time.perf_counter()
            index.search(q, 10, params=raw)
            t2 = time.perf_counter()
            ratios.append((t1 - t0) / (t2 - t1))
            times.append(t1 - t0)
        key = str(rerank or 1)
        record["recall"][key] = hits / gt.size
        record["batch_ratio"][key] = float(np.median(ratios))
        record["batch_s"][key] = float(np.median(times))
    path = tmp / f"{index_type}-{storage}"
    store.save(path)
    record["index_bytes"] = next(path.glob("index*")).stat().st_size / data.n
    inner = faiss.downcast_index(index.base_index) if isinstance(index, faiss.IndexRefine) else index
    record["codes_bytes"] = len(faiss.serialize_index(inner)) / data.n
    np.save(tmp / "queries.npy", q)
    record["rss"] = {mode: memory(path, tmp / "queries.npy", mode) for mode in ("load", "mmap")}
    return record


def report(raw: dict, results: Path) -> str:
    """docs/bench-storage.md from the raw results ``raw`` (read from ``results``) alone."""
    n = need(raw, "n", "results.json")
    rows = []
    configs = need(raw, "configs", "results.json")
    float32 = {r["index_type"]: r["codes_bytes"] for r in configs if r["storage"] == "float32"}
    for r in configs:
        mem = r["rss"]
        for key, recall in r["recall"].items():
            rows.append(
                f"| {r['index_type']} | {r['storage']} | {'-' if r['storage'] == 'float32' else key} | {recall:.3f} | "
                f"{r['batch_s'][key] * 1000:.0f} | {r['batch_ratio'][key]:.3f} | {r['codes_bytes']:.0f} | "
                f"{r['codes_bytes'] / float32[r['index_type']]:.2f} | "
                f"{r['index_bytes']:.0f} | {mem['load']['loaded']['RssAnon'] / n:.0f} | "
                f"{mem['mmap']['searched']['RssAnon'] / n:.0f} | {mem['mmap']['searched']['RssFile'] / n:.0f} |"
            )
    lines = [
        "# Compressed storage: recall, memory and speed",
        "",
        f"{raw['dataset']} ({n:,} x {raw['d']}, {raw['n_queries']:,} queries, recall@10 against its ground truth), "
        "default parameters (HNSW M 32, ef_search 64; IVFFlat nlist 256, nprobe 64). Generated by "
        "`benchmarks/bench_storage.py` from its raw results alone.",
        "",
        *describe(raw["provenance"], results),
        "",
        "Columns: `rerank` (candidates re-scored exactly = rerank x k; `-`: float32, already exact); batch time "
        "of all queries at once and its ratio to raw FAISS searching the same index with the same parameters; "
        "bytes per vector of the compressed index alone (codes + graph or lists) and its ratio to the same "
        "index kind in float32, of the saved index file "
        "(plus the float32 copy), of the process's own memory after a plain `load`, and after `load(mmap=True)` "
        "and every query: anonymous memory and file-backed pages (page cache of the mapped file, which the "
        "kernel may drop; the kernel maps pages around each one touched, so re-scored vectors pull in their "
        "neighbours).",
        "",
        "| index | storage | rerank | recall@10 | batch ms | parag / raw FAISS | compressed B/vector "
        "| compressed / float32 | file B/vector "
        "| RAM B/vector (load) | anon B/vector (mmap) | file-backed B/vector (mmap) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="debian-minilm")
    parser.add_argument("--n-base", type=int)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--results", type=Path, default=PUBLISHED_RESULTS / "storage")
    parser.add_argument("--report", type=Path, default=REPORT)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    if not args.report_only:
        data = bench_data.load(args.dataset, n_base=args.n_base)
        prov = provenance()
        configs = []
        with tempfile.TemporaryDirectory() as tmp:
            for index_type, storage in CONFIGS:
                configs.append(measure(data, index_type, storage, args.repeats, Path(tmp)))
                print(json.dumps(configs[-1]), flush=True)
        write_json(args.results / "results.json", {"dataset": args.dataset, "n": data.n, "d": data.d,
                                                   "n_queries": len(data.queries), "provenance": prov,
                                                   "configs": configs})
    args.report.write_text(report(read_json(args.results / "results.json"), args.results))
    print(args.report.read_text())


if __name__ == "__main__":
    main()
