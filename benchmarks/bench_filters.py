"""Filtered search and deletes: parag against raw FAISS on the same index.

Data: 100k x 384 synthetic clustered vectors (unit vectors in Gaussian clusters around 1,000
centres, inner product) with metadata {"doc_id", "source" (100 values), "year" (10 values)},
assigned at random. For each index type and filter selectivity it times single queries
(latency per query) and recall@10 against the exact filtered answer for
- parag with the filter (a pre-filter; parag evaluates the filter inside the timed call),
- raw FAISS searching the very same index object with an IDSelectorBatch of the allowed ids
  (computed for it in numpy and built, with its search parameters, outside the timing) and
  the store's default parameters,
- parag unfiltered (the ratio column is filtered / unfiltered),
then the time to delete 1,000 ids from the HNSW store.

Raw per-query results go to ``RESULTS/results.json``; the report ``OUT/bench-filters.md`` is
generated from that file alone (``--report-only`` regenerates it).

Usage: python benchmarks/bench_filters.py [--quick] [--n 100000] [--queries 200] [--out docs]
       [--results docs/bench-results/filters] [--report-only]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_provenance  # noqa: E402
from bench_data import clustered  # noqa: E402

SPREAD = 0.2
FILTERS = {  # selectivity label -> (parag filter, numpy mask over rows)
    "0.1%": lambda m: ({"source": "s7", "year": 2020}, (m["source"] == 7) & (m["year"] == 2020)),
    "1%": lambda m: ({"source": "s7"}, m["source"] == 7),
    "10%": lambda m: ({"year": 2020}, m["year"] == 2020),
    "50%": lambda m: ({"year": {"$gte": 2020}}, m["year"] >= 2020),
    "100%": lambda m: ({"year": {"$exists": True}}, np.ones(len(m["year"]), bool)),
}
ROOT = Path(__file__).resolve().parents[1]


def latencies_ms(fn, queries: np.ndarray) -> tuple[list[float], list]:
    """Milliseconds per query and the results of ``fn(q)`` for each query, after one warm-up."""
    out, times = [], []
    fn(queries[0])
    for q in queries:
        t = time.perf_counter()
        out.append(fn(q))
        times.append(round((time.perf_counter() - t) * 1e3, 5))
    return times, out


def recalls(found: list[list[int]], truth: np.ndarray) -> list[float]:
    """Recall@k of each query's result against the exact filtered top-k."""
    return [len(set(f) & set(t.tolist())) / max(1, len(t)) for f, t in zip(found, truth)]


def raw_faiss_params(faiss, index, allowed_slots: np.ndarray):
    """What a user of FAISS alone builds once per filter: an IDSelectorBatch and search
    parameters with the index's own settings. Built outside the timed search."""
    sel = faiss.IDSelectorBatch(allowed_slots)
    if isinstance(index, faiss.IndexHNSW):
        return faiss.SearchParametersHNSW(sel=sel, efSearch=index.hnsw.efSearch)
    if isinstance(index, faiss.IndexIVF):
        return faiss.SearchParametersIVF(sel=sel, nprobe=index.nprobe)
    return faiss.SearchParameters(sel=sel)


def raw_faiss_search(index, params, q: np.ndarray, k: int) -> list[int]:
    _, labels = index.search(q[None, :], k, params=params)
    return [int(i) for i in labels[0] if i >= 0]


