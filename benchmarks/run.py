"""parag against raw FAISS, hnswlib, LangChain, LlamaIndex and Chroma: the one benchmark command.

    ./run bench                  the full run (~25 min on 2 cores): writes docs/benchmarks.md
                                 and docs/bench-*.png, raw results in benchmarks/results/
    ./run bench --quick          a few minutes, small query counts, no 1M run; writes to
                                 benchmarks/results/quick/ (docs/ is left alone)
    ./run bench --datasets siftsmall,synthetic-100k --systems parag,faiss --repeats 1
    ./run bench --report-only benchmarks/results/2026-11-24T1200    rewrite the report from saved results

Each (dataset, system, index type, repeat) runs in a subprocess of its own
(``bench_worker.py``), one at a time, so memory figures are clean and nothing runs
concurrently. Figures are medians over ``--repeats`` runs; every parag / raw FAISS ratio is
computed within one repeat (both ran back to back, in alternating order) and then the
median of the ratios is quoted. Systems whose package is not installed are skipped and
listed as such (``pip install -e '.[bench]'`` installs them all).

Datasets: debian-minilm, siftsmall, fashion-mnist (from ../shared/data, each with its
ground truth, when present), synthetic-100k and synthetic-1m (generated clustered data,
unit vectors around 1,000 centres, inner product; cached in benchmarks/results/data/), tiny.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_data  # noqa: E402
import bench_report  # noqa: E402
from bench_systems import INDEX_TYPES, MODULES  # noqa: E402

ROOT = HERE.parent
MAIN_DATASET = "debian-minilm"  # competitors, sweeps: here
SWEEPS = {"ef_search": [10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384], "nprobe": [1, 2, 4, 8, 16, 32, 64, 128]}
ALL_SYSTEMS = list(INDEX_TYPES)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small query counts, 1 repeat, no 1M run, output to benchmarks/results/quick")
    p.add_argument("--datasets", help="comma-separated (default: the real sets present, and synthetic-100k)")
    p.add_argument("--systems", default=",".join(ALL_SYSTEMS), help=f"comma-separated, from {','.join(ALL_SYSTEMS)}")
    p.add_argument("--competitors-on", default=MAIN_DATASET, help="datasets (comma-separated) that the competitors also run on")
    p.add_argument("--repeats", type=int, help="runs per job; medians are quoted (default 3, quick 1)")
    p.add_argument("--scale", action=argparse.BooleanOptionalAction, default=None, help="the 1M x 384 HNSW run (default: on, off with --quick)")
    p.add_argument("--scale-systems", default="parag", help="systems for the 1M run (default parag)")
    p.add_argument("--queries", type=int, help="batch queries per dataset (default 1000, quick 100)")
    p.add_argument("--n-base", type=int, help="keep only the first N base vectors of every dataset (smoke tests)")
    p.add_argument("--out", type=Path, help="where benchmarks.md and the plots go (default docs/, quick: the results dir)")
    p.add_argument("--results", type=Path, help="where raw JSON results go (default benchmarks/results/<date>)")
    p.add_argument("--report-only", type=Path, metavar="RESULTS", help="only rewrite the report from a results dir")
    args = p.parse_args(argv)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%M%S")
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.queries = args.queries or (100 if args.quick else 1000)
    args.scale = (not args.quick) if args.scale is None else args.scale
    args.results = args.results or args.report_only or HERE / "results" / ("quick" if args.quick else stamp)
    args.out = args.out or (args.results if args.quick else ROOT / "docs")
    args.systems = args.systems.split(",")
    unknown = set(args.systems) - set(ALL_SYSTEMS)
    if unknown:
        p.error(f"unknown systems {sorted(unknown)}; choose from {ALL_SYSTEMS}")
    default_sets = [d for d in bench_data.available() if d not in ("synthetic-1m", "tiny")]
    args.datasets = args.datasets.split(",") if args.datasets else default_sets
    args.competitors_on = args.competitors_on.split(",")
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
                for system in ("hnswlib", "langchain", "llamaindex", "chroma"):
                    if system in args.systems:
                        jobs.append(_job(common, dataset, system, INDEX_TYPES[system][0], repeat))
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


def measure_bandwidth(results: Path, mib: int) -> dict:
    out = results / "bandwidth.json"
    subprocess.run([sys.executable, str(HERE / "bench_worker.py"), "--bandwidth", str(mib), str(out)], check=True, timeout=600)
    return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report_only:
        bench_report.write(args.results, args.out)
        return 0
    args.results.mkdir(parents=True, exist_ok=True)
    skipped = [s for s in args.systems if not installed(s)]
    if skipped:
        print(f"not installed, skipped: {', '.join(skipped)} (pip install -e '.[bench]')")
    args.systems = [s for s in args.systems if s not in skipped]
    for dataset in {*args.datasets, *(["synthetic-1m"] if args.scale else [])}:
        bench_data.load(dataset)  # generate synthetic data (and ground truth) before any timing
    meta = {"argv": sys.argv[1:] if argv is None else argv, "started": time.time(), "skipped": skipped,
            "datasets": args.datasets, "repeats": args.repeats, "quick": args.quick,
            "versions": bench_report.versions(), "src": bench_report.src_state(), "machine": bench_report.machine()}
    meta["bandwidth"] = measure_bandwidth(args.results, 256 if args.quick else 1024)
    jobs = jobs_for(args)
    start = time.perf_counter()
    for i, job in enumerate(jobs, 1):
        t = time.perf_counter()
        result = run_job(job, args.results, timeout=1800)
        print(f"[{i}/{len(jobs)}] {job['dataset']} {job['system']} {job['index_type']} r{job['repeat']}: "
              f"{one_line(result)} ({time.perf_counter() - t:.0f} s)", flush=True)
    meta["seconds"] = time.perf_counter() - start
    meta["versions_at_end"], meta["src_at_end"] = bench_report.versions(), bench_report.src_state()
    (args.results / "run.json").write_text(json.dumps(meta, indent=1))
    report = bench_report.write(args.results, args.out)
    print(f"\n{report.read_text()}\nwritten: {report} (raw results: {args.results})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
