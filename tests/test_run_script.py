"""./run on a newcomer's machine: a missing venv module is named, a half-made .venv is rebuilt."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def copy_of_repo(tmp_path: Path) -> Path:
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    dest = tmp_path / "repo"
    for name in files:
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


def python3_without_ensurepip(tmp_path: Path) -> dict[str, str]:
    """An environment whose python3 fails as Debian's does without python3-venv."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python3"
    fake.write_text(
        "#!/bin/bash\n"
        'for a in "$@"; do [[ "$a" == *ensurepip* || "$a" == venv ]] && '
        '{ echo "No module named ensurepip" >&2; exit 1; }; done\n'
        f'exec {sys.executable} "$@"\n'
    )
    fake.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


@pytest.mark.skipif(not shutil.which("git") or os.name == "nt", reason="needs git and bash")
def test_missing_venv_module_is_named_and_nothing_half_made_is_left(tmp_path: Path) -> None:
    repo = copy_of_repo(tmp_path)
    (repo / ".venv" / "bin").mkdir(parents=True)  # what a failed `python3 -m venv` leaves
    done = subprocess.run(
        ["bash", "run", "demo"], cwd=repo, env=python3_without_ensurepip(tmp_path),
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1
    assert "sudo apt install python3-venv" in done.stderr
    assert done.stdout == ""


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("git") or os.name == "nt", reason="needs git and bash")
def test_half_made_venv_is_rebuilt_with_one_line_of_output(tmp_path: Path) -> None:
    # ./run demo: the same setup() as ./run test, with the core dependencies only. Installing
    # the test extras again took minutes of the suite (four of the loaded machine); CI's own
    # ./run test installs them into a fresh .venv through this same setup().
    repo = copy_of_repo(tmp_path)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(repo / ".venv")], check=True)
    done = subprocess.run(["bash", "run", "demo"], cwd=repo, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "setting up .venv (first run: about a minute)..."
    assert "All 20 answers are identical after save and load." in done.stdout
    assert "Deprecat" not in done.stdout + done.stderr
    assert (repo / ".venv" / "bin" / "python").exists()
