"""Where a benchmark's figures come from: the commit, versions and machine of a run, and
the raw results files every report is generated from.

Every benchmark writes its raw per-repeat results as JSON into a results directory and
then generates its Markdown report from those files alone. The published run writes under
``docs/bench-results/`` (tracked), next to the reports in ``docs/``; other runs write under
``benchmarks/results/`` (git-ignored).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED_RESULTS = ROOT / "docs" / "bench-results"
QUICK_RESULTS = ROOT / "benchmarks" / "results" / "quick"


class ReportError(RuntimeError):
    """A figure a report needs is not in the raw results: the report is not written."""


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True).stdout.strip()


def versions() -> str:
    names = ["numpy", "faiss-cpu", "orjson", "hnswlib", "langchain-community", "langchain-core", "llama-index-core",
             "llama-index-vector-stores-faiss", "chromadb", "usearch", "matplotlib"]
    found = []
    for name in names:
        try:
            found.append(f"{name} {importlib_metadata.version(name)}")
        except importlib_metadata.PackageNotFoundError:
            pass
    return f"Python {platform.python_version()}, " + ", ".join(found)


def src_state() -> str:
    """The committed tree of src/ and whether it has uncommitted changes: what the run measured."""
    dirty = _git("status", "--porcelain", "src", "benchmarks")
    return _git("rev-parse", "HEAD:src") + (" dirty" if dirty else "")


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    mem = next((int(line.split()[1]) / 1e6 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), 0)
    return f"{model}, {os.cpu_count()} cores, {mem:.0f} GB RAM, {platform.system()} {platform.release()}"


def provenance() -> dict[str, Any]:
    """What a run measured: the commit checked out (and whether src/ or benchmarks/ had
    uncommitted changes), package versions, the machine, the start time."""
    return {"commit": _git("rev-parse", "HEAD"), "dirty": bool(_git("status", "--porcelain", "src", "benchmarks")),
            "versions": versions(), "machine": machine(), "src": src_state(), "started": datetime.datetime.now(
                datetime.timezone.utc).isoformat(timespec="seconds")}


def describe(prov: dict[str, Any], results: Path) -> list[str]:
    """The report lines naming the raw results directory and the commit that produced them."""
    try:
        where = results.resolve().relative_to(ROOT)
    except ValueError:
        where = results
    dirty = " **with uncommitted changes in src/ or benchmarks/**" if prov["dirty"] else ""
    return [f"- **Raw results**: `{where}/` (JSON, every repeat; this report is generated from them alone)",
            f"- **Measured at commit**: `{prov['commit']}`{dirty}; started {prov['started']}",
            f"- **Machine**: {prov['machine']}",
            f"- **Versions**: {prov['versions']}"]


def need(record: dict[str, Any], key: str, what: str) -> Any:
    """``record[key]``, or a ReportError naming what lacks it (never a silent default)."""
    if key not in record:
        raise ReportError(f"{what} has no {key!r} (it has {sorted(record)}): the benchmark that wrote it and "
                          "the report disagree; rerun the benchmark or fix the report")
    return record[key]


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


def read_json(path: Path) -> Any:
    if not path.exists():
        raise ReportError(f"{path} is missing: the report is generated only from raw results")
    return json.loads(path.read_text())
