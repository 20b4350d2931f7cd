"""Turn a results directory (one JSON per job and repeat) into docs/benchmarks.md and the
recall-QPS plots.

Every figure quoted is the median over the repeats of a job; every parag / raw FAISS ratio
is computed within one repeat and the median of those ratios is quoted. The report is
generated from the results files alone: a figure it needs that a result lacks is a
``ReportError``, never a default or a figure from elsewhere. A figure a worker recorded as
``null`` (the system cannot do it: LlamaIndex has no filter, Chroma no save step) is "n/a".
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np
from bench_provenance import ROOT, ReportError, describe, need, read_json
import bench_tradeoff

NAMES = {
    "parag": "parag",
    "faiss": "raw FAISS",
    "hnswlib": "hnswlib",
    "langchain": "LangChain FAISS",
    "parag-langchain": "parag via LangChain",
    "llamaindex": "LlamaIndex FaissVectorStore",
    "chroma": "Chroma",
    "milvus": "parag on Milvus",
}
# (key, column title, format) of the main tables.
FIGURES = [
    ("build_s", "build s (with metadata)", "{:.2f}"),
    ("rss_build_mb", "RSS +MB after build", "{:.0f}"),
    ("peak_build_mb", "peak RSS +MB during build", "{:.0f}"),
    ("batch_qps", "batch QPS", "{:,.0f}"),
    ("single_p50_ms", "single p50 ms", "{:.3f}"),
    ("single_p95_ms", "single p95 ms", "{:.3f}"),
    ("recall", "recall@10", "{:.3f}"),
    ("filtered_1%_p50_ms", "filtered 1% p50 ms", "{:.3f}"),
    ("filtered_1%_recall", "filtered 1% recall@10", "{:.3f}"),
    ("filtered_1%_returned", "filtered 1% results per query", "{:.1f}"),
    ("filtered_10%_p50_ms", "filtered 10% p50 ms", "{:.3f}"),
    ("filtered_10%_recall", "filtered 10% recall@10", "{:.3f}"),
    ("save_s", "save s", "{:.3f}"),
    ("load_s", "load s", "{:.3f}"),
    ("first_query_after_load_ms", "1st query after load ms", "{:.1f}"),
    ("disk_mb", "disk MB", "{:.1f}"),
]
# Every figure the Targets table reads, per system (and "sweep" from HNSW jobs on the main
# dataset): tests/test_bench_smoke.py checks that a quick run produces each of them.
TARGET_FIGURES = {
    "parag": ("same_index_batch_ratio", "same_index_single_ratio", "batch_s", "single_p50_ms", "build_s",
              "rss_build_mb", "index_bytes_mb", "metadata_json_mb"),
    "faiss": ("batch_s", "single_p50_ms", "build_s", "rss_build_mb"),
    "hnswlib": (),
    "parag-langchain": (),
}
# The Milvus section's columns: parag on a Milvus server beside parag's own HNSW on the same data.
MILVUS_FIGURES = ["build_s", "single_p50_ms", "batch_qps", "recall", "filtered_1%_recall", "filtered_1%_returned"]
TARGET_SWEEPS = ("parag", "hnswlib")  # their HNSW recall-QPS curves give the hnswlib target
INDEX_TYPES = ("Flat", "IVFFlat", "HNSW")
INDEX_ORDER = {"Flat": 0, "IVFFlat": 1, "HNSW": 2}
SYSTEM_ORDER = {s: i for i, s in enumerate(NAMES)}


def load_results(results: Path) -> list[dict]:
    skip = {"run.json", "bandwidth.json"}
    return [json.loads(p.read_text()) for p in sorted(results.glob("*.json")) if p.name not in skip and not p.name.endswith(".job.json")]


def group(results: list[dict]) -> dict[tuple[str, str, str], list[dict]]:
    """(dataset, system, index_type) -> the results of its repeats (errors excluded)."""
    groups: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for r in results:
        if "error" not in r:
            j = r["job"]
            groups[(j["dataset"], j["system"], j["index_type"])].append(r)
    return groups


def job_name(result: dict) -> str:
    j = result["job"]
    return f"{j['dataset']} {j['system']} {j['index_type']} r{j['repeat']}"


def figure(result: dict, key: str) -> float | None:
    """One figure of one result: a ReportError when the result lacks it."""
    return need(result, key, job_name(result))


def median(runs: list[dict], key: str) -> float | None:
    """The median over repeats; None when the worker recorded the figure as not supported."""
    values = [figure(r, key) for r in runs]
    return None if any(v is None for v in values) else statistics.median(values)


def ratio(groups, dataset: str, index_type: str, key: str) -> float | None:
    """Median over repeats of parag's figure / raw FAISS's figure in the same repeat."""
    parag = {r["job"]["repeat"]: r for r in groups.get((dataset, "parag", index_type), [])}
    raw = {r["job"]["repeat"]: r for r in groups.get((dataset, "faiss", index_type), [])}
    pairs = [(figure(parag[i], key), figure(raw[i], key)) for i in parag.keys() & raw.keys()]
    if not pairs or any(a is None or not b for a, b in pairs):
        return None
    return statistics.median(a / b for a, b in pairs)


def fmt(value: float | None, spec: str = "{:.2f}") -> str:
    return "n/a" if value is None else spec.format(value)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def system_table(groups, dataset: str) -> list[str]:
    keys = sorted((k for k in groups if k[0] == dataset), key=lambda k: (INDEX_ORDER[k[2]], SYSTEM_ORDER[k[1]]))
    rows = []
    for key in keys:
        runs = groups[key]
        cells = [fmt(median(runs, f), spec) + (" (loop)" if f == "batch_qps" and runs[0].get("batch_loop") else "")
                 for f, _, spec in FIGURES]
        rows.append([runs[0]["describe"], str(len(runs)), *cells])
    for index_type in ("Flat", "IVFFlat", "HNSW"):
        if (dataset, "parag", index_type) in groups and (dataset, "faiss", index_type) in groups:
            rows.append([f"**parag / raw FAISS, {index_type}**", "",
                         *(fmt(ratio(groups, dataset, index_type, f), "**{:.2f}**") for f, _, _ in FIGURES)])
    return table(["system", "runs", *(title for _, title, _ in FIGURES)], rows)


def interpolate_qps(points: list[dict], recall: float) -> float | None:
    """QPS of a curve at ``recall`` (linear between measured points; None outside them)."""
    points = sorted(points, key=lambda p: p["recall"])
    r = [p["recall"] for p in points]
    if not points or recall < r[0] or recall > r[-1]:
        return None
    return float(np.interp(recall, r, [p["qps"] for p in points]))


def median_curve(runs: list[dict]) -> list[dict]:
    """The sweep points, each the median over repeats."""
    by_value = defaultdict(list)
    for run in runs:
        for p in (figure(run, "sweep") if run["job"].get("sweep") else []):
            by_value[p["value"]].append(p)
    return [{"value": v, "recall": statistics.median(p["recall"] for p in ps), "qps": statistics.median(p["qps"] for p in ps)}
            for v, ps in sorted(by_value.items())]


def curves(groups, dataset: str, index_type: str) -> dict[str, list[dict]]:
    return {system: median_curve(runs) for (d, system, it), runs in groups.items()
            if d == dataset and it == index_type and median_curve(runs)}


def plot(curve_sets: dict[str, list[dict]], title: str, param: str, file: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for system, points in sorted(curve_sets.items(), key=lambda kv: SYSTEM_ORDER[kv[0]]):
        ax.plot([p["recall"] for p in points], [p["qps"] for p in points], marker="o", label=NAMES[system])
        for p in points[:: max(1, len(points) // 6)]:
            ax.annotate(str(p["value"]), (p["recall"], p["qps"]), textcoords="offset points", xytext=(3, 3), fontsize=7)
    ax.set_xlabel("recall@10")
    ax.set_ylabel("queries per second (batch, log scale)")
    ax.set_yscale("log")
    ax.set_title(f"{title} (labels: {param})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(file, dpi=110)
    plt.close(fig)
    return True


def curve_section(groups, dataset: str, out: Path) -> list[str]:
    lines = []
    for index_type, param, file in (("HNSW", "ef_search", "bench-hnsw-recall-qps.png"), ("IVFFlat", "nprobe", "bench-ivf-recall-qps.png")):
        sets = curves(groups, dataset, index_type)
        if not sets:
            continue
        title = f"{index_type} on {dataset}: recall@10 vs QPS"
        lines.append(f"### {title}\n")
        if plot(sets, title, param, out / file):
            lines.append(f"![{title}]({file})\n")
        rows = [[NAMES[s], ", ".join(f"{p['value']}: {p['recall']:.3f} @ {p['qps']:,.0f}" for p in pts)] for s, pts in sets.items()]
        lines += table(["system", f"{param}: recall@10 @ QPS"], rows) + [""]
    return lines


def hnswlib_comparison(groups, dataset: str) -> tuple[float | None, float | None]:
    """parag QPS / hnswlib QPS at equal recall, at each of hnswlib's points that parag's
    curve spans, within one repeat: the min and the median over those points, each the
    median over repeats (None: the curves do not overlap in recall)."""
    parag = {r["job"]["repeat"]: figure(r, "sweep") for r in groups[(dataset, "parag", "HNSW")]}
    other = {r["job"]["repeat"]: figure(r, "sweep") for r in groups[(dataset, "hnswlib", "HNSW")]}
    lows, mids = [], []
    for i in parag.keys() & other.keys():
        if not parag[i] or not other[i]:
            raise ReportError(f"{dataset} HNSW r{i}: parag's or hnswlib's recall-QPS sweep is empty")
        ratios = [qps / p["qps"] for p in other[i] if (qps := interpolate_qps(parag[i], p["recall"])) is not None]
        if ratios:
            lows.append(min(ratios))
            mids.append(statistics.median(ratios))
    return (statistics.median(lows), statistics.median(mids)) if lows else (None, None)


def per_index(groups, dataset: str, key: str) -> str:
    return ", ".join(f"{it} {ratio(groups, dataset, it, key):.2f}" for it in INDEX_TYPES)


def rss_ratios(groups, dataset: str, index_type: str) -> tuple[float, float]:
    """parag's RSS after build / (its FAISS index's serialized size + the metadata as JSON
    lines), and / (raw FAISS's RSS after building the same index in the same repeat + the
    metadata as JSON lines): medians over repeats."""
    parag = {r["job"]["repeat"]: r for r in groups[(dataset, "parag", index_type)]}
    raw = {r["job"]["repeat"]: r for r in groups[(dataset, "faiss", index_type)]}
    strict = [figure(r, "rss_build_mb") / (figure(r, "index_bytes_mb") + figure(r, "metadata_json_mb"))
              for r in parag.values()]
    vs_raw = [figure(parag[i], "rss_build_mb") / (figure(raw[i], "rss_build_mb") + figure(parag[i], "metadata_json_mb"))
              for i in parag.keys() & raw.keys()]
    return statistics.median(strict), statistics.median(vs_raw)


def verdict(value: float | None, limit: float, below: bool = True) -> str:
    if value is None:
        return "not measured"
    return "**met**" if (value <= limit if below else value >= limit) else "**missed**"


def target_rows(groups, failed: set[tuple[str, str, str]], main: str) -> list[list[str]]:
    """The Targets table's rows: (target, goal, measured, status). A target whose jobs were
    not in this run says so; one whose jobs failed says so; every other figure comes from
    the results or raises ReportError."""
    add_set = "synthetic-100k" if any(k[0] == "synthetic-100k" for k in groups) else main

    def missing(*jobs: tuple[str, str, str]) -> str | None:
        if failed & set(jobs):
            return "not measured: a job failed (see **Error** above)"
        absent = [j for j in jobs if j not in groups]
        return f"not run (this run has no {', '.join(' '.join(j) for j in absent)})" if absent else None

    def both(dataset: str) -> list[tuple[str, str, str]]:
        return [(dataset, system, it) for it in INDEX_TYPES for system in ("parag", "faiss")]

    def same_index(key: str, limit: float, separate: str) -> tuple[str, str]:
        if why := missing(*both(main)):
            return why, "not run"
        values = {it: median(groups[(main, "parag", it)], key) for it in INDEX_TYPES}
        text = ", ".join(f"{it} {v:.2f}" for it, v in values.items())
        return f"{text} (separate processes: {per_index(groups, main, separate)})", verdict(max(values.values()), limit)

    def add_ratio() -> tuple[str, str]:
        if why := missing(*both(add_set)):
            return why, "not run"
        worst = max(ratio(groups, add_set, it, "build_s") for it in INDEX_TYPES)
        return per_index(groups, add_set, "build_s"), verdict(worst, 1.15)

    def rss() -> tuple[str, str]:
        if why := missing(*both(add_set)):
            return why, "not run"
        values = {it: rss_ratios(groups, add_set, it) for it in INDEX_TYPES}
        text = ", ".join(f"{it} {v:.2f} ({w:.2f} against raw FAISS's RSS)" for it, (v, w) in values.items())
        return text, verdict(max(v for v, _ in values.values()), 1.3)

    def hnswlib() -> tuple[str, str]:
        if why := missing((main, "parag", "HNSW"), (main, "hnswlib", "HNSW")):
            return why, "not run"
        low, mid = hnswlib_comparison(groups, main)
        if low is None:
            return "the recall-QPS curves do not overlap", "not measured"
        return f"min {low:.2f}, median {mid:.2f}", verdict(low, 1.0, below=False)

    def scale() -> tuple[str, str]:
        if why := missing(("synthetic-1m", "parag", "HNSW")):
            return why, "not run"
        runs = groups[("synthetic-1m", "parag", "HNSW")]
        return (f"build {median(runs, 'build_s'):.0f} s, p50 {median(runs, 'single_p50_ms'):.3f} ms, "
                f"RSS +{median(runs, 'rss_build_mb'):,.0f} MB", "**met**")

    rows = [
        ["batch search time, parag / raw FAISS, same index", "<= 1.05", *same_index("same_index_batch_ratio", 1.05, "batch_s")],
        ["single-query p50, parag / raw FAISS (default threads), same index", "<= 0.6",
         *same_index("same_index_single_ratio", 0.6, "single_p50_ms")],
        [f"add with metadata ({add_set}), parag / raw FAISS add", "<= 1.15", *add_ratio()],
        [f"store RSS / (raw index + metadata JSON) ({add_set})", "<= 1.3", *rss()],
        [f"HNSW QPS at equal recall, parag / hnswlib ({main})", ">= 1 (at or above)", *hnswlib()],
        ["1M x 384 HNSW: build, then 1,000 single queries", "completes", *scale()],
    ]
    return rows


def targets(groups, failed: set[tuple[str, str, str]], main: str) -> list[str]:
    rows = target_rows(groups, failed, main)
    return table(["target (issue 5)", "goal", f"measured ({main} unless named; ratios per index type)", "status"], rows) + [
        "",
        "Search ratios are measured on the very same FAISS index object, parag and raw FAISS calls interleaved "
        "in one process (robust to a noisy machine; single queries alternate between different queries, so that "
        "neither finds the other's data in the CPU caches); figures from separate processes, paired by repeat "
        "as in the tables below, are given too. The hnswlib comparison is made within each repeat, at each of "
        "hnswlib's sweep points that parag's curve spans (min and median over the points, median over repeats).",
    ]


def flat_limit(groups, bandwidth: dict) -> list[str]:
    rows = []
    for (dataset, system, index_type), runs in sorted(groups.items()):
        if index_type != "Flat" or system not in ("parag", "faiss"):
            continue
        scanned = figure(runs[0], "n") * figure(runs[0], "d") * 4
        single = scanned / (median(runs, "single_p50_ms") / 1e3) / 1e9
        batch = scanned * median(runs, "batch_qps") / 1e9
        cached = " (fits in the CPU caches)" if scanned < 32e6 else ""
        rows.append([dataset + cached, NAMES[system], f"{scanned / 1e6:.0f}", f"{single:.1f}",
                     f"{single / bandwidth['gb_per_s_1_thread']:.0%}", f"{batch:.1f}"])
    head = [f"This machine's memory read bandwidth (numpy streaming read of a {bandwidth['mib']} MiB array, best of 5): "
            f"**{bandwidth['gb_per_s_1_thread']:.1f} GB/s on 1 thread**, {bandwidth['gb_per_s_all_threads']:.1f} GB/s on "
            f"{bandwidth['threads']} threads. A single Flat query must read every stored vector once, so "
            "bytes scanned per second cannot exceed that. A batch reuses each vector for many queries "
            "(FAISS computes it as a matrix product), so its effective figure can exceed the bandwidth: "
            "it is compute-bound, not memory-bound. parag answers a single query on one thread; raw FAISS uses its "
            "default OpenMP threads, which on a busy machine wait for each other.\n"]
    return head + table(["dataset", "system", "MB scanned per query", "single query GB/s", "of 1-thread bandwidth",
                         "batch effective GB/s"], rows)


def tune_section(groups) -> list[str]:
    rows = []
    for (dataset, system, index_type), runs in sorted(groups.items()):
        if not runs[0]["job"].get("tune") or index_type == "Flat":  # a Flat store has nothing to tune
            continue
        tuned = [figure(r, "tune") for r in runs]
        values = [t["value"] for t in tuned]
        rows.append([dataset, index_type, tuned[0]["param"], "/".join(map(str, values)),
                     f"{statistics.median(t['recall_tuning_queries'] for t in tuned):.3f}",
                     f"{statistics.median(t['recall_held_out'] for t in tuned):.3f}",
                     f"{statistics.median(t['seconds'] for t in tuned):.2f}"])
    return table(["dataset", "index", "parameter", "chosen (per run)", "recall@10, tuning queries",
                  "recall@10, held-out queries", "tune() s"], rows)


def scale_section(groups) -> list[str]:
    rows = []
    for (dataset, system, index_type), runs in groups.items():
        if dataset != "synthetic-1m":
            continue
        r = runs[0]
        rows.append([NAMES[system], f"{figure(r, 'n'):,} x {figure(r, 'd')}",
                     *(fmt(figure(r, key), spec) for key, spec in SCALE_FIGURES)])
    return table(["system", "vectors", "build s", "RSS +MB", "peak +MB", "1,000 single queries: p50 ms", "p95 ms",
                  "recall@10", "batch QPS", "filtered 1% p50 ms", "filtered 10% p50 ms", "save s", "load s", "disk MB"], rows)


SCALE_FIGURES = [("build_s", "{:.0f}"), ("rss_build_mb", "{:,.0f}"), ("peak_build_mb", "{:,.0f}"),
                 ("single_p50_ms", "{:.3f}"), ("single_p95_ms", "{:.3f}"), ("recall", "{:.3f}"), ("batch_qps", "{:,.0f}"),
                 ("filtered_1%_p50_ms", "{:.2f}"), ("filtered_10%_p50_ms", "{:.2f}"), ("save_s", "{:.1f}"),
                 ("load_s", "{:.1f}"), ("disk_mb", "{:,.0f}")]


def milvus_section(groups, failed: set[tuple[str, str, str]], datasets: list[str], unavailable: dict) -> list[str]:
    """parag on Milvus next to parag's HNSW store, per dataset; or why Milvus did not run."""
    if "milvus" in unavailable:
        return [f"**Milvus unavailable**: {unavailable['milvus']}. No Milvus figures in this run."]
    columns = {key: (title, spec) for key, title, spec in FIGURES}
    rows = []
    for dataset in datasets:
        if (dataset, "milvus", "HNSW") in failed:
            rows.append([dataset, "parag on Milvus", "not measured: the job failed (see **Error** above)"]
                        + [""] * (len(MILVUS_FIGURES) - 1))
        for system in ("milvus", "parag"):
            if (dataset, "milvus", "HNSW") in groups and (dataset, system, "HNSW") in groups:
                runs = groups[(dataset, system, "HNSW")]
                rows.append([dataset, NAMES[system], *(fmt(median(runs, key), columns[key][1]) for key in MILVUS_FIGURES)])
    if not rows:
        return []
    return ["The same HNSW parameters (M=32, ef_construction=40, ef_search=64) on a Milvus server on this machine "
            "(its build includes the flush that seals and indexes the rows; every search is a request to the "
            "server) beside parag's in-process HNSW store, in the same run.", "",
            *table(["dataset", "system", *(columns[key][0] for key in MILVUS_FIGURES)], rows)]


