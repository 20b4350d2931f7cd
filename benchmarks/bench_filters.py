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

``--records`` measures what issue 9 (records: documents, string ids) changed instead, each
figure in a fresh process, ``--repeats`` times alternated:
- the first filtered search on a store of 4,000 vectors whose texts are 1,500 characters:
  text in metadata with parag at ``--baseline`` (default: the commit before documents were
  added, where the first filter built a column for every metadata key), text in metadata
  now (columns only for the keys a filter names), and text as documents now;
- string ids against int ids at 100,000 vectors (Flat, d=64): add, get and delete of 1,000
  ids, single-query search p50, save and load, the ids file's bytes, the store's RSS.
Raw results: ``RESULTS/results.json`` (default ``docs/bench-results/records``); report:
``OUT/bench-records.md``.

Usage: python benchmarks/bench_filters.py [--quick] [--n 100000] [--queries 200] [--out docs]
       [--results docs/bench-results/filters] [--report-only]
       python benchmarks/bench_filters.py --records [--repeats 5] [--baseline REV] [--report-only]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


# ----------------------------------------------------------------------------- --records (issue 9)

WORDS = "vector store index search filter metadata document chunk embedding query recall faiss".split()
LAYOUTS = {  # label -> (where the text is, which parag: "baseline" or "current")
    "text in metadata, before": ("text-in-metadata", "baseline"),
    "text in metadata, now": ("text-in-metadata", "current"),
    "text as documents, now": ("text-as-document", "current"),
}


