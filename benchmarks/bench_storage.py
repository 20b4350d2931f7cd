"""Compressed storage: recall, memory and speed of every storage x index kind, with and
without re-ranking, against raw FAISS on the very same compressed index.

Usage::

    flock /tmp/parag-bench.lock .venv/bin/python benchmarks/bench_storage.py      # published: docs/
    flock /tmp/parag-bench.lock .venv/bin/python benchmarks/bench_storage.py --quick   # 20,000 vectors
    flock /tmp/parag-bench.lock .venv/bin/python benchmarks/bench_storage.py --synthetic 200000 \\
        --configs HNSW:float32,HNSW:sq8,HNSW:pq                    # clustered synthetic data
    .venv/bin/python benchmarks/bench_storage.py --report-only    # rewrite the report from the raw JSON

``./run bench`` runs it as its ``storage`` suite (and, with its 1M run, the synthetic-1m subset
that benchmarks/run.py's ``STORAGE_1M`` names, as a ``--section``). Only the default run
(debian-minilm, every configuration) is published to ``docs/bench-storage.md``; any run that
measures less writes to ``benchmarks/results/quick/`` unless given ``--out`` / ``--results``.

For each configuration one store is built at default parameters (HNSW M 32, ef_search 64;
IVFFlat nlist 256, nprobe 64) and measured:

- ``recall``: recall@10 of a batch search against the dataset's ground truth, at the
  storage's default ``rerank`` and at ``rerank=1`` (the compressed index's own top 10,
  re-scored exactly);
- ``raw_recall``, ``batch_s``, ``raw_batch_s``, ``batch_ratio``, ``single_ms``,
  ``raw_single_ms`` (each per ``rerank``): recall, batch time and single-query p50 of
  ``store.search`` and of raw FAISS on the same compressed index (``faiss.IndexRefineFlat``
  around the store's own compressed index with ``k_factor = rerank``: FAISS's re-ranking of the
  same candidates; for float32 the index itself), batch ratio the median of interleaved pairs
  (bench_tradeoff.speed);
- ``bare_batch_s``, ``bare_ratio``: the same for ``store.search(..., include=())``, which
  returns what raw FAISS does (ids and scores; no metadata or documents decoded), interleaved
  with the two above: the like-for-like search time;
- ``codes_bytes``: the compressed index alone per vector (what raw FAISS saves for the same
  factory string), ``file_bytes``: every file of the saved store per vector;
- ``rss``: in a fresh process, resident memory per vector after loading and after running
  every query: the store with ``load`` and with ``load(mmap=True)``, and raw FAISS's
  ``read_index`` of the same compressed index, plain and with ``IO_FLAG_MMAP_IFC``
  (anonymous memory, owned by the process, and file-backed pages, the page cache of mapped
  files, which the kernel can drop and re-read).

- ``usearch``: usearch's HNSW with f16 and i8 storage at the same M / ef_construction /
  ef_search (bench_tradeoff.measure_usearch; left out, with the reason, where usearch is not
  installed).

The report ends with the recall-memory-speed table (bench_tradeoff.table), and the run writes
its plot, ``bench-storage-tradeoff.png``, beside the report; ``docs/benchmarks.md`` shows both.

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
from functools import partial
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_data  # noqa: E402
import bench_tradeoff  # noqa: E402
from bench_provenance import PUBLISHED_RESULTS, QUICK_RESULTS, ROOT, describe, need, provenance, read_json, write_json  # noqa: E402
from bench_report import replace_block  # noqa: E402
from bench_systems import HNSW, ivf_params  # noqa: E402

from parag import FAISSVectorStore  # noqa: E402
from parag.vectorstore.kinds.hnsw import default_ef_search  # noqa: E402
from parag.vectorstore.kinds.rerank import Reranked  # noqa: E402
from parag.vectorstore.kinds.storage import RERANK_DEFAULT  # noqa: E402

CONFIGS = [("Flat", "float32"), ("Flat", "float16"), ("Flat", "sq8"),
           ("IVFFlat", "float32"), ("IVFFlat", "float16"), ("IVFFlat", "sq8"), ("IVFFlat", "pq"),
           ("HNSW", "float32"), ("HNSW", "float16"), ("HNSW", "sq8"), ("HNSW", "pq")]
QUICK_CONFIGS = [("Flat", "sq8"), ("HNSW", "float32"), ("HNSW", "sq8")]
N_QUERIES = 500
N_SINGLE = 200
# Batch timings (medians of per-pair ratios): 3 pairs left Flat's 0.6 s batches +-8% apart on this
# shared 2-core machine; 7 cost seconds (the builds and memory runs are the suite's time).
REPEATS = 7
MODES = ("load", "mmap", "raw", "raw-mmap")

MEMORY = """
import json, sys
import faiss
import numpy as np
from parag import FAISSVectorStore
def rss():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {k: 1024 * int(fields[k].split()[0]) for k in ("RssAnon", "RssFile")}
path, queries, mode = sys.argv[1], np.load(sys.argv[2]), sys.argv[3]
before = rss()
if mode.startswith("raw"):
    index = faiss.read_index(path, faiss.IO_FLAG_MMAP_IFC if mode == "raw-mmap" else 0)
    search = lambda: index.search(queries, 10)
