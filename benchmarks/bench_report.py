"""Turn a results directory (one JSON per job) into docs/benchmarks.md and the recall-QPS plots.

Every figure quoted is the median over the repeats of a job; every parag / raw FAISS ratio
is computed within one repeat and the median of those ratios is quoted.
"""

from __future__ import annotations

import datetime
import json
import platform
import statistics
import subprocess
from collections import defaultdict
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NAMES = {
    "parag": "parag",
    "faiss": "raw FAISS",
    "hnswlib": "hnswlib",
    "langchain": "LangChain FAISS",
    "llamaindex": "LlamaIndex FaissVectorStore",
    "chroma": "Chroma",
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
    ("filtered_10%_p50_ms", "filtered 10% p50 ms", "{:.3f}"),
    ("filtered_10%_recall", "filtered 10% recall@10", "{:.3f}"),
    ("save_s", "save s", "{:.3f}"),
    ("load_s", "load s", "{:.3f}"),
    ("first_query_after_load_ms", "1st query after load ms", "{:.1f}"),
    ("disk_mb", "disk MB", "{:.1f}"),
]
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


def median(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
    return statistics.median(values) if values else None


def ratio(groups, dataset: str, index_type: str, key: str) -> float | None:
    """Median over repeats of parag's figure / raw FAISS's figure in the same repeat."""
    parag = {r["job"]["repeat"]: r for r in groups.get((dataset, "parag", index_type), [])}
    raw = {r["job"]["repeat"]: r for r in groups.get((dataset, "faiss", index_type), [])}
    ratios = [parag[i][key] / raw[i][key] for i in parag.keys() & raw.keys()
              if isinstance(parag[i].get(key), (int, float)) and raw[i].get(key)]
    return statistics.median(ratios) if ratios else None


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
        for p in run.get("sweep", []):
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
    median over repeats."""
    parag = {r["job"]["repeat"]: r.get("sweep") for r in groups.get((dataset, "parag", "HNSW"), [])}
    other = {r["job"]["repeat"]: r.get("sweep") for r in groups.get((dataset, "hnswlib", "HNSW"), [])}
    lows, mids = [], []
    for i in parag.keys() & other.keys():
        if not parag[i] or not other[i]:
            continue
        ratios = [qps / p["qps"] for p in other[i] if (qps := interpolate_qps(parag[i], p["recall"])) is not None]
        if ratios:
            lows.append(min(ratios))
            mids.append(statistics.median(ratios))
    return (statistics.median(lows), statistics.median(mids)) if lows else (None, None)


def same_index(groups, dataset: str, key: str) -> str:
    """Per index type, the median over repeats of a same-index ratio measured by the parag job."""
    parts = []
    for it in ("Flat", "IVFFlat", "HNSW"):
        value = median(groups.get((dataset, "parag", it), []), key)
        if value is not None:
            parts.append((it, value))
    return parts


def per_index(groups, dataset: str, key: str, spec: str = "{:.2f}") -> str:
    parts = [f"{it} {fmt(ratio(groups, dataset, it, key), spec)}" for it in ("Flat", "IVFFlat", "HNSW")
             if ratio(groups, dataset, it, key) is not None]
    return ", ".join(parts) or "n/a"


def rss_ratios(groups, dataset: str, index_type: str) -> tuple[float | None, float | None]:
    """parag's RSS after build / (its FAISS index's serialized size + the metadata as JSON
    lines), and / (raw FAISS's RSS after building the same index in the same repeat + the
    metadata as JSON lines): medians over repeats."""
    parag = {r["job"]["repeat"]: r for r in groups.get((dataset, "parag", index_type), []) if "index_bytes_mb" in r}
    raw = {r["job"]["repeat"]: r for r in groups.get((dataset, "faiss", index_type), [])}
    strict = [r["rss_build_mb"] / (r["index_bytes_mb"] + r["metadata_json_mb"]) for r in parag.values()]
    vs_raw = [parag[i]["rss_build_mb"] / (raw[i]["rss_build_mb"] + parag[i]["metadata_json_mb"])
              for i in parag.keys() & raw.keys()]
    return (statistics.median(strict) if strict else None, statistics.median(vs_raw) if vs_raw else None)


def targets(groups, main: str) -> list[str]:
    def worst(dataset, key):
        values = [ratio(groups, dataset, it, key) for it in ("Flat", "IVFFlat", "HNSW")]
        values = [v for v in values if v is not None]
        return max(values) if values else None

    def verdict(value, limit, below=True):
        if value is None:
            return "not measured"
        return "**met**" if (value <= limit if below else value >= limit) else "**missed**"

    add_set = "synthetic-100k" if any(k[0] == "synthetic-100k" for k in groups) else main
    rss = {it: rss_ratios(groups, add_set, it) for it in ("Flat", "IVFFlat", "HNSW")}
    rss_text = ", ".join(f"{it} {v:.2f}" + (f" ({w:.2f} against raw FAISS's RSS)" if w is not None else "")
                         for it, (v, w) in rss.items() if v is not None) or "n/a"
    rss_worst = max((v for v, _ in rss.values() if v is not None), default=None)
    low, mid = hnswlib_comparison(groups, main)
    scale = groups.get(("synthetic-1m", "parag", "HNSW"))
    def same(key, limit):
        parts = same_index(groups, main, key)
        text = ", ".join(f"{it} {v:.2f}" for it, v in parts) or "n/a"
        return text, verdict(max((v for _, v in parts), default=None), limit)

    batch_text, batch_verdict = same("same_index_batch_ratio", 1.05)
    single_text, single_verdict = same("same_index_single_ratio", 0.6)
    if single_text == "n/a":  # results from before the same-index single-query pairing
        single_text = f"separate processes: {per_index(groups, main, 'single_p50_ms')}"
        single_verdict = verdict(worst(main, "single_p50_ms"), 0.6)
    else:
        single_text += f" (separate processes: {per_index(groups, main, 'single_p50_ms')})"
    rows = [
        ["batch search time, parag / raw FAISS, same index", "<= 1.05",
         f"{batch_text} (separate processes: {per_index(groups, main, 'batch_s')})", batch_verdict],
        ["single-query p50, parag / raw FAISS (default threads)", "<= 0.6", single_text, single_verdict],
        [f"add with metadata ({add_set}), parag / raw FAISS add", "<= 1.15", per_index(groups, add_set, "build_s"), verdict(worst(add_set, "build_s"), 1.15)],
        [f"store RSS / (raw index + metadata JSON) ({add_set})", "<= 1.3", rss_text, verdict(rss_worst, 1.3)],
        [f"HNSW QPS at equal recall, parag / hnswlib ({main})", ">= 1 (at or above)",
         "n/a" if low is None else f"min {low:.2f}, median {mid:.2f}", verdict(low, 1.0, below=False)],
        ["1M x 384 HNSW: build, then 1,000 single queries", "completes",
         "not run" if not scale else f"build {median(scale, 'build_s'):.0f} s, p50 {median(scale, 'single_p50_ms'):.3f} ms, "
         f"RSS +{median(scale, 'rss_build_mb'):,.0f} MB", "**met**" if scale else "not run"],
    ]
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
        scanned = runs[0]["n"] * runs[0]["d"] * 4
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
        tuned = [r["tune"] for r in runs if "tune" in r]
        if not tuned:
            continue
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
        rows.append([NAMES[system], f"{r['n']:,} x {r['d']}", f"{r['build_s']:.0f}", f"{r['rss_build_mb']:,.0f}",
                     f"{r['peak_build_mb']:,.0f}", f"{r['single_p50_ms']:.3f}", f"{r['single_p95_ms']:.3f}",
                     f"{r['recall']:.3f}", f"{r['batch_qps']:,.0f}", fmt(r.get("filtered_1%_p50_ms"), "{:.2f}"),
                     fmt(r.get("filtered_10%_p50_ms"), "{:.2f}"), f"{r['save_s']:.1f}", f"{r['load_s']:.1f}",
                     f"{r['disk_mb']:,.0f}"])
    return table(["system", "vectors", "build s", "RSS +MB", "peak +MB", "1,000 single queries: p50 ms", "p95 ms",
                  "recall@10", "batch QPS", "filtered 1% p50 ms", "filtered 10% p50 ms", "save s", "load s", "disk MB"], rows)


def versions() -> str:
    names = ["numpy", "faiss-cpu", "orjson", "hnswlib", "langchain-community", "langchain-core", "llama-index-core",
             "llama-index-vector-stores-faiss", "chromadb", "matplotlib"]
    found = []
    for name in names:
        try:
            found.append(f"{name} {importlib_metadata.version(name)}")
        except importlib_metadata.PackageNotFoundError:
            pass
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "src"], capture_output=True, text=True).stdout.strip()
    return f"parag {commit}{' (+ uncommitted changes in src/)' if dirty else ''}, Python {platform.python_version()}, " + ", ".join(found)


def src_state() -> str:
    """The committed tree of src/ and whether it has uncommitted changes: what the run measured."""
    git = ["git", "-C", str(ROOT)]
    tree = subprocess.run([*git, "rev-parse", "HEAD:src"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "status", "--porcelain", "src"], capture_output=True, text=True).stdout.strip()
    return tree + (" dirty" if dirty else "")


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    mem = next((int(line.split()[1]) / 1e6 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), 0)
    import os

    return f"{model}, {os.cpu_count()} cores, {mem:.0f} GB RAM, {platform.system()} {platform.release()}"


def write(results: Path, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    run = json.loads((results / "run.json").read_text()) if (results / "run.json").exists() else {}
    bandwidth = json.loads((results / "bandwidth.json").read_text())
    all_results = load_results(results)
    groups = group(all_results)
    datasets = [d for d in run.get("datasets", sorted({k[0] for k in groups})) if any(k[0] == d for k in groups)]
    main = "debian-minilm" if "debian-minilm" in datasets else (datasets[0] if datasets else "")
    loads = [r["loadavg_after"] for r in all_results if "loadavg_after" in r]
    date = datetime.datetime.fromtimestamp(run.get("started", 0), datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmarks",
        "",
        "_Generated by `./run bench` (benchmarks/run.py); do not edit by hand._",
        "",
        f"- **Date**: {date}; the run took {run.get('seconds', 0) / 60:.0f} min "
        f"(`benchmarks/run.py {' '.join(run.get('argv', []))}`)",
        f"- **Machine**: {run.get('machine') or machine()}; 1-min load average after each job: "
        f"{min(loads, default=0):.1f}-{max(loads, default=0):.1f} (shared machine: timings are noisy, ratios are "
        "taken within one repeat)",
        f"- **Versions**: {run.get('versions') or versions()}",
        f"- **Method**: each system in its own subprocess, one at a time, through its public API with precomputed "
        f"vectors and metadata `{{doc_id, source (100 values), year (10 values)}}`; k = 10; every figure is the "
        f"median of {run.get('repeats', '?')} runs, ratios are medians of per-run ratios. Batch: all queries in one "
        "call, all threads (LangChain and LlamaIndex have no batch search: a loop). Single queries: one call per "
        "query. Filtered: `source == s7` (1%) and `year == 2020` (10%), recall against the exact top-10 among the "
        "matching vectors. RSS: resident memory of the process after the build minus before it (data already "
        "loaded). Raw FAISS keeps metadata in a Python list and saves it with `json`; its filtered search uses an "
        "`IDSelectorBatch` built outside the timing.",
        "- **Data**: debian-minilm (58,940 x 384 MiniLM sentence embeddings, inner product), siftsmall (10,000 x "
        "128, L2), fashion-mnist (60,000 x 784 pixels, L2), all with their ground truth; synthetic-100k and "
        "synthetic-1m are **synthetic**: unit vectors in Gaussian clusters around 1,000 random centres (x 384, inner "
        "product), ground truth by exact search.",
    ]
    if run.get("src_at_end", run.get("src")) != run.get("src"):
        lines.append(f"- **Warning**: src/ changed during the run; at its end: {run['versions_at_end']}")
    if run.get("skipped"):
        lines.append(f"- **Not installed, skipped**: {', '.join(run['skipped'])}")
    errors = [r for r in all_results if "error" in r]
    for r in errors:
        j = r["job"]
        lines.append(f"- **Error** in {j['dataset']} {j['system']} {j['index_type']} r{j['repeat']}: {r['error'].splitlines()[0][:300]}")
    lines += ["", "## Targets", "", *targets(groups, main), ""]
    lines += ["## Recall vs speed", "", *curve_section(groups, main, out)]
    for dataset in datasets:
        lines += [f"## {dataset}", "", *system_table(groups, dataset), ""]
    lines += ["## Flat: the physical limit", "", *flat_limit(groups, bandwidth), ""]
    lines += ["## `store.tune(queries, target_recall=0.95)`", "",
              "Tuned on the first half of the queries, checked on the other half (held out).", "", *tune_section(groups), ""]
    if any(k[0] == "synthetic-1m" for k in groups):
        lines += ["## Scale: 1M x 384 HNSW (synthetic)", "", *scale_section(groups), ""]
    report = out / "benchmarks.md"
    report.write_text("\n".join(lines) + "\n")
    return report
