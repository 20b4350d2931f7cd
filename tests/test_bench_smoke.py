"""The benchmark harness runs end to end on tiny data (parag and raw FAISS, and hnswlib,
parag's LangChain store and parag on the session's Milvus server where available), so it never
rots, and its reports are generated from the raw results alone.

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


def _milvus_server(request):
    """The test session's Milvus server, or None where it cannot start (no Milvus job then)."""
    try:
        return request.getfixturevalue("milvus_server_session")
    except pytest.skip.Exception:
        return None


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, request):
    """One quick run of every suite on tiny data: (results dir, reports dir, systems run)."""
    tmp = tmp_path_factory.mktemp("bench")
    results, out = tmp / "results", tmp / "docs"
    systems = ["parag", "faiss"] + (["hnswlib"] if importlib.util.find_spec("hnswlib") else [])
    systems += ["parag-langchain"] if importlib.util.find_spec("langchain_core") else []
    command = [sys.executable, str(BENCH / "run.py"), "--quick", "--datasets", "tiny", "--competitors-on", "tiny",
               "--no-scale", "--n-base", "2000", "--results", str(results), "--out", str(out)]
    # One OpenMP thread: on a busy machine, spinning OpenMP teams make tiny builds take seconds.
    env = {**os.environ, "PARAG_BENCH_DATA": str(tmp / "data"), "OMP_NUM_THREADS": "1"}
    if milvus := _milvus_server(request):  # the session's server, as a user names theirs
        systems.append("milvus")
        command += ["--milvus-on", "tiny", "--milvus-uri", milvus.uri]
        env["MILVUS_TOKEN"] = milvus.token
    command += ["--systems", ",".join(systems)]
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return results, out, systems


def test_every_job_ran_and_produced_every_target_figure(quick_run):
    results, out, systems = quick_run
    report_module = _bench_module("bench_report")
    jobs = [json.loads(p.read_text()) for p in results.glob("tiny__*.json")]
    # parag and raw FAISS x Flat, IVFFlat, HNSW (+ hnswlib HNSW, + parag's LangChain store on Flat, + Milvus HNSW)
    assert len(jobs) == 6 + ("hnswlib" in systems) + ("parag-langchain" in systems) + ("milvus" in systems)
    assert [j["job"] for j in jobs if "error" in j] == []
    for j in jobs:
        system = j["job"]["system"]
        on_server = system == "milvus"  # persists as it goes, on the server: no save step, no disk figure
        for figure in ("build_s", "rss_build_mb", "batch_qps", "single_p50_ms", "single_p95_ms", "recall",
                       "filtered_1%_p50_ms", "filtered_10%_recall", "load_s", *(() if on_server else ("save_s", "disk_mb")),
                       *_report_figures(report_module, systems).get(system, ())):
            assert isinstance(j[figure], float), (j["job"], figure)
        if system in report_module.TARGET_SWEEPS and j["job"]["index_type"] == "HNSW":
            assert j["sweep"], j["job"]
        assert j["recall"] > 0.5
    parag_hnsw = next(j for j in jobs if j["job"]["system"] == "parag" and j["job"]["index_type"] == "HNSW")
    assert parag_hnsw["sweep"] and parag_hnsw["tune"]["param"] == "ef_search"

    report = (out / "benchmarks.md").read_text()
    for section in ("## Targets", "parag / raw FAISS, HNSW", "## Flat: the physical limit", "store.tune",
                    *(["## parag on Milvus", "| tiny | parag on Milvus |"] if "milvus" in systems else [])):
        assert section in report
    targets = report.split("## Targets")[1].split("##")[0]
    measured = [row for row in targets.splitlines() if row.startswith("| ") and "**" in row.split("|")[-2]]
    assert len(measured) == 4 + ("hnswlib" in systems), targets  # all but the 1M run have a verdict
    assert f"**Raw results**: `{results}/`" in report
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert commit and commit in report


def _report_figures(bench_report, systems: list[str]) -> dict[str, tuple[str, ...]]:
    """system -> the figures its report rows need (the targets', and the Milvus section's)."""
    return {**bench_report.TARGET_FIGURES, **({"milvus": tuple(bench_report.MILVUS_FIGURES)} if "milvus" in systems else {})}


def test_the_report_refuses_results_that_lack_a_target_figure(quick_run, tmp_path):
    results, _, systems = quick_run
    bench_report = _bench_module("bench_report")
    for system, figures in _report_figures(bench_report, systems).items():
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


def test_milvus_unavailable_is_a_stated_outcome_not_a_missing_figure(quick_run, tmp_path):
    """A run where no Milvus server could start says so in its report; a run.json that does
    not say which systems were unavailable is refused."""
    results, _, _ = quick_run
    bench_report = _bench_module("bench_report")
    for p in results.glob("*.json"):
        data = json.loads(p.read_text())
        if data.get("job", {}).get("system") != "milvus":
            (tmp_path / p.name).write_text(json.dumps(data))
    run = json.loads((results / "run.json").read_text())
    (tmp_path / "run.json").write_text(json.dumps({**run, "unavailable": {"milvus": "no Milvus server could start here: X"}}))
    report = bench_report.write(tmp_path, tmp_path).read_text()
    assert "**Unavailable, skipped**: parag on Milvus: no Milvus server could start here: X" in report
    assert "## parag on Milvus\n\n**Milvus unavailable**: no Milvus server could start here: X." in report
    del run["unavailable"]
    (tmp_path / "run.json").write_text(json.dumps(run))
    with pytest.raises(bench_report.ReportError, match="unavailable"):
        bench_report.write(tmp_path, tmp_path)


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