elif mode.startswith("usearch"):
    from usearch.index import Index
    index = Index.restore(path, view=mode == "usearch-view")
    search = lambda: index.search(queries, 10)
else:
    store = FAISSVectorStore.load(path, mmap=mode == "mmap")  # verified, as a plain load is
    search = lambda: store.search(queries, k=10)
loaded = rss()
search()
searched = rss()
print(json.dumps({"loaded": {k: loaded[k] - before[k] for k in before}, "searched": {k: searched[k] - before[k] for k in before}}))
"""


def memory(path: Path, queries: Path, mode: str) -> dict:
    done = subprocess.run([sys.executable, "-c", MEMORY, str(path), str(queries), mode],
                          capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(done.stdout)


def factory_string(index_type: str, storage: str, params: dict) -> str:
    """The FAISS factory string of the compressed index parag builds for a configuration."""
    code = {"float32": "Flat", "float16": "SQfp16", "sq8": "SQ8", "pq": f"PQ{params.get('pq_m')}x8"}[storage]
    if index_type == "HNSW":
        return f"HNSW{params['M']}" if storage == "float32" else f"HNSW{params['M']}_{code}" if storage == "pq" else f"HNSW{params['M']},{code}"
    if index_type == "IVFFlat":
        return f"IVF{params['nlist']},{code}"
    return code


def hnsw_params(n: int, ef_construction: int | None = None) -> dict:
    """HNSW at the systems benchmark's M and ef_construction (or the one given: a memory run at 1M
    may build a cheaper graph of the same size), with the ef_search parag chooses for the size."""
    return {**HNSW, "ef_search": default_ef_search(n)} | ({"ef_construction": ef_construction} if ef_construction else {})


def measure(data: bench_data.Dataset, index_type: str, storage: str, repeats: int, n_single: int, tmp: Path,
            ef_construction: int | None = None) -> dict:
    params = hnsw_params(data.n, ef_construction) if index_type == "HNSW" else ivf_params(data.n) if index_type == "IVFFlat" else {}
    metric = "L2" if (index_type, storage) == ("HNSW", "pq") else data.metric
    store = FAISSVectorStore(data.d, index_type, metric, storage=storage, **params)
    start = time.perf_counter()
    store.add(data.base)
    record: dict = {"index_type": index_type, "storage": storage, "metric": metric, "params": store.params,
                    "factory": factory_string(index_type, storage, store.params),
                    "build_s": time.perf_counter() - start}
    q, gt = data.queries, data.gt[:, :10]
    index = store.faiss_index
    compressed = isinstance(index, Reranked)  # trained compressed storage (a small run may not train pq)
    base = index.base if compressed else index
    # Raw FAISS on the same compressed index: FAISS's own re-ranking of its candidates.
    raw = faiss.IndexRefineFlat(base, faiss.swig_ptr(index.vectors.array)) if compressed else base
    # Per rerank (1 and the storage's default): recall of parag and of raw FAISS, and their speed.
    for rerank in [1, RERANK_DEFAULT[storage]] if storage != "float32" else [1]:
        raw_params = faiss.IndexRefineSearchParameters(k_factor=rerank) if compressed else None
        kw = {} if storage == "float32" else {"rerank": rerank}
        figures = {"recall": bench_tradeoff.recall(store.search(q, k=10, **kw).ids, gt),
                   "raw_recall": bench_tradeoff.recall(raw.search(q, 10, params=raw_params)[1], gt),
                   **bench_tradeoff.speed(partial(store.search, k=10, **kw), partial(raw.search, k=10, params=raw_params),
                                          q, repeats, n_single, partial(store.search, k=10, include=(), **kw))}
        for name, value in figures.items():
            record.setdefault(name, {})[str(rerank)] = value
    path, raw_path = tmp / f"{index_type}-{storage}", tmp / f"{index_type}-{storage}.faiss"
    store.save(path)
    faiss.write_index(base, str(raw_path))
    del raw, base, index, store  # the memory of the process below is its own anyway
    record["file_bytes"] = sum(p.stat().st_size for p in path.iterdir() if p.name != "manifest.json") / data.n
    record["index_bytes"] = next(path.glob("index*")).stat().st_size / data.n
    record["codes_bytes"] = raw_path.stat().st_size / data.n
    record["rss"] = {mode: memory(raw_path if mode.startswith("raw") else path, tmp / "queries.npy", mode)
                     for mode in MODES}
    return record


def _per_vector(mem: dict, mode: str, when: str, n: int) -> float | None:
    """Anonymous + file-backed resident bytes per vector (None: not measured in that run)."""
    if mode not in mem:
        return None
    return (mem[mode][when]["RssAnon"] + mem[mode][when]["RssFile"]) / n


def _cell(value: float | None, fmt: str = ".0f") -> str:
    return "-" if value is None else format(value, fmt)


def report(raw: dict, results: Path) -> str:
    """docs/bench-storage.md from the raw results ``raw`` (read from ``results``) alone; for a
    ``storage`` results directory, with the synthetic runs beside it (``storage-*``) after it."""
    return one_report(raw, results) + ("".join(sections(results.parent)) if results.name == "storage" else "")


def one_report(raw: dict, results: Path) -> str:
    """The report of one run's raw results."""
    n = need(raw, "n", "results.json")
    configs = need(raw, "configs", "results.json")
    float32 = {r["index_type"]: r["codes_bytes"] for r in configs if r["storage"] == "float32"}
    rows = []
    for r in configs:
        mem = r["rss"]
        for key, recall in r["recall"].items():
            timed = key in r["batch_s"]
            rows.append(
                f"| {r['index_type']} | {r['storage']} | {'-' if r['storage'] == 'float32' else key} | {recall:.3f} | "
                f"{_cell(r['batch_s'][key] * 1000 if timed else None)} | "
                f"{_cell(r['batch_ratio'][key] if timed else None, '.3f')} | "
                f"{_cell(r.get('bare_ratio', {}).get(key), '.3f')} | {r['codes_bytes']:.0f} | "
                f"{_cell(r['codes_bytes'] / float32[r['index_type']] if r['index_type'] in float32 else None, '.2f')} | "
                f"{r.get('file_bytes', r['index_bytes']):.0f} | {mem['load']['loaded']['RssAnon'] / n:.0f} | "
                f"{mem['mmap']['searched']['RssAnon'] / n:.0f} | {mem['mmap']['searched']['RssFile'] / n:.0f} |"
            )
    lines = [
        "# Compressed storage: recall, memory and speed",
        "",
        f"{raw['dataset']} ({n:,} x {raw['d']}, {raw['n_queries']:,} queries, recall@10 against its ground truth), "
        f"parameters {bench_tradeoff.parameters(configs)}. Generated by `benchmarks/bench_storage.py` from its raw results alone.",
        "",
        *describe(raw["provenance"], results),
        "",
        "Columns: `rerank` (candidates re-scored exactly = rerank x k; `-`: float32, already exact); batch time "
        "of all queries at once and its ratio to raw FAISS searching the same compressed index with the same "
        "parameters (FAISS's `IndexRefineFlat` around it; `-`: not timed), with the results parag returns by "
        "default (ids, scores, metadata and documents decoded) and with what raw FAISS returns (ids and scores: "
        "`include=()`, the like-for-like figure; `-`: not measured in that run); "
        "bytes per vector of the compressed index alone (codes + graph or lists) and its ratio to the same "
        "index kind in float32, of the saved store's files (compressed index and, for compressed storage, the "
        "float32 vectors), of the process's own memory after a plain `load`, and after `load(mmap=True)` "
        "and every query: anonymous memory and file-backed pages (page cache of the mapped files, which the "
        "kernel may drop).",
        "",
        "| index | storage | rerank | recall@10 | batch ms | parag / raw FAISS | ids and scores: parag / raw FAISS "
        "| compressed B/vector | compressed / float32 | files B/vector "
        "| RAM B/vector (load) | anon B/vector (mmap) | file-backed B/vector (mmap) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        *ram_table(configs, n),
        "## Recall, memory and speed",
        "",
        *bench_tradeoff.notes(raw),
        "",
        *bench_tradeoff.table(raw),
        "",
    ]
    return "\n".join(lines)


