"""Every Python example and shell session in the README runs as written."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("block", [b for b in BLOCKS if "import" in b], ids=lambda b: b.splitlines()[0][:40])
def test_readme_example_runs(block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples save to relative paths
    exec(compile(block, str(README), "exec"), {"__name__": "readme"})


def console_sessions() -> list[list[tuple[str, list[str]]]]:
    """Each ```console block as (command, lines shown after it) pairs."""
    sessions = []
    for block in re.findall(r"```console\n(.*?)```", README.read_text(), flags=re.S):
        steps: list[tuple[str, list[str]]] = []
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                steps[-1][1].append(line)
        sessions.append(steps)
    return sessions


@pytest.mark.parametrize("session", console_sessions(), ids=lambda s: s[0][0][:40])
def test_readme_shell_session_runs(session, tmp_path):
    """Each ``$ parag ...`` line runs (from a folder with the repository's examples/) and
    exits 0; table rows and other lines the README shows appear in its output."""
    (tmp_path / "examples").symlink_to(README.parent / "examples")
    env = {**os.environ, "COLUMNS": "100"}
    for command, shown in session:
        argv = shlex.split(command)
        assert argv[0] == "parag", command
        argv[0] = str(Path(sys.executable).with_name("parag"))
        done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, (command, done.stderr)
        output = [line.rstrip() for line in done.stdout.splitlines()]
        for line in shown:
            assert line.rstrip() in output, (command, line, done.stdout)
