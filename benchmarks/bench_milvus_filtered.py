"""Filtered recall@10 of parag's MilvusVectorStore (HNSW) against the exact filtered answer.

Starts a Milvus server (tests/milvus_server.py), builds an HNSW store with the systems
benchmark's parameters (M 32, ef_construction 40, ef_search 64) on a dataset with its
metadata (bench_data.metadata: ``year`` 10 values, ``source`` 100 values), flushes, then for
the 10% and 1% filters of bench_data.FILTERS measures, per query, the store's answer and
Milvus's own (the same collection searched by pymilvus with each ``--ef``): recall@10 against numpy's
exact top-10 among the matching rows, and the median time of a single query.

Raw results go to ``--results`` (JSON); the table is printed.

Usage: flock /tmp/parag-bench.lock python benchmarks/bench_milvus_filtered.py
       [--dataset debian-minilm] [--queries 100] [--results docs/bench-results/milvus-filtered]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))
import bench_data  # noqa: E402
import bench_provenance  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="debian-minilm")
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--ef", type=int, nargs="*", default=[64], help="Milvus's own answer at these ef")
    p.add_argument("--results", type=Path, default=ROOT / "docs" / "bench-results" / "milvus-filtered")
    args = p.parse_args()
    from parag.filters import parse
    from parag.vectorstore import MilvusVectorStore
    from parag.vectorstore.milvus_filters import to_expression
    from tests.milvus_server import milvus_server

    data = bench_data.load(args.dataset, n_queries=args.queries)
    metric = "cosine" if data.metric == "IP" else "L2"
    dicts, columns = bench_data.metadata(data.n)
    rows = []
    with milvus_server() as server:
        store = MilvusVectorStore(data.d, "HNSW", metric, uri=server.uri, token=server.token, collection="filtered",
                                  M=32, ef_construction=40, ef_search=64)
        start = time.perf_counter()
        store.add(data.base, dicts)
        store.flush()
        build_s = time.perf_counter() - start
        client = store._server.client  # Milvus's own answer, for comparison
        for label, spec in bench_data.FILTERS.items():
            truth = bench_data.filtered_truth(data, bench_data.filter_mask(label, columns), data.queries, 10)
            expression = to_expression(parse(spec))
            for system in ("parag", *(f"milvus ef {ef}" for ef in args.ef)):
                found, times = [], []
                for q in data.queries:
                    t = time.perf_counter()
                    if system == "parag":
                        found.append(store.search(q, 10, filter=spec, include=()).ids)
                    else:
                        hits = client.search("filtered", data=[q.tolist()], limit=10, filter=expression,
                                             search_params={"metric_type": "COSINE" if metric == "cosine" else "L2",
                                                            "params": {"ef": int(system.split()[-1])}})
                        found.append([h["id"] for h in hits[0]])
                    times.append(time.perf_counter() - t)
                recall = float(np.mean([len(set(f) & set(t.tolist())) / 10 for f, t in zip(found, truth)]))
                rows.append({"dataset": args.dataset, "filter": label, "system": system, "recall_at_10": recall,
                             "p50_ms": 1000 * statistics.median(times), "short": sum(len(f) < 10 for f in found)})
        store.drop()
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / f"{args.dataset}.json"
    out.write_text(json.dumps({"provenance": bench_provenance.provenance(), "build_s": build_s, "rows": rows}, indent=1))
    print(f"{args.dataset}: built in {build_s:.1f} s; {out}")
    print("| filter | system | recall@10 | p50 ms | short answers |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['filter']} | {r['system']} | {r['recall_at_10']:.3f} | {r['p50_ms']:.2f} | {r['short']} |")


if __name__ == "__main__":
    main()
