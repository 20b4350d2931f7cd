"""parag against raw FAISS, hnswlib, LangChain, LlamaIndex and Chroma: the one benchmark command.

    ./run bench                  the published run (~40 min on 2 cores): every suite; writes
                                 docs/benchmarks.md, docs/bench-filters.md, docs/bench-persistence.md, docs/bench-storage.md
                                 and docs/bench-*.png, and their raw results in docs/bench-results/
                                 (tracked: commit them with the reports)
    ./run bench --no-storage-1m  the same, ~8 min shorter: without the storage suite's synthetic-1m subset
    ./run bench --quick          a few minutes: small query counts and sizes, no 1M run; reports and
                                 raw results in benchmarks/results/quick/ (docs/ is left alone)
    ./run bench --datasets siftsmall,synthetic-100k --systems parag,faiss --repeats 1
                                 a partial run: to benchmarks/results/<date>/ unless --out/--results
    ./run bench --report-only docs/bench-results     rewrite the reports from saved raw results
    ./run bench --systems milvus --milvus-uri https://my-cluster:19530   parag on your Milvus
                                 (token from $MILVUS_TOKEN; collections parag_bench_*, dropped after)
    ./run bench --scale 10m      opt-in: 10M x 384 IVFFlat + sq8 with exact re-ranking, loaded with
                                 mmap=True (benchmarks/bench_scale.py, report docs/bench-scale.md; about
                                 15 minutes on 2 cores; --index HNSW --param M=16: 80 min). Resumable:
                                 checkpoints every --checkpoint-every vectors in
                                 benchmarks/results/scale-work/; the same command again continues the
                                 build (or, once built, re-measures); --fresh starts over

Suites (``--suites``, default all): ``systems`` (this file: every system on every dataset,
report benchmarks.md), ``filters`` (bench_filters.py: filtered search against raw FAISS on the
same index, bench-filters.md), ``persistence`` (bench_persistence.py: save/load against raw
FAISS + orjson, bench-persistence.md), ``storage`` (bench_storage.py: every storage x index kind
on debian-minilm, recall and RAM per vector against raw FAISS on the same compressed index,
bench-storage.md; with the 1M run, also a subset on synthetic-1m: IVFFlat float32, sq8 and pq, HNSW
sq8 and usearch i8 on a cheap graph of the same size: see STORAGE_1M), whose recall, memory
and speed table and plot (bench-storage-tradeoff.png) docs/benchmarks.md also shows. Every report is
generated from the raw results alone
and names the commit that produced them; a results directory is emptied of a previous run's
files before a new run writes to it.

Each (dataset, system, index type, repeat) runs in a subprocess of its own
(``bench_worker.py``), one at a time, so memory figures are clean and nothing runs
concurrently. Figures are medians over ``--repeats`` runs; every parag / raw FAISS ratio is
computed within one repeat (both ran back to back, in alternating order) and then the
median of the ratios is quoted. Systems whose package is not installed are skipped and
listed as such (``pip install -e '.[bench]'`` installs them all).

Milvus (``--milvus-on``, default siftsmall and debian-minilm, HNSW, ``--milvus-repeats``):
parag's MilvusVectorStore on a Milvus server that this script starts on 127.0.0.1 after the
other jobs (PyPI's ``milvus`` 2.3.5 standalone, started and stopped by tests/milvus_server.py, the tests'
launcher) or that ``--milvus-uri`` names. Where no server can start or answer, the run goes on
without it and the report says "unavailable" with the reason.

Datasets: debian-minilm, siftsmall, fashion-mnist (from ../shared/data, each with its
ground truth, when present), synthetic-100k and synthetic-1m (generated clustered data,
unit vectors around 1,000 centres, inner product; cached in benchmarks/results/data/), tiny.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_data  # noqa: E402
import bench_report  # noqa: E402
from bench_provenance import PUBLISHED_RESULTS, QUICK_RESULTS, provenance, src_state  # noqa: E402
from bench_systems import INDEX_TYPES, MILVUS_TOKEN, MILVUS_URI, MODULES  # noqa: E402

ROOT = HERE.parent
MAIN_DATASET = "debian-minilm"  # competitors, sweeps: here
SWEEPS = {"ef_search": [10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384], "nprobe": [1, 2, 4, 8, 16, 32, 64, 128]}
ALL_SYSTEMS = list(INDEX_TYPES)
SUITES = {"filters": "bench_filters.py", "persistence": "bench_persistence.py", "storage": "bench_storage.py"}  # besides "systems"
# The storage suite at 1M (with --scale, on the systems suite's synthetic-1m): the full matrix does
# not fit in one run. Measured on the shared machine (14:36-14:50 UTC, 100 queries, one repeat):
# IVFFlat float32 / sq8 / pq 38 / 51 / 46 s, HNSW float32 / sq8 at ef_construction 8: 140 / 243 s,
# usearch f16 / i8 at the same settings 134 / 104 s (500 queries: IVFFlat float32 alone 300 s, a batch
# scanning a quarter of 1.5 GB per query; 7 repeats of the 100-query batch: ~1 min more). So: IVFFlat float32 / sq8 / pq; HNSW sq8 and usearch i8 (the
# 8-bit graphs, same M / ef) on a graph built with ef_construction 8: the size and memory of a good
# graph, a much lower recall (memory, not recall, is their meaning at 1M). Left out at 1M, for time:
# Flat (memory: its code size, as at 59k; time: linear in n), float16, HNSW float32 and pq, usearch
# f16 (HNSW float32 and sq8 at 1M: the 1,000-query memory run, storage-synthetic-1000k).
STORAGE_1M = ["--dataset", "synthetic-1m", "--section", "--configs", "IVFFlat:float32,IVFFlat:sq8,IVFFlat:pq,HNSW:sq8",
              "--usearch", "i8", "--ef-construction", "8", "--repeats", "7", "--single", "50", "--queries", "100"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small query counts, 1 repeat, no 1M run, output to benchmarks/results/quick")
    p.add_argument("--suites", default="systems,filters,persistence,storage", help="comma-separated, from systems,filters,persistence,storage")
    p.add_argument("--datasets", help="comma-separated (default: the real sets present, and synthetic-100k)")
    p.add_argument("--systems", help=f"comma-separated, from {','.join(ALL_SYSTEMS)} (default: all)")
    p.add_argument("--competitors-on", default=MAIN_DATASET, help="datasets (comma-separated) that the competitors also run on")
    p.add_argument("--repeats", type=int, help="runs per job; medians are quoted (default 3, quick 1)")
    p.add_argument("--scale", action=argparse.BooleanOptionalAction, default=None, help="the 1M x 384 HNSW run (default: on, off with --quick)")
    p.add_argument("--scale-systems", default="parag", help="systems for the 1M run (default parag)")
    p.add_argument("--storage-1m", action=argparse.BooleanOptionalAction, default=None,
                   help="the storage suite's synthetic-1m subset (STORAGE_1M, ~8 min on 2 cores; default: with the 1M run); "
                        "--no-storage-1m still publishes, without that section")
    p.add_argument("--queries", type=int, help="batch queries per dataset (default 1000, quick 100)")
    p.add_argument("--milvus-on", default="siftsmall,debian-minilm", help="datasets (comma-separated) that Milvus runs on")
    p.add_argument("--milvus-repeats", type=int, default=1, help="runs per Milvus job (default 1: each takes a minute)")
    p.add_argument("--milvus-uri", help="benchmark this Milvus server (token from $MILVUS_TOKEN) instead of starting one")
    p.add_argument("--n-base", type=int, help="keep only the first N base vectors of every dataset, and use N vectors in the other suites (smoke tests)")
    p.add_argument("--out", type=Path, help="where the reports and plots go (default docs/; quick or partial runs: the results dir)")
    p.add_argument("--results", type=Path, help="where raw JSON results go (default docs/bench-results/; quick: "
                   "benchmarks/results/quick/; partial runs: benchmarks/results/<date>/)")
    p.add_argument("--report-only", type=Path, metavar="RESULTS", help="only rewrite the reports from a results dir")
    args = p.parse_args(argv)
    # Only the full default run is published (docs/); any run that measures less writes elsewhere.
    partial = args.quick or any(v is not None for v in (args.datasets, args.systems, args.repeats, args.scale,
                                                        args.queries, args.n_base, args.milvus_uri)) or args.suites != p.get_default("suites") \
        or (args.milvus_on, args.milvus_repeats) != (p.get_default("milvus_on"), p.get_default("milvus_repeats"))
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%M%S")
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.queries = args.queries or (100 if args.quick else 1000)
    args.scale = (not args.quick) if args.scale is None else args.scale
    args.storage_1m = args.scale if args.storage_1m is None else args.storage_1m
    default_results = QUICK_RESULTS if args.quick else HERE / "results" / stamp if partial else PUBLISHED_RESULTS
    args.results = args.results or args.report_only or default_results
    args.out = args.out or (args.results if partial else ROOT / "docs")
    args.suites = args.suites.split(",")
    args.systems = args.systems.split(",") if args.systems else ALL_SYSTEMS
    for name, chosen, valid in (("suites", args.suites, ["systems", *SUITES]), ("systems", args.systems, ALL_SYSTEMS)):
        if set(chosen) - set(valid):
            p.error(f"unknown {name} {sorted(set(chosen) - set(valid))}; choose from {valid}")
    default_sets = [d for d in bench_data.available() if d not in ("synthetic-1m", "tiny")]
    args.datasets = args.datasets.split(",") if args.datasets else default_sets
    args.competitors_on = args.competitors_on.split(",")
    args.milvus_on = args.milvus_on.split(",")
    return args


def jobs_for(args: argparse.Namespace) -> list[dict]:
    """Every job, in run order: per dataset, per repeat, parag and raw FAISS alternating."""
    small = args.quick
    common = {"k": 10, "n_queries": args.queries, "n_base": args.n_base, "batch_repeats": 1 if small else 3,
              "n_single": 50 if small else 300, "n_filtered": 20 if small else 100}
    jobs = []
    for dataset in args.datasets:
        for repeat in range(args.repeats):
            pairs = [("parag", "faiss"), ("faiss", "parag")][repeat % 2]
            for index_type in ("Flat", "IVFFlat", "HNSW"):
                for system in pairs:
                    if system in args.systems:
                        jobs.append(_job(common, dataset, system, index_type, repeat))
            if dataset in args.competitors_on:
                for system in ("hnswlib", "langchain", "parag-langchain", "llamaindex", "chroma"):
                    if system in args.systems:
                        jobs.append(_job(common, dataset, system, INDEX_TYPES[system][0], repeat))
            if dataset in args.milvus_on and "milvus" in args.systems and repeat < args.milvus_repeats:
                jobs.append(_job(common, dataset, "milvus", INDEX_TYPES["milvus"][0], repeat))
    if args.scale:
        scale = {**common, "n_queries": 1000, "n_single": 1000, "n_filtered": 100, "batch_repeats": 1, "n_base": None}
        for system in args.scale_systems.split(","):
            jobs.append({**_job(scale, "synthetic-1m", system, "HNSW", 0), "sweep": [], "tune": False})
    return jobs


def _job(common: dict, dataset: str, system: str, index_type: str, repeat: int) -> dict:
    sweep = SWEEPS.get({"HNSW": "ef_search", "IVFFlat": "nprobe"}.get(index_type, ""), [])
    on_main = dataset in (MAIN_DATASET, "tiny") and system in ("parag", "faiss", "hnswlib")
    return {**common, "dataset": dataset, "system": system, "index_type": index_type, "repeat": repeat,
            "sweep": sweep if on_main else [], "tune": system == "parag"}


def installed(system: str) -> bool:
    try:
        return importlib.util.find_spec(MODULES[system]) is not None
    except ModuleNotFoundError:
        return False


def run_job(job: dict, results: Path, timeout: float) -> dict:
    name = f"{job['dataset']}__{job['system']}__{job['index_type']}__r{job['repeat']}"
    spec, out = results / f"{name}.job.json", results / f"{name}.json"
    spec.write_text(json.dumps({**job, "tmp_dir": str(results)}))
    try:
        proc = subprocess.run([sys.executable, str(HERE / "bench_worker.py"), str(spec), str(out)],
                              timeout=timeout, capture_output=True, text=True)
        result = json.loads(out.read_text()) if out.exists() else {"error": f"worker died: {proc.stderr[-2000:]}"}
    except subprocess.TimeoutExpired:
        result = {"error": f"timed out after {timeout:.0f} s"}
    result["job"] = job
    out.write_text(json.dumps(result, indent=1))
    spec.unlink()
    return result


def one_line(result: dict) -> str:
    if "error" in result:
        return "ERROR " + result["error"].splitlines()[0][:200]
    return (f"build {result['build_s']:.2f} s, {result['batch_qps']:,.0f} QPS, p50 {result['single_p50_ms']:.3f} ms, "
            f"recall {result['recall']:.3f}, RSS +{result['rss_build_mb']:.0f} MB")


def milvus_server(args: argparse.Namespace, stack: contextlib.ExitStack) -> str | None:
    """Point the workers at a Milvus server (``$PARAG_BENCH_MILVUS_URI``): ``--milvus-uri``'s,
    else one started here on 127.0.0.1 for the run and stopped by ``stack``. Returns the
    reason there is none (the Milvus jobs are then skipped and the report says so), or None."""
    if args.milvus_uri:
        uri, token = args.milvus_uri, os.environ.get("MILVUS_TOKEN", "")
    else:
        sys.path.insert(0, str(ROOT))  # the tests' launcher: tests/milvus_server.py
        from tests.milvus_server import ServerUnavailable, milvus_server

        print("starting a Milvus server on 127.0.0.1 for the Milvus jobs...", flush=True)
        try:
            server = stack.enter_context(milvus_server())
        except ServerUnavailable as e:
            return f"no Milvus server could start here: {e}"
        uri, token = server.uri, server.token
    from pymilvus import MilvusClient

    try:
        MilvusClient(uri=uri, token=token, timeout=10).list_collections()
    except Exception as e:
        return f"the Milvus server at {uri} does not answer: {type(e).__name__}: {str(e)[:300]}"
    os.environ[MILVUS_URI], os.environ[MILVUS_TOKEN] = uri, token
    return None


def measure_bandwidth(results: Path, mib: int) -> dict:
    out = results / "bandwidth.json"
    subprocess.run([sys.executable, str(HERE / "bench_worker.py"), "--bandwidth", str(mib), str(out)], check=True, timeout=600)
    return json.loads(out.read_text())


def clear_previous(results: Path) -> None:
    """Remove a previous run's raw results, so that a report never mixes two runs."""
    for path in [*results.glob("*__*__*__r*.json"), results / "run.json", results / "bandwidth.json"]:
        path.unlink(missing_ok=True)
    for suite in SUITES:
        shutil.rmtree(results / suite, ignore_errors=True)
    # The storage suite's 1M section; other storage-* sections (published with bench_storage.py
    # --section by hand, e.g. the 1,000-query memory run at 1M) are runs of their own, kept.
    shutil.rmtree(results / "storage-synthetic-1m", ignore_errors=True)


