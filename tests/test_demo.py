"""The demo (``./run demo``) runs on the shipped data and shows the same answers after a reload."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo.py"


def test_demo_runs_and_answers() -> None:
    done = subprocess.run(
        [sys.executable, str(DEMO)], capture_output=True, text=True, timeout=120, cwd=DEMO.parent
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    # A question, and the answer the full 58,940-description base gives it, with its score.
    assert '"play chess against the computer"' in out
    assert "gnuchess" in out
    assert "All 20 answers are identical after save and load." in out
    assert "DIFFERENT" not in out
