"""Every published benchmark figure is the one its committed raw results give.

The reports in docs/ are generated from the raw results in docs/bench-results/; the README's
benchmark summary is generated with docs/benchmarks.md. Here each is generated again from the
committed raw results and compared with the committed text, so that a report edited by hand,
regenerated without its raw results, or a README left behind by a new run, fails.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH, DOCS = ROOT / "benchmarks", ROOT / "docs"
RESULTS = DOCS / "bench-results"
pytestmark = pytest.mark.skipif(not BENCH.is_dir(), reason="benchmarks/ is not in this checkout")
NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))
    try:
        yield lambda name: importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))


def readme_block(name: str) -> str:
    text = (ROOT / "README.md").read_text()
    return text.split(f"<!-- begin {name} -->\n")[1].split(f"<!-- end {name} -->")[0]


@pytest.mark.parametrize("suite, report", [("filters", "bench-filters.md"), ("persistence", "bench-persistence.md"),
                                           ("storage", "bench-storage.md"), ("defaults", "bench-defaults.md"),
                                           ("overhead", "bench-overhead.md")])
def test_focused_reports_are_their_raw_results(bench, suite, report):
    raw = RESULTS / suite / "results.json"
    if not raw.exists():
        pytest.skip(f"{raw.relative_to(ROOT)} is not committed yet")
    module, provenance = bench(f"bench_{suite}"), bench("bench_provenance")
    assert (DOCS / report).read_text() == module.report(provenance.read_json(raw), RESULTS / suite), (
        f"docs/{report} differs from what its raw results give: "
        f"python benchmarks/bench_{suite}.py --report-only regenerates it")


def test_the_scale_report_is_its_raw_results(bench):
    raws = sorted((RESULTS / "scale").glob("scale-*.json"))
    if not raws:
        pytest.skip("docs/bench-results/scale/ is not committed yet")
    module, provenance = bench("bench_scale"), bench("bench_provenance")
    assert (DOCS / "bench-scale.md").read_text() == module.report([provenance.read_json(r) for r in raws], RESULTS / "scale"), (
        "docs/bench-scale.md differs from what its raw results give: "
        "python benchmarks/bench_scale.py --report-only regenerates it")


def test_the_records_report_is_its_raw_results(bench):
    raw = RESULTS / "records" / "results.json"
    if not raw.exists():
        pytest.skip(f"{raw.relative_to(ROOT)} is not committed yet")
    module, provenance = bench("bench_filters"), bench("bench_provenance")
    assert (DOCS / "bench-records.md").read_text() == module.records_report(provenance.read_json(raw), RESULTS / "records"), (
        "docs/bench-records.md differs from what its raw results give: "
        "python benchmarks/bench_filters.py --records --report-only regenerates it")


def test_the_readme_summary_is_the_published_run(bench, tmp_path):
    block = readme_block("benchmarks summary")
    if (RESULTS / "run.json").exists():
        bench_report = bench("bench_report")
        run, _, groups, failed, main = bench_report.load(RESULTS)
        expected = "\n".join(bench_report.summary(groups, failed, main, run)) + "\n"
        assert block == expected, "./run bench --report-only docs/bench-results regenerates the README's summary"
        bench_report.write(RESULTS, tmp_path)  # the report too, plots aside (matplotlib is a bench extra)
        def text(path):
            return [line for line in path.read_text().splitlines() if line and not line.startswith("![")]
        assert text(tmp_path / "benchmarks.md") == text(DOCS / "benchmarks.md")
    else:  # the report of 2026-11-24, from before raw results were kept: quote it exactly
        report = (DOCS / "benchmarks.md").read_text()
        missing = [n for n in NUMBER.findall(block) if n not in report]
        assert not missing, f"README figures not in docs/benchmarks.md: {missing}"


def test_format_md_quotes_the_persistence_report():
    if not (RESULTS / "persistence" / "results.json").exists():
        pytest.skip("docs/bench-results/persistence/results.json is not committed yet")
    def rows(text: str) -> dict[str, list[str]]:
        return {cells[0]: cells[1:] for line in text.splitlines() if line.startswith("| ")
                for cells in [[c.strip() for c in line.strip("|").split("|")]]}

    timings, memory = map(rows, (DOCS / "bench-persistence.md").read_text().split("RSS growth"))
    cost = (DOCS / "format.md").read_text().split("## Cost")[1].split("\n## ")[0]
    operations = {"save (checksums + fsync)": "parag save", "load, `verify=True`": "parag load",
                  "load, `verify=False`": "parag load, verify=False", "load, `mmap=True` (verify)": "parag load, mmap",
                  "load, `mmap=True, verify=False`": "parag load, mmap, verify=False"}
    quoted = {k: v for k, v in rows(cost).items() if k in operations}
    assert set(quoted) == set(operations)
    for operation, (parag, raw, ratio) in quoted.items():
        key = operations[operation]
        base = "raw save" if "save" in key else "raw load"
        assert (parag, raw, ratio) == (f"{timings[key][0]} s", f"{timings[base][0]} s",
                                       timings[key][1].replace("x", "×")), operation
    for how in ("raw read_index", "raw read_index, mmap", "parag load", "parag load, mmap"):
        assert f"{memory[how][0]} MB" in cost, how


def test_readme_storage_figures_are_in_the_storage_report():
    block = readme_block("storage figures")
    report = (DOCS / "bench-storage.md").read_text()
    missing = [n for n in NUMBER.findall(block) if n not in report]
    assert not missing, f"README storage figures not in docs/bench-storage.md: {missing}"


def test_readme_defaults_figures_are_in_the_defaults_report():
    block = readme_block("defaults figures")
    report = (DOCS / "bench-defaults.md").read_text()
    missing = [n for n in NUMBER.findall(block) if n not in report]
    assert not missing, f"README defaults figures not in docs/bench-defaults.md: {missing}"
