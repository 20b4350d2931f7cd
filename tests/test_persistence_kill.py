"""Kill test: a process saving a ~25 MB store over another is SIGKILLed at 50 random
moments; after each kill the store loads, and is exactly the old or the new one.

The saving process (:data:`SAVER`) alternates between two stores, A and B, saving one
over the other without pause, so a kill lands at a random point of a save:
while data files are written, fsynced, while the manifest is written, renamed, or while
old files are deleted. (SIGKILL tests a crash of the process; the page cache survives it.
Surviving power loss rests on the fsync order, which docs/format.md describes.)
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from parag import FAISSVectorStore

# 25 MB of vectors per store: its index file still spans six 4 MiB checksum blocks, and the
# kills are spread over two saves' time whatever it is (47 of 50 kills still leave an
# unfinished save behind; at 98 MB the test took four minutes of the loaded machine's suite).
N, D = 16_000, 384
KILLS = 50
QUERIES = 5


def write_vectors(folder: Path) -> None:
    """The vectors of both stores, generated once and read by every saving process."""
    for name, seed in (("A", 1), ("B", 2)):
        rng = np.random.default_rng(seed)
        np.save(folder / f"{name}.npy", rng.standard_normal((N, D), dtype=np.float32))


def build(folder: Path, name: str) -> FAISSVectorStore:
    """Store A or B: different vectors, ids, metadata and deletes."""
    store = FAISSVectorStore(D)
    vectors = np.load(folder / f"{name}.npy", mmap_mode="r")
    offset = 0 if name == "A" else 10_000_000
    store.add(np.asarray(vectors), [{"store": name, "i": i} for i in range(N)], ids=np.arange(N) + offset)
    store.delete(list(range(offset, offset + N, 97 if name == "A" else 53)))
    return store


def fingerprint(store: FAISSVectorStore, queries: np.ndarray) -> tuple[Any, ...]:
    ids = store.ids()
    return ids, store.get(ids).metadata, store.search(queries, 10)


# Python, parag and both stores start once, in this process; each saving process is a fork of
# it, saving the moment it exists (starting a fresh interpreter per kill took 0.45 s of the
# 0.5 s a kill cost). It never runs an OpenMP region (OMP_NUM_THREADS=1), so forking is safe.
SAVER = """
import os, sys
from parag import FAISSVectorStore
path, folder = sys.argv[1:]
stores = {name: FAISSVectorStore.load(f"{folder}/{name}", verify=False) for name in ("A", "B")}
for first in sys.stdin:  # one saving process per line, naming the store it saves first
    order = [stores[first.strip()], stores["B" if first.strip() == "A" else "A"]]
    pid = os.fork()
    if pid == 0:
        try:
            i = 0
            while True:
                order[i % 2].save(path)
                i += 1
        finally:
            os._exit(1)
    print(pid, flush=True)
    print(os.waitpid(pid, 0)[1], flush=True)  # its wait status, once killed
"""


def leftovers(path: Path) -> list[str]:
    """Files of an interrupted save: not named by the manifest (nor the manifest or lock)."""
    manifest = orjson.loads((path / "manifest.json").read_bytes())
    keep = {"manifest.json", ".parag.lock"} | {f["name"] for f in manifest["files"].values()}
    return sorted(set(os.listdir(path)) - keep)


@pytest.mark.slow
def test_sigkill_during_saves_never_loses_the_store(tmp_path: Path) -> None:
    write_vectors(tmp_path)
    queries = np.random.default_rng(3).standard_normal((QUERIES, D)).astype(np.float32)
    expected = {}
    for name in ("A", "B"):
        store = build(tmp_path, name)
        expected[name] = fingerprint(store, queries)
        store.save(tmp_path / name)  # what the saving processes load, quickly
    path = tmp_path / "store"
    started = time.monotonic()
    store.save(path)
    save_seconds = time.monotonic() - started  # kills are spread over two saves' time
    del store
    current, seen, interrupted = "B", {"A": 0, "B": 0}, 0
    rng = random.Random(20240401)
    forks = subprocess.Popen([sys.executable, "-c", SAVER, str(path), str(tmp_path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert forks.stdin is not None and forks.stdout is not None
    try:
        for kill in range(KILLS):
            # Start with the store not on disk, so the first save already changes it.
            forks.stdin.write("B\n" if current == "A" else "A\n")
            forks.stdin.flush()
            pid = forks.stdout.readline()
            assert pid.strip().isdigit(), forks.stderr.read()
            time.sleep(rng.uniform(0, 2 * save_seconds))
            os.kill(int(pid), signal.SIGKILL)
            status = int(forks.stdout.readline())
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
            interrupted += bool(leftovers(path))

            loaded = FAISSVectorStore.load(path)  # never an error
            got = fingerprint(loaded, queries)
            matches = [name for name in ("A", "B") if got == expected[name]]
            assert matches, f"kill {kill}: the store is neither A nor B"
            current = matches[0]
            seen[current] += 1
            assert leftovers(path) == []  # the load cleaned up after the killed save
    finally:
        forks.stdin.close()  # its loop ends
        forks.wait(30)
    print(f"\n{KILLS} kills: the store loaded whole every time (A {seen['A']}, B {seen['B']}); "
          f"{interrupted} kills left an unfinished save behind, cleaned by the next load")
    assert seen["A"] and seen["B"]
    assert interrupted >= 5

