"""Corruption battery: every way of damaging every file of a saved store gives the right
ParagError, never a crash and never a silent load.

For each index type and each file of the store (``manifest.json`` and the three data
files): delete it, truncate it at 0 / 1 / 50% / size-1 bytes, flip one byte at 20 random
offsets, replace it with random bytes of the same size and of another size. Loads run in a
worker subprocess (this file, run as a script), many cases per process, so that a crash
(FAISS aborting, a segfault) fails the test with the case that caused it instead of
killing pytest. With ``verify=False`` the damage that changes a size must still be caught.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from parag import FAISSVectorStore

FILES = ("manifest", "index", "ids", "metadata")
FLIPS_PER_FILE = 20
STORES = {
    "Flat": {},
    "HNSW": {"M": 8},
    "IVFFlat": {"nlist": 8, "nprobe": 4},
}


def build(index_type: str, path: Path) -> None:
    rng = np.random.default_rng(7)
    store = FAISSVectorStore(16, index_type, **STORES[index_type])
    store.add(rng.standard_normal((400, 16)), [{"n": i, "tag": f"t{i % 9}"} for i in range(400)])
    store.delete(list(range(0, 400, 19)))
    store.save(path)


def file_of(store: Path, which: str) -> Path:
    if which == "manifest":
        return store / "manifest.json"
    manifest = json.loads((store / "manifest.json").read_bytes())
    return store / manifest["files"][which]["name"]


def cases_for(store: Path, rng: random.Random) -> list[dict[str, Any]]:
    """Every damage to every file, as JSON-able descriptions the worker applies."""
    cases = []
    for which in FILES:
        size = file_of(store, which).stat().st_size
        damages: list[dict[str, Any]] = [{"kind": "delete"}]
        damages += [{"kind": "truncate", "size": n} for n in sorted({0, 1, size // 2, size - 1})]
        damages += [
            {"kind": "flip", "offset": rng.randrange(size), "mask": rng.randrange(1, 256)}
            for _ in range(FLIPS_PER_FILE)
        ]
        damages += [{"kind": "random", "size": size}, {"kind": "random", "size": rng.randrange(1, 2 * size)}]
        for damage in damages:
            cases.append({"file": which, "verify": True, **damage})
            # Without hashing, a changed size must still be caught (and the manifest is
            # always checked); other damage may load unnoticed, but must not crash.
            caught = which == "manifest" or damage["kind"] in ("delete", "truncate")
            cases.append({"file": which, "verify": False, "may_load": not caught, **damage})
    return cases


def damage(store: Path, case: dict[str, Any]) -> None:
    target = file_of(store, case["file"])
    kind = case["kind"]
    if kind == "delete":
        target.unlink()
    elif kind == "truncate":
        target.write_bytes(target.read_bytes()[: case["size"]])
    elif kind == "flip":
        data = bytearray(target.read_bytes())
        data[case["offset"]] ^= case["mask"]
        target.write_bytes(data)
    else:
        target.write_bytes(random.Random(case["size"]).randbytes(case["size"]))


def worker(pristine: Path, scratch: Path, cases: list[dict[str, Any]]) -> None:
    """Apply each case to a fresh copy, load it, print one JSON line per case."""
    for i, case in enumerate(cases):
        print(json.dumps({"start": i}), flush=True)  # the last line before a crash names the case
        copy = scratch / str(i)
        shutil.copytree(pristine, copy)
        damaged_name = file_of(copy, case["file"]).name
        damage(copy, case)
        try:
            FAISSVectorStore.load(copy, verify=case["verify"])
            outcome = {"error": None}
        except Exception as e:  # noqa: BLE001 - any exception is recorded and judged by the test
            outcome = {"error": type(e).__name__, "message": str(e)}
        print(json.dumps({"case": i, "file_name": damaged_name, **outcome}), flush=True)
        shutil.rmtree(copy)


@pytest.mark.parametrize("index_type", sorted(STORES))
def test_corruption_battery(index_type: str, tmp_path: Path) -> None:
    pristine = tmp_path / "pristine"
    build(index_type, pristine)
    cases = cases_for(pristine, random.Random(f"battery-{index_type}"))
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    (tmp_path / "scratch").mkdir()
    proc = subprocess.run(
        [sys.executable, __file__, str(pristine), str(tmp_path / "scratch"), str(tmp_path / "cases.json")],
        capture_output=True, text=True, timeout=600,
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    results = [line for line in lines if "case" in line]
    if proc.returncode != 0:
        last = lines[-1]["start"] if lines and "start" in lines[-1] else None
        pytest.fail(
            f"the worker died (exit {proc.returncode}) on case {last}: "
            f"{cases[last] if last is not None else '?'}\n{proc.stderr[-2000:]}"
        )
    assert len(results) == len(cases)
    wrong, refused, unnoticed = [], 0, 0
    for case, result in zip(cases, results):
        # Every damage must raise exactly CorruptStoreError (the manifest is checksummed
        # before any field is trusted, so no damage can pass for a newer format or a
        # directory that is not a store), and the message must say which file.
        named = result["file_name"] in result.get("message", "") or (
            case["file"] == "manifest" and "manifest" in result.get("message", "")
        )
        if result["error"] == "CorruptStoreError" and named:
            refused += 1
        elif case.get("may_load") and result["error"] is None:
            unnoticed += 1  # verify=False, as documented
        else:
            wrong.append((case, result))
    must = sum(not c.get("may_load") for c in cases)
    print(
        f"\n{index_type}: {len(cases)} damaged stores loaded in a subprocess, 0 crashes; "
        f"{refused} refused with CorruptStoreError ({must} had to be); "
        f"{unnoticed} with verify=False and damaged data bytes loaded unnoticed"
    )
    assert not wrong, wrong[:5]


if __name__ == "__main__":
    worker(Path(sys.argv[1]), Path(sys.argv[2]), json.loads(Path(sys.argv[3]).read_text()))