def measure(n: int, n_queries: int, k: int) -> dict:
    """Every figure of the report, per query, as JSON-ready data."""
    import faiss

    from parag.vectorstore import FAISSVectorStore

    d = 384
    # Tighter clusters than bench_data's default: HNSW's unfiltered recall@10 is then ~0.97,
    # as on real sentence embeddings, so filtered recall is not lost in the index's own.
    x = clustered(n, d, seed=1, spread=SPREAD)
    queries = clustered(n_queries, d, seed=2, spread=SPREAD)
    rng = np.random.default_rng(3)
    meta_cols = {"source": rng.integers(0, 100, n), "year": 2015 + rng.integers(0, 10, n)}
    metadata = [
        {"doc_id": i, "source": f"s{s}", "year": int(y)}
        for i, s, y in zip(range(n), meta_cols["source"].tolist(), meta_cols["year"].tolist())
    ]
    result: dict = {"params": {"n": n, "d": d, "k": k, "queries": n_queries, "spread": SPREAD, "metric": "IP",
                               "omp_threads": faiss.omp_get_max_threads(), "faiss": faiss.__version__},
                    "indexes": {}}
    hnsw_store = None
    for index_type in ("Flat", "HNSW", "IVFFlat"):
        store = FAISSVectorStore(d, index_type, "IP")
        t = time.perf_counter()
        store.add(x, metadata)
        build_s = time.perf_counter() - t
        unfiltered_ms, _ = latencies_ms(lambda q: store.search(q, k=k), queries)
        index = store.faiss_index  # the same FAISS object parag searches: slots == row numbers
        rows = {}
        for label, make in FILTERS.items():
            spec, mask = make(meta_cols)
            allowed = np.flatnonzero(mask)
            scores = queries @ x[allowed].T
            truth = allowed[np.argsort(-scores, axis=1)[:, :k]]
            parag_ms, parag_out = latencies_ms(lambda q: store.search(q, k=k, filter=spec).ids, queries)
            params = raw_faiss_params(faiss, index, allowed)
            raw_ms, raw_out = latencies_ms(lambda q: raw_faiss_search(index, params, q, k), queries)
            rows[label] = {"matches": len(allowed), "parag_ms": parag_ms, "parag_recall": recalls(parag_out, truth),
                           "raw_ms": raw_ms, "raw_recall": recalls(raw_out, truth),
                           "raw_returned": [len(r) for r in raw_out]}
        result["indexes"][index_type] = {"build_s": build_s, "unfiltered_ms": unfiltered_ms, "filters": rows}
        if index_type == "HNSW":
            hnsw_store = store
    times, size = [], min(1000, n // 10)
    for doomed in np.split(rng.choice(n, 3 * size, replace=False), 3):  # 3 deletes of 1,000 ids
        t = time.perf_counter()
        hnsw_store.delete(doomed)
        times.append((time.perf_counter() - t) * 1e3)
    result["hnsw_deletes"] = {"ids": size, "ms": times}
    return result


def report(data: dict, results: Path) -> str:
    """The Markdown report, from the raw results alone."""
    need = bench_provenance.need
    p = need(data, "params", "filters results")
    med = statistics.median
    lines = ["# Filtered search and deletes: parag vs raw FAISS", "",
             "_Generated by `python benchmarks/bench_filters.py` from the raw results named below; do not edit by hand._",
             "", *bench_provenance.describe(need(data, "provenance", "filters results"), results),
             f"- **Data**: {p['n']:,} x {p['d']} clustered vectors (**synthetic**: unit vectors around 1,000 centres, "
             f"spread {p['spread']}), {p['metric']}, k={p['k']}, {p['queries']} single queries, faiss {p['faiss']}, "
             f"{p['omp_threads']} OpenMP threads",
             "- **Method**: p50 = median latency of the single queries; recall@10 against the exact top-10 among the "
             "matching vectors, mean over the queries. Raw FAISS searches the very same index object with an "
             "`IDSelectorBatch` of the allowed ids and the store's default parameters; the selector and its search "
             "parameters are built outside the timing (parag evaluates its filter inside the timed call).",
             "", "| index | selectivity | matches | parag p50 ms | parag recall | parag filtered/unfiltered "
             "| raw FAISS p50 ms | raw FAISS recall | raw FAISS results/query |", "|---" * 9 + "|"]
    for index_type, entry in need(data, "indexes", "filters results").items():
        unfiltered = med(need(entry, "unfiltered_ms", index_type))
        for label, row in need(entry, "filters", index_type).items():
            get = lambda key: need(row, key, f"{index_type} {label}")  # noqa: E731
            parag = med(get("parag_ms"))
            lines.append(f"| {index_type} | {label} | {get('matches'):,} | {parag:.3f} | {np.mean(get('parag_recall')):.3f} "
                         f"| {parag / unfiltered:.2f} | {med(get('raw_ms')):.3f} | {np.mean(get('raw_recall')):.3f} "
                         f"| {np.mean(get('raw_returned')):.1f} |")
        lines.append(f"| {index_type} | unfiltered | {p['n']:,} | {unfiltered:.3f} | | 1.00 | | | |")
    lines.append("")
    lines.append("Build time (`add` of every vector with its metadata): " + ", ".join(
        f"{it} {need(e, 'build_s', it):.1f} s" for it, e in data["indexes"].items()))
    deletes = need(data, "hnsw_deletes", "filters results")
    lines += ["", f"HNSW delete of {deletes['ids']:,} ids from {p['n']:,}: median {med(deletes['ms']):.1f} ms "
              f"({len(deletes['ms'])} deletes: {', '.join(f'{t:.1f}' for t in deletes['ms'])} ms)"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20,000 vectors, 50 queries, to benchmarks/results/quick")
    parser.add_argument("--n", type=int)
    parser.add_argument("--queries", type=int)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--out", type=Path, help="where bench-filters.md goes (default docs/; quick: the results' parent)")
    parser.add_argument("--results", type=Path, help="where results.json goes (default docs/bench-results/filters)")
    parser.add_argument("--report-only", action="store_true", help="only rewrite the report from RESULTS/results.json")
    args = parser.parse_args(argv)
    # Only the default run is published (docs/); a run that measures less writes elsewhere.
    partial = args.quick or args.n is not None or args.queries is not None or args.k != 10
    base = bench_provenance.QUICK_RESULTS if partial else bench_provenance.PUBLISHED_RESULTS
    results = args.results or base / "filters"
    out = args.out or (base if partial else ROOT / "docs")
    if not args.report_only:
        n = args.n or (20_000 if args.quick else 100_000)
        queries = args.queries or (50 if args.quick else 200)
        data = {"provenance": bench_provenance.provenance(), "argv": sys.argv[1:] if argv is None else argv,
                **measure(n, queries, args.k)}
        bench_provenance.write_json(results / "results.json", data)
    text = report(bench_provenance.read_json(results / "results.json"), results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench-filters.md").write_text(text)
    print(text + f"\nwritten: {out / 'bench-filters.md'} (raw results: {results})")


if __name__ == "__main__":
    main()