def data_line(groups, datasets: list[str]) -> str:
    """What each dataset of the run is, with its size as measured."""
    what = {"debian-minilm": "MiniLM sentence embeddings of Debian package descriptions",
            "siftsmall": "SIFT image descriptors", "fashion-mnist": "Fashion-MNIST pixels"}
    parts = []
    for dataset in datasets:
        r = next(runs[0] for k, runs in groups.items() if k[0] == dataset)
        kind = what.get(dataset, "**synthetic**: unit vectors in Gaussian clusters around random centres")
        parts.append(f"{dataset} ({figure(r, 'n'):,} x {figure(r, 'd')}, {figure(r, 'metric')}; {kind})")
    return "- **Data**: " + "; ".join(parts) + ". Real sets with their published ground truth, synthetic ones by exact search."


README = ROOT / "README.md"


def summary(groups, failed: set[tuple[str, str, str]], main: str, run: dict) -> list[str]:
    """The README's account of the published run (between its ``benchmarks summary``
    markers): the targets, and the figures the README quotes, each with its dataset."""
    prov = run["provenance"]
    lines = [f"What the published run found ([docs/benchmarks.md](docs/benchmarks.md), generated from the raw results "
             f"in [docs/bench-results/](docs/bench-results/), measured at commit `{prov['commit'][:10]}` on "
             f"{prov['started'][:10]}; {run['repeats']} runs per figure, medians, ratios within a run):", ""]
    lines += [f"- {name} (goal {goal}): {measured}: {status.strip('*')}." for name, goal, measured, status in
              target_rows(groups, failed, main) if status != "not run"]
    singles = [f"{it} {median(groups[(main, 'parag', it)], 'single_p50_ms'):.3f} ms at recall@10 "
               f"{median(groups[(main, 'parag', it)], 'recall'):.3f}" for it in INDEX_TYPES if (main, "parag", it) in groups]
    if singles:
        lines.append(f"- Single-query p50 of parag's defaults on {main}: {', '.join(singles)}.")
    for dataset in ("synthetic-100k", "synthetic-1m"):
        if (dataset, "parag", "Flat") in groups:
            runs = groups[(dataset, "parag", "Flat")]
            lines.append(f"- A Flat query on {dataset} ({figure(runs[0], 'n'):,} x {figure(runs[0], 'd')}, synthetic): "
                         f"p50 {median(runs, 'single_p50_ms'):.3f} ms.")
    if (main, "langchain", "Flat") in groups:
        runs = groups[(main, "langchain", "Flat")]
        lines.append(f"- LangChain's FAISS on {main} returns {median(runs, 'filtered_1%_returned'):.1f} of 10 results at 1% "
                     f"filter selectivity (recall@10 {median(runs, 'filtered_1%_recall'):.3f}), and pickles its docstore.")
    if (main, "llamaindex", "Flat") in groups:
        runs = groups[(main, "llamaindex", "Flat")]
        lines.append(f"- LlamaIndex's FaissVectorStore peaks at +{median(runs, 'peak_build_mb'):.0f} MB of RSS to add "
                     f"{figure(runs[0], 'n'):,} nodes of {main} (parag HNSW: +"
                     f"{median(groups[(main, 'parag', 'HNSW')], 'peak_build_mb'):.0f} MB).")
    if (main, "chroma", "HNSW") in groups:
        chroma, ours = groups[(main, "chroma", "HNSW")], groups[(main, "parag", "HNSW")]
        lines.append(f"- Chroma builds {main} in {median(chroma, 'build_s'):.1f} s and answers a query in "
                     f"{median(chroma, 'single_p50_ms'):.3f} ms; parag HNSW in {median(ours, 'build_s'):.1f} s and "
                     f"{median(ours, 'single_p50_ms'):.3f} ms.")
    if "milvus" in run["unavailable"]:
        lines.append(f"- parag on Milvus: not measured ({run['unavailable']['milvus']}).")
    for dataset in sorted({k[0] for k in groups if k[1] == "milvus" and (k[0], "parag", "HNSW") in groups}):
        milvus, ours = groups[(dataset, "milvus", "HNSW")], groups[(dataset, "parag", "HNSW")]
        lines.append(f"- parag on a Milvus server on this machine, HNSW on {dataset}: built in {median(milvus, 'build_s'):.1f} s, "
                     f"single-query p50 {median(milvus, 'single_p50_ms'):.2f} ms, recall@10 {median(milvus, 'recall'):.3f} "
                     f"(parag's own HNSW store: {median(ours, 'build_s'):.1f} s, {median(ours, 'single_p50_ms'):.3f} ms, "
                     f"{median(ours, 'recall'):.3f}).")
    tuned = [(it, [figure(r, "tune") for r in groups[(main, "parag", it)]]) for it in ("HNSW", "IVFFlat")
             if (main, "parag", it) in groups]
    if tuned:
        lines.append(f"- `store.tune(queries, target_recall=0.95)` on {main} picks " + " and ".join(
            f"{t[0]['param']}={'/'.join(str(x['value']) for x in t)} (recall@10 on held-out queries "
            f"{statistics.median(x['recall_held_out'] for x in t):.3f})" for _, t in tuned) + ".")
    if ("synthetic-1m", "parag", "HNSW") in groups:
        runs = groups[("synthetic-1m", "parag", "HNSW")]
        lines.append(f"- 1M x 384 (synthetic) HNSW: built in {median(runs, 'build_s'):.0f} s with "
                     f"+{median(runs, 'rss_build_mb'):,.0f} MB RSS; 1,000 single queries p50 "
                     f"{median(runs, 'single_p50_ms'):.3f} ms at recall@10 {median(runs, 'recall'):.3f}.")
    return lines


