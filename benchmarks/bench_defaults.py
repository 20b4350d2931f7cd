"""Defaults that hold at scale: recall@10 at parag's default parameters, from 10k to 1M vectors.

Usage::

    flock /tmp/parag-bench.lock .venv/bin/python benchmarks/bench_defaults.py sweep [--max-n 1000000]
    flock /tmp/parag-bench.lock .venv/bin/python benchmarks/bench_defaults.py verify [--max-n 1000000] [--index HNSW]
    .venv/bin/python benchmarks/bench_defaults.py --report-only   # rewrite docs/bench-defaults.md from the raw JSON

``sweep`` measures raw FAISS (no parag) to choose the policy: one HNSW graph (M 32,
efConstruction 40) is grown over the synthetic clustered set and measured at every size on
the way (an HNSW graph grown to n is the graph built at n), at several ``efSearch``; IVFFlat
is trained at each size with the ``nlist`` the policy gives and measured at several ``nprobe``.
The real datasets are measured at their full size.

``verify`` builds parag stores with no parameter given and measures recall@10 (batch, against
the exact top 10) and single-query p50 latency at the defaults the store chose.

Datasets: siftsmall (10k x 128, L2), debian-minilm (59k x 384, cosine), fashion-mnist
(60k x 784, L2) from ../shared/data when present, and prefixes of synthetic-1m (Gaussian
clusters around 1,000 centres, 384-d, unit length, inner product). Raw results go to
``docs/bench-results/defaults/results.json`` (a run replaces the rows of its own kind and index
type); ``docs/bench-defaults.md`` is generated from them alone.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_data  # noqa: E402
from bench_provenance import PUBLISHED_RESULTS, ROOT, describe, need, provenance, read_json, write_json  # noqa: E402

from parag import FAISSVectorStore  # noqa: E402
from parag.vectorstore.kinds import hnsw  # noqa: E402
from parag.vectorstore.kinds.hnsw import default_ef_search  # noqa: E402
from parag.vectorstore.kinds.ivf import default_nlist, default_nprobe  # noqa: E402

RESULTS = PUBLISHED_RESULTS / "defaults"
REPORT = ROOT / "docs" / "bench-defaults.md"
SYNTHETIC_SIZES = (10_000, 100_000, 300_000, 1_000_000)
REAL = ("siftsmall", "debian-minilm", "fashion-mnist")
EF_VALUES = (32, 64, 96, 128, 192, 256, 384, 512, 1024)
NPROBE_FRACTIONS = (1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 4)
N_QUERIES = 500
VERIFY_EF_FROM = 300_000  # verify measures parag's own graph at every ef_search from this size
K = 10


def recall(found: np.ndarray, gt: np.ndarray) -> float:
    return float(np.mean([len(set(np.asarray(f)[:K].tolist()) & set(g[:K].tolist())) / K for f, g in zip(found, gt)]))


def datasets(max_n: int, min_n: int = 0) -> list[tuple[str, bench_data.Dataset, list[int]]]:
    """(name, dataset, sizes to measure at): every real set present (unless ``min_n`` rules them
    out), and synthetic-1m's prefixes from ``min_n`` to ``max_n``."""
    out = [(name, bench_data.load(name, n_queries=N_QUERIES), []) for name in REAL
           if name in bench_data.available() and not min_n]
    synthetic = bench_data.load("synthetic-1m", n_queries=N_QUERIES)
    return out + [("synthetic", synthetic, [n for n in SYNTHETIC_SIZES if min_n <= n <= max_n])]


def truth(data: bench_data.Dataset, n: int) -> np.ndarray:
    """The exact top 10 of the queries among the first ``n`` base vectors."""
    return data.gt if n == data.n else bench_data.exact_neighbours(data.base[:n], data.queries, data.metric, K)


def faiss_metric(data: bench_data.Dataset) -> int:
    return faiss.METRIC_INNER_PRODUCT if data.metric == "IP" else faiss.METRIC_L2


