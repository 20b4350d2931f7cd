"""The benchmark harness runs end to end on tiny data (parag and raw FAISS, and hnswlib and
parag's LangChain store where installed), so it never rots, and its reports are generated from the raw results alone.

Timings are never asserted: only that every job ran, every figure the reports need is there,
the reports were written, and a report whose raw results lack a figure is refused.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
pytestmark = pytest.mark.skipif(not (BENCH / "run.py").exists(), reason="benchmarks/ is not in this checkout")


def _bench_module(name: str):
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One quick run of every suite on tiny data: (results dir, reports dir, systems run)."""
    tmp = tmp_path_factory.mktemp("bench")
    results, out = tmp / "results", tmp / "docs"
    systems = ["parag", "faiss"] + (["hnswlib"] if importlib.util.find_spec("hnswlib") else [])
    systems += ["parag-langchain"] if importlib.util.find_spec("langchain_core") else []
    command = [sys.executable, str(BENCH / "run.py"), "--quick", "--datasets", "tiny", "--systems", ",".join(systems),
               "--competitors-on", "tiny", "--no-scale", "--n-base", "2000", "--results", str(results), "--out", str(out)]
    # One OpenMP thread: on a busy machine, spinning OpenMP teams make tiny builds take seconds.
    env = {**os.environ, "PARAG_BENCH_DATA": str(tmp / "data"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return results, out, systems


def test_every_job_ran_and_produced_every_target_figure(quick_run):
    results, out, systems = quick_run
    report_module = _bench_module("bench_report")
    jobs = [json.loads(p.read_text()) for p in results.glob("tiny__*.json")]
    # parag and raw FAISS x Flat, IVFFlat, HNSW (+ hnswlib HNSW, + parag's LangChain store on Flat)
    assert len(jobs) == 6 + ("hnswlib" in systems) + ("parag-langchain" in systems)
    assert [j["job"] for j in jobs if "error" in j] == []
    for j in jobs:
        system = j["job"]["system"]
        for figure in ("build_s", "rss_build_mb", "batch_qps", "single_p50_ms", "single_p95_ms", "recall",
                       "filtered_1%_p50_ms", "filtered_10%_recall", "save_s", "load_s", "disk_mb",
                       *report_module.TARGET_FIGURES[system]):
            assert isinstance(j[figure], float), (j["job"], figure)
        if system in report_module.TARGET_SWEEPS and j["job"]["index_type"] == "HNSW":
            assert j["sweep"], j["job"]
        assert j["recall"] > 0.5
    parag_hnsw = next(j for j in jobs if j["job"]["system"] == "parag" and j["job"]["index_type"] == "HNSW")
    assert parag_hnsw["sweep"] and parag_hnsw["tune"]["param"] == "ef_search"

    report = (out / "benchmarks.md").read_text()
    for section in ("## Targets", "parag / raw FAISS, HNSW", "## Flat: the physical limit", "store.tune"):
        assert section in report
    targets = report.split("## Targets")[1].split("##")[0]
    measured = [row for row in targets.splitlines() if row.startswith("| ") and "**" in row.split("|")[-2]]
    assert len(measured) == 4 + ("hnswlib" in systems), targets  # all but the 1M run have a verdict
    assert f"**Raw results**: `{results}/`" in report
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert commit and commit in report


def test_the_report_refuses_results_that_lack_a_target_figure(quick_run, tmp_path):
    results, _, _ = quick_run
    bench_report = _bench_module("bench_report")
    for system, figures in bench_report.TARGET_FIGURES.items():
        for figure in figures:
            copy = tmp_path / f"{system}-{figure}"
            copy.mkdir()
            for p in results.glob("*.json"):
                data = json.loads(p.read_text())
                if data.get("job", {}).get("system") == system:
                    data.pop(figure)
                (copy / p.name).write_text(json.dumps(data))
            with pytest.raises(bench_report.ReportError, match=figure):
                bench_report.write(copy, copy)


@pytest.mark.parametrize("suite, report", [("filters", "bench-filters.md"), ("persistence", "bench-persistence.md")])
def test_filters_and_persistence_write_raw_results_and_a_report_from_them(quick_run, suite, report):
    results, out, _ = quick_run
    raw = json.loads((results / suite / "results.json").read_text())
    text = (out / report).read_text()
    assert raw["provenance"]["commit"] in text and raw["params"]["n"] == 2000
    module = _bench_module(f"bench_{suite}")
    assert module.report(raw, results / suite) == text  # the report is a function of the raw results alone
    broken = dict(raw)
    broken.pop("params")
    with pytest.raises(_bench_module("bench_provenance").ReportError, match="params"):
        module.report(broken, results / suite)


def test_cli_build_benchmark_runs_on_tiny_data(tmp_path):
    out = tmp_path / "cli.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "bench_cli.py"), "--rows", "500", "--dim", "8",
               "--runs", "1", "--dir", str(tmp_path / "data"), "--out", str(out)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    raw = json.loads(out.read_text())
    assert set(raw["runs"][0]) == {"cli", "library"}
    assert "cli / library" in proc.stdout