def long_texts(n: int, chars: int = 1500, seed: int = 4) -> list[str]:
    words = np.random.default_rng(seed).choice(WORDS, (n, chars // 7))
    return [" ".join(row)[:chars] for row in words.tolist()]


def first_filtered_search_ms(layout: str, n: int = 4000, d: int = 384) -> float:
    """A fresh store of ``n`` vectors with texts of 1,500 characters; its first filtered search."""
    from parag.vectorstore import FAISSVectorStore

    texts, x = long_texts(n), clustered(n, d, seed=1, spread=SPREAD)
    meta = [{"source": f"s{i % 100}", "year": 2015 + i % 10} for i in range(n)]
    store = FAISSVectorStore(d, "Flat", "IP")
    if layout == "text-as-document":
        store.add(x, meta, documents=texts)
    else:
        store.add(x, [{**m, "text": t} for m, t in zip(meta, texts)])
    store.search(x[1], k=10)  # FAISS's and OpenMP's first-call costs are not the filter's
    t = time.perf_counter()
    store.search(x[0], k=10, filter={"source": "s7"})
    return (time.perf_counter() - t) * 1e3


def rss_mb() -> float:
    """The process's resident memory now (Linux), in MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def id_costs(kind: str, n: int = 100_000, d: int = 64) -> dict[str, float]:
    """Time and bytes of a Flat store of ``n`` vectors with ``kind`` ids ("int" or "str")."""
    from parag.vectorstore import FAISSVectorStore

    x = clustered(n, d, seed=1, spread=SPREAD)
    ids = list(range(n)) if kind == "int" else [f"docs/file-{i // 20:05d}.md#chunk-{i % 20}" for i in range(n)]
    sample = [ids[i] for i in np.random.default_rng(5).choice(n, 1000, replace=False).tolist()]
    before = rss_mb()
    store = FAISSVectorStore(d, "Flat", "IP")
    t = time.perf_counter()
    store.add(x, ids=ids)
    out = {"add_s": time.perf_counter() - t, "store_rss_mb": rss_mb() - before}
    t = time.perf_counter()
    store.get(sample)
    out["get_1k_ms"] = (time.perf_counter() - t) * 1e3
    times, _ = latencies_ms(lambda q: store.search(q, k=10, include=()), x[:200])
    out["search_p50_ms"] = statistics.median(times)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        store.save(Path(tmp) / "s")
        out["save_s"] = time.perf_counter() - t
        out["ids_file_bytes"] = sum(p.stat().st_size for p in (Path(tmp) / "s").glob("ids.*"))
        t = time.perf_counter()
        FAISSVectorStore.load(Path(tmp) / "s")
        out["load_s"] = time.perf_counter() - t
    t = time.perf_counter()
    store.delete(sample)
    out["delete_1k_ms"] = (time.perf_counter() - t) * 1e3
    return out


def child(args: list[str], src: Path | None = None) -> Any:
    """This script run with ``args`` in a fresh process (importing parag from ``src``); its JSON."""
    env = {**os.environ, **({"PYTHONPATH": str(src)} if src else {})}
    done = subprocess.run([sys.executable, __file__, *args], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_records(baseline: str | None, repeats: int) -> dict:
    """Each measurement in a fresh process, alternated ``repeats`` times, so that a busier
    minute of a shared machine does not favour one side."""
    if baseline is None:  # the commit before the one that added documents
        added = git("log", "--format=%H", "--diff-filter=A", "-1", "--", "src/parag/documents.py")
        baseline = f"{added}^"
    rev = git("rev-parse", baseline)
    first: dict[str, list[float]] = {label: [] for label in LAYOUTS}
    ids: dict[str, list[dict[str, float]]] = {"int": [], "str": []}
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        for _ in range(repeats):
            for label, (layout, which) in LAYOUTS.items():
                first[label].append(child(["--child-first-filter", layout], Path(tmp) / "src" if which == "baseline" else None))
            for kind in ids:
                ids[kind].append(child(["--child-ids", kind]))
    return {"params": {"repeats": repeats, "baseline": rev, "first_filter": "4,000 x 384 Flat IP, texts of 1,500 "
                       "characters, filter {'source': 's7'} (1%)", "ids": "100,000 x 64 Flat IP, string ids like "
                       "'docs/file-00042.md#chunk-7'"}, "first_filter_ms": first, "ids": ids}


def records_report(data: dict, results: Path) -> str:
    """The Markdown report of ``--records``, from the raw results alone."""
    need, med = bench_provenance.need, statistics.median
    p = need(data, "params", "records results")
    lines = ["# Records: documents and string ids", "",
             "_Generated by `python benchmarks/bench_filters.py --records` from the raw results named below; "
             "do not edit by hand._", "", *bench_provenance.describe(need(data, "provenance", "records results"), results),
             f"- **Method**: every figure from a fresh process; {p['repeats']} repeats, alternated; medians.", "",
             f"## The first filtered search ({p['first_filter']})", "",
             f"Before: parag at `{p['baseline'][:10]}`, which built a filter column for every metadata key on "
             "the first filtered search, the text included. Now: columns only for the keys a filter names.", "",
             "| store | first filtered search, median ms | every run, ms |", "|---|---|---|"]
    for label, times in need(data, "first_filter_ms", "records results").items():
        lines.append(f"| {label} | {med(times):.1f} | {', '.join(f'{t:.1f}' for t in times)} |")
    runs = need(data, "ids", "records results")
    lines += ["", f"## String ids against int ids ({p['ids']})", "",
              "| measure (median) | int ids | string ids | string / int |", "|---|---|---|---|"]
    for name in runs["int"][0]:
        a, b = (med([r[name] for r in runs[kind]]) for kind in ("int", "str"))
        lines.append(f"| {name} | {a:,.3f} | {b:,.3f} | {b / a if a else float('nan'):.2f} |")
    return "\n".join(lines) + "\n"


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout.strip()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20,000 vectors, 50 queries, to benchmarks/results/quick")
    parser.add_argument("--n", type=int)
    parser.add_argument("--queries", type=int)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--out", type=Path, help="where bench-filters.md goes (default docs/; quick: the results' parent)")
    parser.add_argument("--results", type=Path, help="where results.json goes (default docs/bench-results/filters)")
    parser.add_argument("--report-only", action="store_true", help="only rewrite the report from RESULTS/results.json")
    parser.add_argument("--records", action="store_true", help="measure issue 9's changes instead (see above)")
    parser.add_argument("--repeats", type=int, default=5, help="--records: fresh processes per figure")
    parser.add_argument("--baseline", help="--records: the commit whose parag keeps text in metadata")
    parser.add_argument("--child-first-filter", help=argparse.SUPPRESS)
    parser.add_argument("--child-ids", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_first_filter:  # one measurement, in a fresh process (see child())
        return print(json.dumps(first_filtered_search_ms(args.child_first_filter)))
    if args.child_ids:
        return print(json.dumps(id_costs(args.child_ids)))
    if args.records:
        return records_main(args, argv)
    # Only the default run is published (docs/); a run that measures less writes elsewhere.
    partial = args.quick or args.n is not None or args.queries is not None or args.k != 10
    base = bench_provenance.QUICK_RESULTS if partial else bench_provenance.PUBLISHED_RESULTS
    results = args.results or base / "filters"
    out = args.out or (base if partial else ROOT / "docs")
    n = args.n or (20_000 if args.quick else 100_000)
    queries = args.queries or (50 if args.quick else 200)
    measuring = None if args.report_only else lambda: measure(n, queries, args.k)
    publish(results, out / "bench-filters.md", report, measuring, argv)


def records_main(args: argparse.Namespace, argv: list[str] | None) -> None:
    results = args.results or bench_provenance.PUBLISHED_RESULTS / "records"
    measuring = None if args.report_only else lambda: measure_records(args.baseline, args.repeats)
    publish(results, (args.out or ROOT / "docs") / "bench-records.md", records_report, measuring, argv)


def publish(results: Path, report_path: Path, make_report: Callable[[dict, Path], str],
            measuring: Callable[[], dict] | None, argv: list[str] | None) -> None:
    """Measure (unless ``measuring`` is None) into ``results``, then write the report
    generated from the raw results alone."""
    if measuring is not None:
        data = {"provenance": bench_provenance.provenance(), "argv": sys.argv[1:] if argv is None else argv,
                **measuring()}
        bench_provenance.write_json(results / "results.json", data)
    text = make_report(bench_provenance.read_json(results / "results.json"), results)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(text)
    print(text + f"\nwritten: {report_path} (raw results: {results})")


if __name__ == "__main__":
    main()