def sweep_hnsw(name: str, data: bench_data.Dataset, sizes: list[int], ef_construction: int = 40) -> list[dict]:
    index = faiss.IndexHNSWFlat(data.d, 32, faiss_metric(data))
    index.hnsw.efConstruction = ef_construction
    rows, built = [], 0.0
    for n in sizes or [data.n]:
        start = time.perf_counter()
        index.add(data.base[index.ntotal:n])
        built += time.perf_counter() - start  # the whole graph's build time so far
        gt = truth(data, n)
        for ef in EF_VALUES:
            found = index.search(data.queries, K, params=faiss.SearchParametersHNSW(efSearch=ef))[1]
            rows.append({"dataset": name, "n": n, "index": "HNSW", "ef_construction": ef_construction,
                         "ef_search": ef, "recall": recall(found, gt), "build_s": built})
            print(rows[-1], flush=True)
    return rows


def sweep_ivf(name: str, data: bench_data.Dataset, sizes: list[int]) -> list[dict]:
    rows = []
    for n in sizes or [data.n]:
        nlist = default_nlist(n)
        start = time.perf_counter()
        ivf = faiss.IndexIVFFlat(faiss.IndexFlat(data.d, faiss_metric(data)), data.d, nlist, faiss_metric(data))
        ivf.cp.max_points_per_centroid = 64  # as parag trains
        ivf.train(data.base[:n])
        ivf.add(data.base[:n])
        built = time.perf_counter() - start
        gt = truth(data, n)
        for fraction in NPROBE_FRACTIONS:
            nprobe = max(1, round(nlist * fraction))
            found = ivf.search(data.queries, K, params=faiss.SearchParametersIVF(nprobe=nprobe))[1]
            rows.append({"dataset": name, "n": n, "index": "IVFFlat", "nlist": nlist, "nprobe": nprobe,
                         "recall": recall(found, gt), "build_s": built})
            print(rows[-1], flush=True)
    return rows


def verify(name: str, data: bench_data.Dataset, sizes: list[int], index_type: str) -> list[dict]:
    rows = []
    metric = "cosine" if data.metric == "IP" else "L2"
    for n in sizes or [data.n]:
        store = FAISSVectorStore(data.d, index_type, metric)
        start = time.perf_counter()
        for chunk in range(0, n, 100_000):  # a store grown in steps, as most are
            store.add(data.base[chunk:min(n, chunk + 100_000)])
        built = time.perf_counter() - start
        found = store.search(data.queries, K).ids
        times = []
        for q in data.queries[:200]:
            start = time.perf_counter()
            store.search(q, K)
            times.append(time.perf_counter() - start)
        gt = truth(data, n)
        rows.append({"dataset": name, "n": n, "index": index_type, "params": store.params,
                     "recall": recall(found, gt), "single_p50_ms": 1000 * float(np.median(times)),
                     "build_s": built})
        if index_type == "HNSW" and n >= VERIFY_EF_FROM:  # the graph parag built, at every ef_search
            rows[-1]["recall_by_ef"] = {ef: recall(store.search(data.queries, K, ef_search=ef).ids, gt)
                                        for ef in EF_VALUES}
        print(rows[-1], flush=True)
        del store
    return rows


def policy() -> list[str]:
    """The size-following HNSW defaults in force (from parag's own tables)."""
    def steps(table: tuple[tuple[int, int], ...], largest: int) -> str:
        return ", ".join(f"{value} up to {most:,}" for most, value in table) + f", {largest} beyond"
    return ["HNSW defaults in force: `ef_search` " + steps(hnsw.EF_SEARCH_BY_SIZE, hnsw.EF_SEARCH_LARGEST)
            + " (vectors in the graph); `ef_construction` " + steps(hnsw.EF_CONSTRUCTION_BY_SIZE, hnsw.EF_CONSTRUCTION_LARGEST)
            + " (the size an add leaves). IVFFlat: `nlist` ≈ 4·√n at training (retrained when the size calls for twice the lists: ~4× growth, ~2× below 24k vectors), "
            "`nprobe` ≈ 4·√nlist.", ""]