def ram_table(configs: list[dict], n: int) -> list[str]:
    """Resident memory per vector (anonymous + file-backed, after every query) of parag and of
    raw FAISS holding the same compressed index, and its ratio to HNSW float32 loaded whole."""
    if not any("raw" in r["rss"] for r in configs):
        return []
    hnsw32 = next((r for r in configs if (r["index_type"], r["storage"]) == ("HNSW", "float32")), None)
    reference = None if hnsw32 is None else _per_vector(hnsw32["rss"], "load", "searched", n)
    rows = []
    for r in configs:
        figures = [_per_vector(r["rss"], mode, "searched", n) for mode in MODES]
        ratio = None if reference is None or figures[1] is None else figures[1] / reference
        rows.append(f"| {r['index_type']} | {r['storage']} | `{r.get('factory', '-')}` | "
                    + " | ".join(_cell(f) for f in figures) + f" | {_cell(ratio, '.2f')} |")
    return [
        "## RAM per vector",
        "",
        "Resident memory per vector (anonymous + file-backed) of a fresh process after loading and running "
        "every query: parag with `load` and `load(mmap=True)`, and raw FAISS (`read_index`, plain and with "
        "`IO_FLAG_MMAP_IFC`) holding the same compressed index alone (the factory string it amounts to; raw FAISS "
        "keeps no float32 vectors and re-ranks nothing). The last column is parag mapped over parag HNSW float32 "
        "loaded whole.",
        "",
        "| index | storage | FAISS factory | parag load | parag mmap | raw FAISS | raw FAISS mmap "
        "| parag mmap / HNSW float32 load |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


README_ROWS = [("HNSW", "float32"), ("HNSW", "sq8"), ("HNSW", "pq"),
               ("IVFFlat", "float32"), ("IVFFlat", "sq8"), ("IVFFlat", "pq")]


def readme_block(raw: dict) -> list[str]:
    """The README's ``storage figures`` block: the published run's headline rows, at each
    storage's default ``rerank`` (figures as the report prints them)."""
    n, configs = raw["n"], {(r["index_type"], r["storage"]): r for r in raw["configs"]}
    rows = []
    for key in [k for k in README_ROWS if k in configs]:
        r = configs[key]
        rerank = list(r["recall"])[-1]
        pq = f" ({r['params']['pq_m']} bytes)" if r["storage"] == "pq" else ""
        rows.append(f"| {key[0]}, {key[1]}{pq} | {'-' if key[1] == 'float32' else rerank} | {r['recall'][rerank]:.3f} | "
                    f"{r['codes_bytes']:.0f} | {r['rss']['load']['loaded']['RssAnon'] / n:.0f} | "
                    f"{r['rss']['mmap']['searched']['RssAnon'] / n:.0f} | "
                    f"{_cell(r.get('bare_ratio', {}).get(rerank), '.2f')} | {_cell(r['batch_ratio'].get(rerank), '.2f')} |")
    return [
        f"Measured on {raw['dataset']} ({n:,} × {raw['d']}, default parameters; every storage × index in",
        "[docs/bench-storage.md](docs/bench-storage.md), generated with it). Batch time: all "
        f"{raw['n_queries']:,} queries in one call, against raw FAISS on the same compressed index re-ranking "
        "the same candidates (`IndexRefineFlat`), returning ids and scores (`include=()`) and with every hit's "
        "metadata and document decoded (the default):",
        "",
        "| index, storage | rerank | recall@10 | compressed index B/vector | RAM B/vector after `load` "
        "| anon RAM B/vector after `load(mmap=True)` and searches | batch time / raw FAISS, ids and scores "
        "| the same, metadata decoded |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
    ]


def synthetic(n: int, n_queries: int = N_QUERIES) -> bench_data.Dataset:
    """Unit vectors in Gaussian clusters around 1,000 centres (bench_data.clustered), inner product."""
    base = bench_data.clustered(n, 384, seed=1)
    queries = bench_data.clustered(n_queries, 384, seed=2)
    return bench_data.Dataset(f"synthetic-{n // 1000}k", "IP", base, queries,
                              bench_data.exact_neighbours(base, queries, "IP", 10), True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="debian-minilm")
    parser.add_argument("--synthetic", type=int, metavar="N", help="clustered synthetic data of N vectors instead")
    parser.add_argument("--n", "--n-base", dest="n_base", type=int, help="keep only the first N base vectors")
    parser.add_argument("--quick", action="store_true", help="20,000 vectors, 1 repeat, 3 configurations")
    parser.add_argument("--configs", help="comma-separated index:storage pairs (default: all)")
    parser.add_argument("--usearch", default=",".join(bench_tradeoff.USEARCH_DTYPES),
                        help="usearch HNSW storages, comma-separated (default f16,i8; empty: none)")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--single", type=int, help=f"single queries timed per configuration (default {N_SINGLE}, quick 50)")
    parser.add_argument("--queries", type=int, default=N_QUERIES, help="queries (recall, speed, memory)")
    parser.add_argument("--ef-construction", type=int, help="HNSW ef_construction (default: the systems benchmark's)")
    parser.add_argument("--section", action="store_true",
                        help="a run on other data as a section of bench-storage.md (raw results in "
                             "storage-<dataset>/ beside the results' storage/; default docs/bench-results/)")
    parser.add_argument("--results", type=Path, help="where results.json goes")
    parser.add_argument("--out", type=Path, help="where bench-storage.md goes")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    # Only the default run is published (docs/); a run that measures less writes elsewhere.
    partial = args.quick or any(v is not None for v in (args.synthetic, args.n_base, args.configs, args.repeats,
                                                         args.ef_construction)) \
        or args.dataset != "debian-minilm"
    results = args.results or (QUICK_RESULTS if partial else PUBLISHED_RESULTS) / "storage"
    out = args.out or (QUICK_RESULTS if partial else ROOT / "docs")
    if args.section:
        if not (args.synthetic or args.dataset != "debian-minilm"):
            parser.error("--section publishes a run on other data (--synthetic or --dataset)")
        name = f"synthetic-{args.synthetic // 1000}k" if args.synthetic else args.dataset
        results = (args.results.parent if args.results else PUBLISHED_RESULTS) / f"storage-{name}"
        out = args.out or ROOT / "docs"
    if not args.report_only:
        configs = [tuple(c.split(":")) for c in args.configs.split(",")] if args.configs else QUICK_CONFIGS if args.quick else CONFIGS
        n_base = args.n_base or (20_000 if args.quick else None)
        if not args.synthetic and args.dataset not in bench_data.available():  # a machine without ../shared/data
            args.synthetic = n_base or 100_000
        data = synthetic(args.synthetic, args.queries) if args.synthetic else bench_data.load(args.dataset, args.queries, n_base=n_base)
        write_json(results / "results.json", run(data, configs, [d for d in args.usearch.split(",") if d],
                                                 args.repeats or (1 if args.quick else REPEATS), args.single or (50 if args.quick else N_SINGLE),
                                                 args.ef_construction))
    out.mkdir(parents=True, exist_ok=True)
    if out.resolve() == (ROOT / "docs").resolve() and results.parent.resolve() == PUBLISHED_RESULTS.resolve():
        # the published report: the README quotes it
        results = PUBLISHED_RESULTS / "storage"
        raw = read_json(results / "results.json")
        (out / "bench-storage.md").write_text(report(raw, results))
        replace_block(ROOT / "README.md", "storage figures", readme_block(raw))
    else:
        results = results.parent / "storage" if (results.parent / "storage" / "results.json").exists() else results
        (out / "bench-storage.md").write_text(report(read_json(results / "results.json"), results))
    bench_tradeoff.plot(results.parent, out / bench_tradeoff.PLOT)
    print((out / "bench-storage.md").read_text())


def run(data: bench_data.Dataset, configs: list[tuple[str, str]], usearch: list[str], repeats: int, n_single: int,
        ef_construction: int | None) -> dict:
    """Measure every configuration, then usearch with each of ``usearch``'s storages: the raw results."""
    prov, measured, timed = provenance(), [], []
    missing = bench_tradeoff.usearch_missing() if usearch else None
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "queries.npy", data.queries)
        for index_type, storage in configs:
            start = time.perf_counter()
            measured.append(measure(data, index_type, storage, repeats, n_single, Path(tmp), ef_construction))
            print(json.dumps(measured[-1]), f"\n{index_type} {storage}: {time.perf_counter() - start:.0f} s", flush=True)
        for dtype in [] if missing else usearch:
            start = time.perf_counter()
            timed.append(bench_tradeoff.measure_usearch(
                data, dtype, hnsw_params(data.n, ef_construction), repeats, n_single, Path(tmp) / f"usearch-{dtype}",
                lambda path, mode: memory(path, Path(tmp) / "queries.npy", mode)))
            print(json.dumps(timed[-1]), f"\nusearch {dtype}: {time.perf_counter() - start:.0f} s", flush=True)
    return {"dataset": data.name, "n": data.n, "d": data.d, "n_queries": len(data.queries), "provenance": prov,
            "configs": measured, "usearch": timed, **({"usearch_missing": missing} if missing else {})}


def sections(parent: Path) -> list[str]:
    """The synthetic runs (``--section``) in ``parent``, each a section of the report."""
    out = []
    for results in sorted(parent.glob("storage-*/")):
        text = one_report(read_json(results / "results.json"), results)
        out.append("\n" + text.replace("\n## ", "\n### ").replace("# Compressed storage: recall, memory and speed",
                                                                  f"## {results.name.removeprefix('storage-')}", 1))
    return out


if __name__ == "__main__":
    main()