def test_storage_tradeoff_table_has_speed_and_usearch_or_why_not(quick_run):
    """The storage suite times parag (its results decoded, and ids and scores only) and raw
    FAISS at both reranks, and its recall-memory-speed table is in both reports (usearch rows,
    or the reason they are absent)."""
    results, out, _ = quick_run
    raw = json.loads((results / "storage" / "results.json").read_text())
    for config in raw["configs"]:
        assert set(config["single_ms"]) == set(config["raw_batch_s"]) == set(config["recall"]), config["storage"]
        assert set(config["bare_ratio"]) == set(config["recall"]), config["storage"]  # ids and scores only, too
    assert [u["dtype"] for u in raw["usearch"]] == ([] if "usearch_missing" in raw else ["f16", "i8"])
    table = _bench_module("bench_tradeoff").table(raw)
    assert len(table) == 2 + sum(len(c["recall"]) for c in raw["configs"]) + len(raw["usearch"])
    for report in ("bench-storage.md", "benchmarks.md"):
        text = (out / report).read_text()
        assert "\n".join(table) in text and raw.get("usearch_missing", "usearch f16") in text, report


def test_cli_build_benchmark_runs_on_tiny_data(tmp_path):
    out = tmp_path / "cli.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "bench_cli.py"), "--rows", "500", "--dim", "8",
               "--runs", "1", "--dir", str(tmp_path / "data"), "--out", str(out)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    raw = json.loads(out.read_text())
    assert set(raw["runs"][0]) == {"cli", "library"}
    assert "cli / library" in proc.stdout


def test_scale_run_resumes_after_a_stop(tmp_path, monkeypatch):
    """``./run bench --scale 10m`` stopped after its first checkpoint continues from it on a
    rerun (tiny chunks here), adds up the build time of both runs, and, once built, re-measures."""
    scale = _bench_module("bench_scale")
    monkeypatch.setattr(scale, "CHUNK", 500)
    monkeypatch.setattr(scale, "WORK", tmp_path / "work")
    monkeypatch.setattr(scale, "ROOT", tmp_path)
    argv = ["--n", "1000", "--checkpoint-every", "500", "--queries", "20"]
    save = scale.checkpoint

    def stop_after_saving(*args):
        save(*args)
        raise KeyboardInterrupt  # the session's end, after the first checkpoint

    monkeypatch.setattr(scale, "checkpoint", stop_after_saving)
    with pytest.raises(KeyboardInterrupt):
        scale.main(argv)
    monkeypatch.setattr(scale, "checkpoint", save)
    scale.main(argv)
    record = json.loads((tmp_path / "benchmarks" / "results" / "scale" / "scale-IVFFlat-sq8-1000.json").read_text())
    assert record["resumed"] and [r["from"] for r in record["runs"]] == [0, 500]
    assert record["n_added"] == 1000 and len(record["chunk_s"]) == 2
    assert record["build_s"] == pytest.approx(sum(record["chunk_s"]))
    assert record["recall"] >= 0.9
    scale.main(argv)  # built: measured again, nothing added
    again = json.loads((tmp_path / "benchmarks" / "results" / "scale" / "scale-IVFFlat-sq8-1000.json").read_text())
    assert again["chunk_s"] == record["chunk_s"] and len(again["runs"]) == 2


def test_overhead_and_adapter_benchmarks_run_on_tiny_data():
    import numpy as np

    from parag import FAISSVectorStore

    overhead, adapters = _bench_module("bench_overhead"), _bench_module("bench_adapters")
    x = np.random.default_rng(0).standard_normal((300, 16)).astype(np.float32)
    meta = [{"i": i} for i in range(300)]
    store = FAISSVectorStore(16, "HNSW")
    store.add(x, meta, ids=[f"d{i}" for i in range(300)], documents=[f"text {i}" for i in range(300)])
    figures = overhead.single_query_ratio(store, x[:30], 30)  # ratio, parag us, raw us, floor, include=(), guarded
    assert len(figures) == 6 and all(f > 0 for f in figures)
    # The guarded floor answers what FAISS answers, and checks what a store checks.
    guarded = overhead.guarded_floor_search(store.faiss_index, store.get(store.ids(), include=("metadata",)).metadata)
    _, labels = store.faiss_index.search(x[:1], 10)
    assert guarded(x[0])[1] == labels[0].tolist() and guarded(x[0])[2] == [meta[i] for i in labels[0]]
    for bad_query, bad_k in ((np.full(16, np.nan, np.float32), 10), (x[0, :8], 10), (x[0].astype(np.float64), 10),
                             (x[0], 0), (x[0], 2.0)):
        with pytest.raises(ValueError):
            guarded(bad_query, bad_k)
    assert len(overhead.add_ratio(x, meta, "L2")) == 4
    calls = adapters.framework_calls(store, x)
    assert set(calls) == {"LangChain", "LlamaIndex"}
    for used, call in calls.values():
        adapter, direct = overhead.interleaved([call, lambda q, used=used: used.search(q, 10)], x[:20], 20)
        assert adapter > 0 and direct > 0