def _cell(value: float | None, fmt: str = ".0f") -> str:
    return "-" if value is None else format(value, fmt)


def report(raw: dict, results: Path) -> str:
    """docs/bench-defaults.md from the raw results ``raw`` (read from ``results``) alone."""
    runs = need(raw, "runs", "results.json")
    rows = {what: [r for run in runs if run["what"] == what for r in run["rows"]] for what in ("sweep", "verify")}
    lines = ["# Defaults that hold at scale", "",
             "recall@10 at parag's default parameters from 10k to 1M vectors, and the raw FAISS sweep the "
             "size-dependent defaults were chosen from. Generated by `benchmarks/bench_defaults.py` from its raw "
             "results alone.", ""]
    lines += policy()
    for run in runs:
        stopped = [f"- **Stopped early**: {run['stopped']}"] if "stopped" in run else []
        sizes = f", synthetic from {run['min_n']:,} vectors" if run.get("min_n") else ""
        lines += [f"Run `{run['what']}` ({run['index']}{sizes}):", "", *describe(run["provenance"], results),
                  *stopped, ""]
    lines += ["## parag at its defaults (no parameter given)", "",
              "Each store is built in adds of at most 100k vectors (IVFFlat retrains as it grows); recall@10 of a "
              f"batch search of {N_QUERIES} queries against the exact top 10; single-query p50 over 200 queries.",
              "", "| dataset | n | index | defaults chosen | recall@10 | single p50 ms | build s |",
              "|---|---|---|---|---|---|---|"]
    if not rows["verify"]:
        lines.append("| not measured yet: `bench_defaults.py verify` | | | | | | |")
    for r in rows["verify"]:
        chosen = ", ".join(f"{k} {v}" for k, v in r["params"].items()
                           if k in ("ef_construction", "ef_search", "nlist", "nprobe"))
        lines.append(f"| {r['dataset']} | {r['n']:,} | {r['index']} | {chosen} | {r['recall']:.3f} | "
                     f"{r['single_p50_ms']:.3f} | {r['build_s']:.0f} |")
    by_ef = [r for r in rows["verify"] if "recall_by_ef" in r]
    if by_ef:
        lines += ["", "## parag's own graph at its defaults, recall@10 by ef_search", "",
                  "The graphs of the table above, searched at every ef_search (a search's own value): built in adds "
                  "of 100k, each add linked with the ef_construction of the size it leaves.", "",
                  "| dataset | n | ef_construction at the end | " + " | ".join(f"ef {ef}" for ef in EF_VALUES) + " |",
                  "|---|---|---|" + "---|" * len(EF_VALUES)]
        for r in by_ef:
            lines.append(f"| {r['dataset']} | {r['n']:,} | {r['params'].get('ef_construction', 40)} | "
                         + " | ".join(_cell(r["recall_by_ef"].get(str(ef)), ".3f") for ef in EF_VALUES) + " |")
    hnsw = [r for r in rows["sweep"] if r["index"] == "HNSW"]
    lines += ["", "## Raw FAISS: HNSW32, recall@10 by efSearch", "",
              "The synthetic graph is grown once per efConstruction and measured at each size on the way; build s: "
              "the graph's whole build time to that size (`-`: not recorded or not measured).", "",
              "| dataset | n | efConstruction | " + " | ".join(f"ef {ef}" for ef in EF_VALUES)
              + " | build s | parag's default ef_search |", "|---|---|---|" + "---|" * (len(EF_VALUES) + 2)]
    latest: dict[tuple, dict[int, dict]] = {}  # a later run's rows replace an earlier one's
    for r in hnsw:
        latest.setdefault((r["dataset"], r["n"], r.get("ef_construction", 40)), {})[r["ef_search"]] = r
    for (dataset, n, efc), by_ef in sorted(latest.items(), key=lambda item: (item[0][0] != "siftsmall", item[0])):
        built = next(iter(by_ef.values())).get("build_s")
        lines.append(f"| {dataset} | {n:,} | {efc} | "
                     + " | ".join(_cell(by_ef[ef]["recall"] if ef in by_ef else None, ".3f") for ef in EF_VALUES)
                     + f" | {_cell(built)} | {default_ef_search(n)} |")
    ivf = [r for r in rows["sweep"] if r["index"] == "IVFFlat"]
    lines += ["", "## Raw FAISS: IVFFlat at parag's default nlist for the size, recall@10 by the lists probed", "",
              "| dataset | n | nlist | " + " | ".join(f"nlist/{round(1 / f)}" for f in NPROBE_FRACTIONS)
              + " | parag's default nprobe |", "|---|---|---|" + "---|" * (len(NPROBE_FRACTIONS) + 1)]
    for key in dict.fromkeys((r["dataset"], r["n"], r["nlist"]) for r in ivf):
        cells = [f"{r['recall']:.3f} ({r['nprobe']})" for r in ivf if (r["dataset"], r["n"], r["nlist"]) == key]
        lines.append(f"| {key[0]} | {key[1]:,} | {key[2]} | " + " | ".join(cells) + f" | {default_nprobe(key[2])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", nargs="?", choices=("sweep", "verify"))
    p.add_argument("--max-n", type=int, default=1_000_000, help="largest synthetic size measured")
    p.add_argument("--min-n", type=int, default=0, help="smallest synthetic size measured (any: no real set)")
    p.add_argument("--index", choices=("HNSW", "IVFFlat", "both"), default="both")
    p.add_argument("--ef-construction", default="40", help="sweep: comma-separated HNSW efConstruction values")
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args()
    raw_file = RESULTS / "results.json"
    if not args.report_only:
        if args.what is None:
            p.error("say sweep or verify (or --report-only)")
        ef_construction = [int(v) for v in args.ef_construction.split(",")]
        key = (args.what, args.index, args.min_n, ef_construction if args.what == "sweep" else None)
        runs = read_json(raw_file)["runs"] if raw_file.exists() else []
        runs = [r for r in runs if run_key(r) != key]
        run = {"what": args.what, "index": args.index, "max_n": args.max_n, "min_n": args.min_n,
               "provenance": provenance(), "rows": []}
        if args.what == "sweep":
            run["ef_construction"] = ef_construction
        kinds = ("HNSW", "IVFFlat") if args.index == "both" else (args.index,)
        for name, data, sizes in datasets(args.max_n, args.min_n):
            if args.what == "verify":  # size by size, both kinds: the smaller sizes first
                steps = [([n], kind, None) for n in sizes or [data.n] for kind in kinds]
            else:  # one graph grown over the sizes per efConstruction
                steps = [(sizes, kind, efc) for kind in kinds for efc in (ef_construction if kind == "HNSW" else [None])]
            for step_sizes, kind, efc in steps:
                if args.what == "verify":
                    run["rows"] += verify(name, data, step_sizes, kind)
                elif kind == "HNSW":
                    run["rows"] += sweep_hnsw(name, data, step_sizes, efc)
                else:
                    run["rows"] += sweep_ivf(name, data, step_sizes)
                write_json(raw_file, {"runs": [*runs, run]})  # as it goes: a run stopped early keeps its rows
    REPORT.write_text(report(read_json(raw_file), RESULTS))
    print(REPORT.read_text())


def run_key(run: dict) -> tuple:
    """What a new run replaces: the earlier run of the same command and options."""
    return (run["what"], run["index"], run.get("min_n", 0), run.get("ef_construction", [40]) if run["what"] == "sweep" else None)


if __name__ == "__main__":
    main()
