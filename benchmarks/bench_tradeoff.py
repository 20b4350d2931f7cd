"""The recall-memory-speed trade-off of compressed storage: usearch's f16 and i8 HNSW beside
parag and raw FAISS, and the table and plot that ``docs/benchmarks.md`` and
``docs/bench-storage.md`` show, generated from the storage suite's raw results alone.

usearch runs with parag's HNSW settings where they map: ``connectivity`` = M,
``expansion_add`` = ef_construction, ``expansion_search`` = ef_search. Where usearch is not
installed (``pip install -e '.[bench]'``) its rows are left out and the report says why.
"""

from __future__ import annotations

import importlib.util
import time
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from bench_provenance import read_json

USEARCH_DTYPES = ("f16", "i8")
USEARCH_METRICS = {"IP": "ip", "L2": "l2sq", "cosine": "cos"}
PLOT = "bench-storage-tradeoff.png"


def usearch_missing() -> str | None:
    """Why usearch cannot run here, or None."""
    if importlib.util.find_spec("usearch") is None:
        return "usearch is not installed (pip install -e '.[bench]')"
    return None


def speed(search: Callable, raw_search: Callable | None, queries: np.ndarray, repeats: int, n_single: int,
          bare_search: Callable | None = None) -> dict:
    """Batch and single-query times of ``search`` and (on the same index) ``raw_search``: batch
    calls interleaved, in alternating order (the ratio is the median of per-pair ratios), single
    queries alternating, the raw one on another query than the one just searched (which would
    still be in the CPU caches, as a real stream of queries never is). ``bare_search``: the same
    search returning what raw FAISS returns (ids and scores, no metadata decoded), its batch
    interleaved with the others (``bare_batch_s``, ``bare_ratio``)."""
    batch, raw_batch, bare_batch, single, raw_single = [], [], [], [], []
    n = min(n_single, len(queries))
    pair = [(fn, times) for fn, times in ((search, batch), (raw_search, raw_batch), (bare_search, bare_batch)) if fn]
    for repeat in range(repeats):
        for fn, times in pair[:: 1 if repeat % 2 == 0 else -1]:
            times.append(_seconds(fn, queries))
    for i in range(n):
        single.append(_seconds(search, queries[i]))
        if raw_search:
            raw_single.append(_seconds(raw_search, queries[(i + n // 2) % n][None, :]))
    out = {"batch_s": float(np.median(batch)), "single_ms": 1e3 * float(np.median(single))}
    if raw_search:
        out |= {"raw_batch_s": float(np.median(raw_batch)), "raw_single_ms": 1e3 * float(np.median(raw_single)),
                "batch_ratio": float(np.median(np.divide(batch, raw_batch)))}
    if raw_search and bare_search:
        out |= {"bare_batch_s": float(np.median(bare_batch)),
                "bare_ratio": float(np.median(np.divide(bare_batch, raw_batch)))}
    return out


def _seconds(fn: Callable, x: np.ndarray) -> float:
    start = time.perf_counter()
    fn(x)
    return time.perf_counter() - start


def recall(ids: np.ndarray, gt: np.ndarray) -> float:
    return sum(len(set(np.asarray(row).tolist()) & set(truth.tolist())) for row, truth in zip(ids, gt)) / gt.size


def measure_usearch(data, dtype: str, hnsw: dict, repeats: int, n_single: int, path: Path,
                    memory: Callable[[Path, str], dict]) -> dict:
    """usearch HNSW with ``dtype`` storage at parag's HNSW parameters ``hnsw``: recall@10,
    speed, the saved index's bytes per vector and (``memory(path, mode)``, a fresh process)
    resident memory after ``restore`` and after ``restore(view=True)`` (memory-mapped)."""
    from usearch.index import Index

    index = Index(ndim=data.d, metric=USEARCH_METRICS[data.metric], dtype=dtype, connectivity=hnsw["M"],
                  expansion_add=hnsw["ef_construction"], expansion_search=hnsw["ef_search"])
    start = time.perf_counter()
    index.add(np.arange(data.n), data.base)
    record = {"system": "usearch", "dtype": dtype, "metric": data.metric, "build_s": time.perf_counter() - start,
              "params": {"connectivity": hnsw["M"], "expansion_add": hnsw["ef_construction"],
                         "expansion_search": hnsw["ef_search"]}}
    gt = data.gt[:, :10]
    record["recall"] = recall(index.search(data.queries, 10).keys, gt)
    record |= speed(partial(index.search, count=10), None, data.queries, repeats, n_single)
    index.save(str(path))
    del index
    record["index_bytes"] = path.stat().st_size / data.n
    record["rss"] = {mode: memory(path, mode) for mode in ("usearch", "usearch-view")}
    return record


def _resident(mem: dict, mode: str, n: int) -> float | None:
    """Anonymous + file-backed bytes per vector after every query (None: not measured)."""
    if mode not in mem:
        return None
    return (mem[mode]["searched"]["RssAnon"] + mem[mode]["searched"]["RssFile"]) / n


def points(raw: dict) -> list[dict]:
    """One point per (system, configuration, rerank) of a storage run: recall@10, resident
    bytes per vector after every query, batch QPS and single-query p50."""
    n, nq, out = raw["n"], raw["n_queries"], []
    for r in raw["configs"]:
        factory = r.get("factory", "-")
        for key, rec in r["recall"].items():
            rerank = "-" if r["storage"] == "float32" else key
            label = f"{r['index_type']} {r['storage']}" + ("" if rerank == "-" else f" r{rerank}")
            out.append({"system": "parag", "label": label, "index": r["index_type"], "storage": r["storage"],
                        "rerank": rerank, "factory": factory, "recall": rec,
                        "bytes": _resident(r["rss"], "mmap", n), "index_bytes": r["codes_bytes"],
                        "qps": _qps(r.get("batch_s", {}).get(key), nq), "p50": r.get("single_ms", {}).get(key),
                        "raw": {"recall": r.get("raw_recall", {}).get(key), "bytes": _resident(r["rss"], "raw", n),
                                "qps": _qps(r.get("raw_batch_s", {}).get(key), nq),
                                "p50": r.get("raw_single_ms", {}).get(key), "ratio": r.get("batch_ratio", {}).get(key),
                                "bare_ratio": r.get("bare_ratio", {}).get(key)}})
    for u in raw.get("usearch", []):
        out.append({"system": "usearch", "label": f"usearch {u['dtype']}", "index": "HNSW",
                    "storage": f"{u['dtype']} (usearch)",
                    "rerank": "-", "factory": f"usearch {u['dtype']}, connectivity {u['params']['connectivity']}",
                    "recall": u["recall"], "bytes": _resident(u["rss"], "usearch-view", n),
                    "index_bytes": u["index_bytes"], "qps": _qps(u["batch_s"], nq), "p50": u["single_ms"], "raw": None})
    return out


def _qps(seconds: float | None, n_queries: int) -> float | None:
    return None if seconds is None else n_queries / seconds


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def table(raw: dict) -> list[str]:
    """The trade-off table of one storage run (markdown lines)."""
    rows = []
    for p in points(raw):
        theirs = p["raw"] or {}
        rows.append(f"| {p['index']} | {p['storage']} | {p['rerank']} | {p['recall']:.3f} | {p['index_bytes']:.0f} | "
                    f"{_cell(p['bytes'], '.0f')} | {_cell(p['qps'], ',.0f')} | {_cell(p['p50'], '.2f')} | "
                    f"`{p['factory']}` | {_cell(theirs.get('recall'), '.3f')} | {_cell(theirs.get('bytes'), '.0f')} | "
                    f"{_cell(theirs.get('qps'), ',.0f')} | {_cell(theirs.get('p50'), '.2f')} | "
                    f"{_cell(theirs.get('ratio'), '.2f')} | {_cell(theirs.get('bare_ratio'), '.2f')} |")
    return [
        "| index | storage | rerank | recall@10 | index B/vector | resident B/vector | batch QPS | single p50 ms "
        "| raw FAISS factory (or usearch) | raw recall@10 | raw resident B/vector | raw batch QPS | raw single p50 ms "
        "| parag / raw batch time | the same, ids and scores only |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
    ]


def notes(raw: dict) -> list[str]:
    """What the columns mean, and why usearch is absent where it is."""
    lines = ["Recall, memory and speed in one run: parag (`load(mmap=True)`), raw FAISS on the same compressed "
             "index (the factory string; FAISS's `IndexRefineFlat` re-ranks the same candidates; its resident memory "
             "is `read_index` of the compressed index alone, without the float32 vectors that re-ranking reads) "
             "and usearch's HNSW with f16 / i8 "
             "storage at the same M, ef_construction, ef_search (`connectivity`, `expansion_add`, "
             "`expansion_search`; `restore(view=True)`, memory-mapped). Resident: anonymous + file-backed bytes per "
             "vector of a fresh process after loading and running every query. Batch QPS: all queries in one call; "
             "single p50: one call per query. parag / raw batch time: with the results parag returns by default "
             "(metadata and documents decoded), and with `include=()` (ids and scores, what raw FAISS returns: the "
             "like-for-like search time). `-`: not measured in that run."]
    if why := raw.get("usearch_missing"):
        lines += ["", f"**usearch rows absent**: {why}."]
    return lines


def parameters(configs: list[dict]) -> str:
    """The index parameters of the run's configurations, once per index kind."""
    shown = {}
    for r in configs:
        own = {k: v for k, v in r["params"].items() if k in ("M", "ef_construction", "ef_search", "nlist", "nprobe")}
        shown.setdefault(r["index_type"], ", ".join(f"{k} {v}" for k, v in own.items()))
    return "; ".join(f"{kind} {values}" for kind, values in shown.items() if values) or "none"


def runs(results: Path) -> list[tuple[Path, dict]]:
    """The storage runs beside each other in a results directory: ``storage`` (the real data)
    then the synthetic ``storage-*`` sections."""
    dirs = [results / "storage", *sorted(results.glob("storage-*/"))]
    return [(d, read_json(d / "results.json")) for d in dirs if (d / "results.json").exists()]


def section(results: Path, out: Path) -> list[str]:
    """docs/benchmarks.md's trade-off section (empty when no storage run is in ``results``), with
    the plot where the storage suite drew it in ``out``."""
    found = runs(results)
    if not found:
        return []
    lines = ["## Recall, memory and speed: compressed storage", ""]
    if (out / PLOT).exists():
        lines += [f"![recall@10 against resident memory and batch QPS]({PLOT})", ""]
    lines += [*notes(found[0][1]), "",
             "Every storage x index, and its raw results and memory detail: [bench-storage.md](bench-storage.md).", ""]
    if len(found) > 1:
        lines += ["The synthetic runs measure subsets: the full matrix at 1M does not fit in one run, the HNSW "
                  "builds being the cost. synthetic-1m is the one `./run bench` runs (benchmarks/run.py's "
                  "`STORAGE_1M`); any other is a run published by hand with `bench_storage.py --section`, its commit "
                  "named in bench-storage.md. HNSW there is built with the ef_construction named (usearch's "
                  "`expansion_add` the same): its memory is that of any graph with the same M, its recall lower than "
                  "a well-built graph's.", ""]
    for _, raw in found:
        lines += [f"### {raw['dataset']} ({raw['n']:,} x {raw['d']})", "",
                  f"Parameters {parameters(raw['configs'])}; {raw['n_queries']:,} queries.", "", *table(raw), ""]
    return lines


def plot(results: Path, file: Path) -> bool:
    """Recall@10 against resident bytes per vector and against batch QPS, one row of panels per
    storage run in ``results``. False where matplotlib is not installed or there is no run."""
    found = runs(results)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        return False
    if not found:
        return False
    fig, axes = plt.subplots(len(found), 2, figsize=(12, 5 * len(found)), squeeze=False)
    style = {"parag": ("o", "tab:blue"), "raw FAISS": ("s", "tab:orange"), "usearch": ("*", "tab:green")}
    for (ax_mem, ax_qps), (_, raw) in zip(axes, found):
        for p in points(raw):
            shown = [("parag" if p["system"] == "parag" else "usearch", p)]
            if p["raw"] and p["raw"]["recall"] is not None:
                shown.append(("raw FAISS", {**p, **p["raw"]}))
            for system, q in shown:
                marker, colour = style[system]
                for ax, x in ((ax_mem, q["bytes"]), (ax_qps, q["qps"])):
                    if x is not None:
                        ax.scatter(x, q["recall"], marker=marker, color=colour, s=60 if marker == "*" else 30,
                                   label=system, facecolors="none" if system == "raw FAISS" else colour)
                        if system != "raw FAISS":
                            ax.annotate(q["label"], (x, q["recall"]), textcoords="offset points", xytext=(3, 3),
                                        fontsize=6)
        for ax, xlabel in ((ax_mem, "resident bytes per vector after the queries (log)"),
                           (ax_qps, "batch queries per second (log)")):
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
            low, high = ax.get_xlim()
            digits = "123456789" if high / low < 10 else "25"  # a narrow range: every minor tick labelled
            ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _, d=digits: f"{v:,.0f}" if f"{v:.0f}"[0] in d else ""))
            ax.set_xlabel(xlabel)
            ax.set_ylabel("recall@10")
            ax.set_title(f"{raw['dataset']} ({raw['n']:,} x {raw['d']})")
            ax.grid(True, which="both", alpha=0.3)
            handles, labels = ax.get_legend_handles_labels()
            unique = dict(zip(labels, handles))
            ax.legend(unique.values(), unique.keys(), fontsize=8)
    fig.tight_layout()
    fig.savefig(file, dpi=100)
    plt.close(fig)
    return True