def run_suite(suite: str, args: argparse.Namespace, report_only: bool = False) -> None:
    """Run bench_filters.py / bench_persistence.py / bench_storage.py (or only rewrite its report) in a subprocess."""
    command = [sys.executable, str(HERE / SUITES[suite]), "--out", str(args.out), "--results", str(args.results / suite)]
    if report_only:
        command.append("--report-only")
    else:
        command += (["--quick"] if args.quick else []) + (["--n", str(args.n_base)] if args.n_base else [])
    print(f"\n{suite}: {' '.join(command[1:])}", flush=True)
    subprocess.run(command, check=True)
    if suite == "storage" and args.storage_1m and not report_only:
        command += STORAGE_1M
        print(f"\n{suite}, synthetic-1m: {' '.join(command[1:])}", flush=True)
        subprocess.run(command, check=True)


def run_systems(args: argparse.Namespace) -> Path:
    skipped = [s for s in args.systems if not installed(s)]
    if skipped:
        print(f"not installed, skipped: {', '.join(skipped)} (pip install -e '.[bench]')")
    args.systems = [s for s in args.systems if s not in skipped]
    for dataset in {*args.datasets, *(["synthetic-1m"] if args.scale else [])}:
        bench_data.load(dataset)  # generate synthetic data (and ground truth) before any timing
    meta = {"argv": sys.argv[1:] if args.argv is None else args.argv, "provenance": provenance(), "skipped": skipped,
            "datasets": args.datasets, "repeats": args.repeats, "quick": args.quick}
    meta["bandwidth"] = measure_bandwidth(args.results, 256 if args.quick else 1024)
    # The Milvus jobs run last, on a server started only then: an idle server takes CPU from other jobs.
    jobs = jobs_for(args)
    milvus = [job for job in jobs if job["system"] == "milvus"]
    jobs = [job for job in jobs if job["system"] != "milvus"] + milvus
    meta["unavailable"] = {}  # system -> why it could not run here: stated in the report, not a missing figure
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:  # stops a Milvus server started for the run
        for i, job in enumerate(jobs, 1):
            if milvus and job is milvus[0] and (why := milvus_server(args, stack)):
                print(f"Milvus unavailable, skipped: {why}", flush=True)
                meta["unavailable"]["milvus"] = why
            if job["system"] in meta["unavailable"]:
                continue
            t = time.perf_counter()
            result = run_job(job, args.results, timeout=1800)
            print(f"[{i}/{len(jobs)}] {job['dataset']} {job['system']} {job['index_type']} r{job['repeat']}: "
                  f"{one_line(result)} ({time.perf_counter() - t:.0f} s)", flush=True)
    meta["seconds"] = time.perf_counter() - start
    meta["src_at_end"] = src_state()
    (args.results / "run.json").write_text(json.dumps(meta, indent=1))
    return bench_report.write(args.results, args.out)


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    if given[:2] == ["--scale", "10m"]:  # the opt-in 10M x 384 run: benchmarks/bench_scale.py
        import bench_scale

        bench_scale.main(given[2:])
        return 0
    args = parse_args(argv)
    args.argv = argv
    if args.report_only:
        if (args.results / "run.json").exists():
            print(f"written: {bench_report.write(args.results, args.out)}")
        for suite in SUITES:
            if (args.results / suite).is_dir():
                run_suite(suite, args, report_only=True)
        return 0
    args.results.mkdir(parents=True, exist_ok=True)
    clear_previous(args.results)
    if "systems" in args.suites:
        report = run_systems(args)
        print(f"\n{report.read_text()}\nwritten: {report} (raw results: {args.results})")
    for suite in SUITES:
        if suite in args.suites:
            run_suite(suite, args)
    if (args.results / "run.json").exists() and "storage" in args.suites:
        bench_report.write(args.results, args.out)  # again: with the storage suite's trade-off section
    return 0


if __name__ == "__main__":
    sys.exit(main())
