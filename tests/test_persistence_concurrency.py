"""Saving and loading while other threads and processes work on the same store or path."""

from __future__ import annotations

import errno
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import parag.persistence as persistence
from parag import FAISSVectorStore

D = 32


def make_store(n: int = 4000, seed: int = 0, index_type: str = "HNSW") -> FAISSVectorStore:
    rng = np.random.default_rng(seed)
    store = FAISSVectorStore(D, index_type, M=16) if index_type == "HNSW" else FAISSVectorStore(D, index_type)
    store.add(rng.standard_normal((n, D)), [{"id": i, "seed": seed} for i in range(n)])
    store.delete(list(range(0, n, 10)))
    return store


def searchers(store: FAISSVectorStore, queries: np.ndarray, expected: Any, stop: threading.Event,
              n: int = 4) -> tuple[list[threading.Thread], list[BaseException], list[int]]:
    """``n`` threads searching until ``stop``; each result must equal ``expected``
    (or, with expected None, merely come back)."""
    errors: list[BaseException] = []
    done = [0] * n

    def run(t: int) -> None:
        try:
            while not stop.is_set():
                for q in range(len(queries)):
                    result = store.search(queries[q], 10)
                    if expected is not None and result != expected[q]:
                        raise AssertionError(f"thread {t} query {q}: {result} != {expected[q]}")
                    done[t] += 1
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(n)]
    for thread in threads:
        thread.start()
    return threads, errors, done


def test_saves_while_four_threads_search(tmp_path: Path) -> None:
    store = make_store()
    queries = np.random.default_rng(1).standard_normal((20, D))
    expected = [store.search(q, 10) for q in queries]
    stop = threading.Event()
    threads, errors, done = searchers(store, queries, expected, stop)
    try:
        for i in range(8):
            store.save(tmp_path / ("a" if i % 2 else "b"))
            assert not errors, errors
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors, errors
    assert min(done) > 0, done  # every thread searched while the saves ran
    for name in ("a", "b"):
        loaded = FAISSVectorStore.load(tmp_path / name)
        assert [loaded.search(q, 10) for q in queries] == expected
        assert loaded.ids() == store.ids()


def test_saves_while_searching_and_adding_are_consistent_snapshots(tmp_path: Path) -> None:
    """A save is a snapshot: taken between two adds, never in the middle of one."""
    store = make_store(1000, index_type="Flat")
    queries = np.random.default_rng(1).standard_normal((5, D))
    stop = threading.Event()
    threads, errors, _ = searchers(store, queries, None, stop)
    rng = np.random.default_rng(2)

    def adder() -> None:
        try:
            for _ in range(40):
                first = store.add(rng.standard_normal((50, D)), [{"batch": True}] * 50)[0]
                assert first % 50 == 0
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    adding = threading.Thread(target=adder)
    adding.start()
    sizes = []
    try:
        for i in range(10):
            path = tmp_path / f"s{i}"
            store.save(path)
            loaded = FAISSVectorStore.load(path)
            ids = loaded.ids()
            sizes.append(len(ids))
            # 900 of the first 1000 ids live (every 10th deleted), then whole batches of 50.
            assert len(ids) == len(loaded) and (len(ids) - 900) % 50 == 0
            assert ids == store.ids()[: len(ids)]
            assert loaded.get(ids[-1:]).metadata == [{"batch": True} if ids[-1] >= 1000 else {"id": ids[-1], "seed": 0}]
            loaded.search(queries, 10)
    finally:
        adding.join()
        stop.set()
        for thread in threads:
            thread.join()
    assert not errors, errors
    assert sizes == sorted(sizes)


def test_two_threads_saving_to_one_path(tmp_path: Path) -> None:
    stores = [make_store(2000, seed=s, index_type="Flat") for s in (1, 2)]
    errors: list[BaseException] = []

    def save_repeatedly(store: FAISSVectorStore) -> None:
        try:
            for _ in range(6):
                store.save(tmp_path / "s")
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=save_repeatedly, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    loaded = FAISSVectorStore.load(tmp_path / "s")
    # One whole save of one of the stores: its ids, every metadata dict and every vector.
    saved = [s for s in stores if s.get(loaded.ids()[:1]).metadata == loaded.get(loaded.ids()[:1]).metadata]
    assert len(saved) == 1
    ids = saved[0].ids()
    assert loaded.ids() == ids
    expected, got = saved[0].get(ids, include_vectors=True), loaded.get(ids, include_vectors=True)
    assert got.metadata == expected.metadata and np.array_equal(got.vectors, expected.vectors)
    assert len(list((tmp_path / "s").iterdir())) == 6  # manifest, 4 data files, lock: no leftovers


