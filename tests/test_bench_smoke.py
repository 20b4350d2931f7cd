"""The benchmark harness runs end to end on tiny data (parag and raw FAISS only), so it never rots.

Timings are never asserted: only that every job ran, every figure is there, and the report
and its tables were written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "benchmarks" / "run.py"


@pytest.mark.skipif(not RUN.exists(), reason="benchmarks/ is not in this checkout")
def test_benchmark_harness_runs_end_to_end(tmp_path):
    results, out = tmp_path / "results", tmp_path / "docs"
    command = [sys.executable, str(RUN), "--quick", "--datasets", "tiny", "--systems", "parag,faiss",
               "--no-scale", "--results", str(results), "--out", str(out)]
    # One OpenMP thread: on a busy machine, spinning OpenMP teams make tiny builds take seconds.
    env = {**os.environ, "PARAG_BENCH_DATA": str(tmp_path / "data"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    jobs = [json.loads(p.read_text()) for p in results.glob("tiny__*.json")]
    assert len(jobs) == 6  # parag and raw FAISS x Flat, IVFFlat, HNSW
    assert [j["job"] for j in jobs if "error" in j] == []
    for j in jobs:
        for figure in ("build_s", "rss_build_mb", "batch_qps", "single_p50_ms", "single_p95_ms", "recall",
                       "filtered_1%_p50_ms", "filtered_10%_recall", "save_s", "load_s", "disk_mb"):
            assert isinstance(j[figure], float), (j["job"], figure)
        assert j["recall"] > 0.5
    parag_hnsw = next(j for j in jobs if j["job"]["system"] == "parag" and j["job"]["index_type"] == "HNSW")
    assert parag_hnsw["sweep"] and parag_hnsw["tune"]["param"] == "ef_search"

    report = (out / "benchmarks.md").read_text()
    for section in ("## Targets", "parag / raw FAISS, HNSW", "## Flat: the physical limit", "store.tune"):
        assert section in report


def test_cli_build_benchmark_runs_on_tiny_data(tmp_path):
    out = tmp_path / "cli.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "bench_cli.py"), "--rows", "500", "--dim", "8",
               "--runs", "1", "--dir", str(tmp_path / "data"), "--out", str(out)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    raw = json.loads(out.read_text())
    assert set(raw["runs"][0]) == {"cli", "library"}
    assert "cli / library" in proc.stdout