def replace_block(path: Path, name: str, lines: list[str]) -> None:
    """Replace the text between ``<!-- begin NAME -->`` and ``<!-- end NAME -->`` in ``path``."""
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    text = path.read_text()
    if text.count(begin) != 1 or text.count(end) != 1:
        raise ReportError(f"{path} must hold the markers {begin} and {end} once each")
    head, rest = text.split(begin)
    path.write_text(head + begin + "\n" + "\n".join(lines) + "\n" + end + rest.split(end)[1])


def load(results: Path) -> tuple[dict, list[dict], dict, set, str]:
    """(run.json, every result, groups, failed jobs, main dataset) of a results directory."""
    run = read_json(results / "run.json")
    all_results = load_results(results)
    groups = group(all_results)
    failed = {(r["job"]["dataset"], r["job"]["system"], r["job"]["index_type"]) for r in all_results if "error" in r}
    datasets = [d for d in run["datasets"] if any(k[0] == d for k in groups)]
    main = "debian-minilm" if "debian-minilm" in datasets else (datasets[0] if datasets else "")
    return run, all_results, groups, failed, main


def write(results: Path, out: Path) -> Path:
    """Write ``out/benchmarks.md`` (and the plots) from the raw results in ``results``; for
    the published report (``out`` is docs/), also the README's summary of it."""
    out.mkdir(parents=True, exist_ok=True)
    run, all_results, groups, failed, main = load(results)
    bandwidth = read_json(results / "bandwidth.json")
    datasets = [d for d in run["datasets"] if any(k[0] == d for k in groups)]
    loads = [figure(r, "loadavg_after") for r in all_results if "error" not in r]
    scale = [d for d in ("synthetic-1m",) if any(k[0] == d for k in groups)]
    lines = [
        "# Benchmarks",
        "",
        "_Generated by `./run bench` (benchmarks/run.py) from the raw results named below; do not edit by hand._",
        "",
        *describe(run["provenance"], results),
        f"- **Run**: `benchmarks/run.py {' '.join(run['argv'])}`, took {run['seconds'] / 60:.0f} min; 1-min load "
        f"average after each job: {min(loads, default=0):.1f}-{max(loads, default=0):.1f} (shared machine: timings "
        "are noisy, ratios are taken within one repeat)",
        f"- **Method**: each system in its own subprocess, one at a time, through its public API with precomputed "
        f"vectors and metadata `{{doc_id, source (100 values), year (10 values)}}`; k = 10; every figure is the "
        f"median of {run['repeats']} runs, ratios are medians of per-run ratios. Batch: all queries in one "
        "call, all threads (LangChain and LlamaIndex have no batch search: a loop). Single queries: one call per "
        "query. Filtered: `source == s7` (1%) and `year == 2020` (10%), recall against the exact top-10 among the "
        "matching vectors. RSS: resident memory of the process after the build minus before it (data already "
        "loaded). Raw FAISS keeps metadata in a Python list and saves it with `json`; its filtered search uses an "
        "`IDSelectorBatch` built outside the timing.",
        data_line(groups, datasets + scale),
    ]
    if run["src_at_end"] != run["provenance"]["src"]:
        lines.append(f"- **Warning**: src/ or benchmarks/ changed during the run (at its end: {run['src_at_end']})")
    if run["skipped"]:
        lines.append(f"- **Not installed, skipped**: {', '.join(run['skipped'])}")
    unavailable = need(run, "unavailable", str(results / "run.json"))
    for system, why in unavailable.items():
        lines.append(f"- **Unavailable, skipped**: {NAMES[system]}: {why}")
    for r in all_results:
        if "error" in r:
            lines.append(f"- **Error** in {job_name(r)}: {r['error'].splitlines()[0][:300]}")
    lines += ["", "## Targets", "", *targets(groups, failed, main), ""]
    lines += ["## Recall vs speed", "", *curve_section(groups, main, out)]
    lines += bench_tradeoff.section(results, out)
    if milvus := milvus_section(groups, failed, datasets, unavailable):
        lines += ["## parag on Milvus", "", *milvus, ""]
    for dataset in datasets:
        lines += [f"## {dataset}", "", *system_table(groups, dataset), ""]
    lines += ["## Flat: the physical limit", "", *flat_limit(groups, bandwidth), ""]
    lines += ["## `store.tune(queries, target_recall=0.95)`", "",
              "Tuned on the first half of the queries, checked on the other half (held out).", "", *tune_section(groups), ""]
    if scale:
        lines += ["## Scale: 1M x 384 HNSW (synthetic)", "", *scale_section(groups), ""]
    report = out / "benchmarks.md"
    report.write_text("\n".join(lines) + "\n")
    if out.resolve() == (ROOT / "docs").resolve():
        replace_block(README, "benchmarks summary", summary(groups, failed, main, run))
    return report