WAIT = 10  # seconds; each wait returns as soon as its event comes


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()],
                         ids=["disk full", "Ctrl-C"])
def test_a_save_waiting_on_a_failed_save_into_a_new_directory_still_saves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    """Save F creates the directory, takes the lock and fails; save B, which waited on that
    lock, must still save. The failed save used to remove the directory and its lock file
    after releasing the lock, so B wrote into a directory that was gone (StoreWriteError).
    Hooks pause each thread where the race needs it: F fails once B waits on its lock, and
    B locks only once F's save has returned (all its undoing done)."""
    fcntl = pytest.importorskip("fcntl")
    path = tmp_path / "new" / "store"
    failing, waiting = make_store(50, seed=1, index_type="Flat"), make_store(60, seed=2, index_type="Flat")
    f_holds_lock, b_waits, f_done = threading.Event(), threading.Event(), threading.Event()
    real_write_file, real_flock = persistence._writing._write_file, fcntl.flock

    def write_then_fail(*args: Any) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return real_write_file(*args)
        f_holds_lock.set()
        assert b_waits.wait(WAIT)
        raise failure

    def flock_after_f(fd: int, operation: int) -> None:
        if threading.current_thread() is b_thread and not b_waits.is_set():
            b_waits.set()
            f_done.wait(WAIT)  # B opened the lock file and now waits on it, until F has failed
        real_flock(fd, operation)

    errors: list[BaseException] = []

    def save_b() -> None:
        try:
            assert f_holds_lock.wait(WAIT)
            waiting.save(path)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    monkeypatch.setattr(persistence._writing, "_write_file", write_then_fail)
    monkeypatch.setattr(fcntl, "flock", flock_after_f)
    b_thread = threading.Thread(target=save_b)
    b_thread.start()
    try:
        with pytest.raises(type(failure)):
            failing.save(path)
    finally:
        f_done.set()
        b_thread.join(WAIT)
    monkeypatch.undo()
    assert not b_thread.is_alive() and not errors, errors
    loaded = FAISSVectorStore.load(path)
    ids = waiting.ids()
    assert loaded.ids() == ids
    expected, got = waiting.get(ids, include_vectors=True), loaded.get(ids, include_vectors=True)
    assert got.metadata == expected.metadata and np.array_equal(got.vectors, expected.vectors)
    assert len(list(path.iterdir())) == 6  # manifest, 4 data files, lock: nothing of F's


SAVER = """
import sys, time
import numpy as np
sys.path.insert(0, {tests!r})
from test_persistence_concurrency import make_store
stores = [make_store(3000, seed=s, index_type="Flat") for s in (1, 2)]
print("ready", flush=True)
end = time.monotonic() + {seconds}
i = 0
while time.monotonic() < end:
    stores[i % 2].save({path!r})
    i += 1
print(i, flush=True)
"""


@pytest.mark.slow
def test_loads_while_another_process_saves(tmp_path: Path) -> None:
    """Every load, however it interleaves with the other process's saves, returns one
    of the two stores whole."""
    path = tmp_path / "s"
    expected = {}
    for seed in (1, 2):
        store = make_store(3000, seed=seed, index_type="Flat")
        expected[seed] = (store.ids(), store.get(store.ids()[:100]).metadata)
    make_store(3000, seed=1, index_type="Flat").save(path)
    code = SAVER.format(tests=str(Path(__file__).parent), seconds=4, path=str(path))
    saver = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert saver.stdout is not None and saver.stdout.readline().strip() == "ready"
    loads = 0
    while saver.poll() is None:
        loaded = FAISSVectorStore.load(path)
        seed = loaded.get(loaded.ids()[:1]).metadata[0]["seed"]
        assert (loaded.ids(), loaded.get(loaded.ids()[:100]).metadata) == expected[seed]
        loads += 1
    saves = int(saver.stdout.read().split()[-1])
    assert saver.returncode == 0 and saves > 2 and loads > 2, (saves, loads)
