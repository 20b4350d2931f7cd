"""What the CLI tests share: small input files, and running ``parag`` in-process or as a
real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from parag.cli import cli
from tests.conftest import clustered

N, D = 300, 8
PARAG = Path(sys.executable).with_name("parag")  # the console script pyproject.toml declares


def record(i: int) -> dict[str, Any]:
    """The metadata the test inputs give row ``i`` (the oracle for every metadata check)."""
    return {"tag": "a" if i % 3 == 0 else "b", "n": i}


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Any]:
    """vectors.npy (N x D), records.jsonl with ids 1000+i, flat.jsonl without ids."""
    x = clustered(N, D, seed=1)
    np.save(tmp_path / "vectors.npy", x)
    ids = [1000 + i for i in range(N)]
    with open(tmp_path / "records.jsonl", "w") as f:
        f.writelines(json.dumps({"id": ids[i], "metadata": record(i)}) + "\n" for i in range(N))
    with open(tmp_path / "flat.jsonl", "w") as f:
        f.writelines(json.dumps(record(i)) + "\n" for i in range(N))
    return {"dir": tmp_path, "x": x, "ids": ids, "store": tmp_path / "store"}


def invoke(*args: Any, code: int = 0) -> Result:
    """``parag ARGS`` through click's runner; asserts the exit code."""
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, (result.exit_code, result.output)
    return result


def invoke_json(*args: Any) -> Any:
    return json.loads(invoke(*args, "--json").stdout)


def run(*args: Any, code: int = 0, **kwargs: Any) -> subprocess.CompletedProcess:
    """``parag ARGS`` as a real process (the installed console script); asserts the exit code."""
    env = {**os.environ, "COLUMNS": "100"}
    done = subprocess.run([str(PARAG), *map(str, args)], capture_output=True, text=True, env=env, timeout=60, **kwargs)
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    return done


def assert_one_line_error(stderr: str) -> str:
    """parag's errors are one line on stderr, never a traceback; returns the line."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]
