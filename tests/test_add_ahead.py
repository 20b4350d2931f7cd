"""A large add into a flat index runs ahead of its checks (``vectorstore/_add_ahead.py``):
FAISS copies the batch in while the vectors, metadata, documents and ids are checked. These
tests use batches past the size where that starts (``BACKGROUND_CHECK_MIN`` values) and
check, against numpy and against the store's state before, that:

- a batch that passes its checks is stored whole and searched exactly;
- a batch that fails any check raises the same error as a small one with the same defect,
  in the same order of precedence, and leaves the store as it was (the index too);
- an interrupt during the checks waits for FAISS's copy, takes it out, and propagates;
- a read-only store still reports a bad input before its being read-only.
"""

from __future__ import annotations

import signal
import threading
import time
import warnings
from collections.abc import Sequence

import faiss
import numpy as np
import pytest

from parag._validation import BACKGROUND_CHECK_MIN, MAX_SQUARED_NORM
from parag.errors import InvalidArgumentError, InvalidMetadataError, ParagError, ReadOnlyStoreError, StoreClosedError
from parag.vectorstore import FAISSVectorStore
from parag.vectorstore._add_ahead import Batch
from parag.vectorstore._faiss_state import FAISSState
from parag.vectorstore.kinds import IndexKind
from tests.checks import assert_exact

D = 256
N = BACKGROUND_CHECK_MIN // D + 1  # one batch past the threshold
RNG = np.random.default_rng(11)
QUERIES = RNG.standard_normal((4, D)).astype(np.float32)
# index_type and params whose index is a flat float32 one while it holds < N + 50 vectors
FLAT_INDEXES = {"Flat": {}, "IVFFlat": {"nlist": 256}}  # IVFFlat: untrained until 39 * 256 vectors


def batch(n: int = N) -> np.ndarray:
    return RNG.standard_normal((n, D)).astype(np.float32)


def make_store(index_type: str = "Flat", metric: str = "L2", n: int = 50) -> tuple[FAISSVectorStore, np.ndarray]:
    store = FAISSVectorStore(D, index_type, metric, **FLAT_INDEXES[index_type])
    x = batch(n)
    store.add(x, [{"n": i} for i in range(n)], documents=[f"d{i}" for i in range(n)])
    return store, x


def observed(store: FAISSVectorStore) -> tuple:
    """What a user can see of the store, and the size of its FAISS index."""
    ids = store.ids()
    got = store.get(ids, include_vectors=True)
    return (len(store), store.faiss_index.ntotal, ids, got.metadata, got.documents, got.vectors.tobytes(),
            store.search(QUERIES, k=5), store.is_trained)


def test_the_batch_is_past_the_threshold():
    assert N * D >= BACKGROUND_CHECK_MIN


@pytest.mark.parametrize("metric", ["L2", "IP", "cosine"])
@pytest.mark.parametrize("index_type", list(FLAT_INDEXES))
def test_a_large_batch_is_stored_whole_and_searched_exactly(index_type, metric):
    store, first = make_store(index_type, metric)
    x = batch()
    ids = store.add(x, [{"n": 50 + i} for i in range(N)], documents=[f"d{50 + i}" for i in range(N)])
    assert ids == list(range(50, 50 + N)) and len(store) == store.faiss_index.ntotal == 50 + N
    base = np.concatenate([first, x])
    expected = base / np.linalg.norm(base, axis=1, keepdims=True) if metric == "cosine" else base
    got = store.get([50, 50 + N - 1], include_vectors=True)
    np.testing.assert_allclose(got.vectors, expected[[50, -1]], rtol=1e-6, atol=1e-6)
    assert got.metadata == [{"n": 50}, {"n": 50 + N - 1}] and got.documents == ["d50", f"d{50 + N - 1}"]
    assert_exact(store.search(QUERIES, k=10), base, range(50 + N), QUERIES, 10, metric)


def nan_last(x):
    x[-1, 3] = np.nan


def huge_row(x):
    x[-2] = np.sqrt(MAX_SQUARED_NORM / D) * 2


def zero_row(x):
    x[7] = 0


DEFECTS = {  # name: (change to the vectors, add's other arguments, error, message pattern: as a small batch's)
    "NaN": (nan_last, {}, InvalidArgumentError, "NaN or infinity .* first at row %d" % (N - 1)),
    "too long": (huge_row, {}, InvalidArgumentError, "row %d" % (N - 2)),
    "metadata": (None, {"metadata": [{}] * (N - 1) + [{"t": (1, 2)}]}, InvalidMetadataError,
                 r"metadata\[%d\] does not survive a JSON round trip" % (N - 1)),
    "metadata count": (None, {"metadata": [{}] * 3}, InvalidMetadataError, "3 items"),
    "documents": (None, {"documents": ["a"] * (N - 1) + [5]}, ParagError, "documents"),
    "repeated ids": (None, {"ids": list(range(100, 100 + N - 1)) + [100]}, ParagError, "100"),
    "stored id": (None, {"ids": list(range(1000, 1000 + N - 1)) + [7]}, ParagError, "7"),
}


@pytest.mark.parametrize("defect", list(DEFECTS))
@pytest.mark.parametrize("index_type", list(FLAT_INDEXES))
def test_a_large_batch_that_fails_a_check_changes_nothing(index_type, defect):
    change, kwargs, error, pattern = DEFECTS[defect]
    store, _ = make_store(index_type)
    x = batch()
    if change:
        change(x)
    before = observed(store)
    with pytest.raises(error, match=pattern):
        store.add(x, **kwargs)
    assert observed(store) == before
    # and the store still works
    assert store.add(x[:2] if not change else batch(2)) == [50, 51]


def test_an_all_zero_row_in_a_large_cosine_batch_is_refused_as_in_a_small_one():
    store, _ = make_store(metric="cosine")
    x = batch()
    zero_row(x)
    before = observed(store)
    with pytest.raises(InvalidArgumentError) as large:
        store.add(x)
    assert observed(store) == before
    with pytest.raises(InvalidArgumentError) as small:
        make_store(metric="cosine")[0].add(x[:10])
    assert str(large.value) == str(small.value) == (
        "vectors row 7 is all zeros: its cosine similarity is undefined; give a nonzero vector or drop the row")


def test_the_vectors_error_comes_before_the_metadata_error_as_in_a_small_batch():
    store, _ = make_store()
    x = batch()
    nan_last(x)
    with pytest.raises(InvalidArgumentError, match="NaN"):
        store.add(x, [{"t": (1,)}] * N)


class Interrupting(Sequence):
    """Documents whose reading is interrupted (Ctrl-C) half way."""

    def __len__(self) -> int:
        return N

    def __getitem__(self, i):
        if isinstance(i, slice) or i >= N // 2:
            raise KeyboardInterrupt
        return "text"

    def __iter__(self):
        for i in range(N):
            yield self[i]


def test_an_interrupt_during_the_checks_takes_the_batch_out_and_propagates():
    store, _ = make_store()
    before = observed(store)
    with pytest.raises(KeyboardInterrupt):
        store.add(batch(), documents=Interrupting())
    assert observed(store) == before
    assert not [t for t in threading.enumerate() if t.name == "parag-add-ahead"]
    assert store.add(batch(3)) == [50, 51, 52]


def test_a_read_only_store_reports_a_bad_large_input_first(tmp_path):
    store, _ = make_store()
    store.save(tmp_path / "s")
    mapped = FAISSVectorStore.load(tmp_path / "s", mmap=True)
    x = batch()
    nan_last(x)
    with pytest.raises(InvalidArgumentError, match="NaN"):
        mapped.add(x)
    assert len(mapped) == 50


def test_searches_running_beside_a_large_add_see_the_store_before_or_after():
    store, _ = make_store()
    x = batch()
    seen: list[int] = []
    stop = threading.Event()

    def search() -> None:
        while not stop.is_set():
            seen.append(len(store.search(QUERIES[0], k=100).ids))  # 50 hits, or 100
            seen.append(len(store))  # 50, or 50 + N

    readers = [threading.Thread(target=search) for _ in range(2)]
    for t in readers:
        t.start()
    try:
        store.add(x)
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert set(seen) <= {50, 100, 50 + N}
    assert len(store) == store.faiss_index.ntotal == 50 + N


def test_a_faiss_copy_that_fails_changes_nothing(monkeypatch):
    store, _ = make_store()
    before = observed(store)

    def out_of_memory(self, x):
        raise MemoryError("std::bad_alloc")

    monkeypatch.setattr(faiss.IndexFlat, "add", out_of_memory)
    with pytest.raises(MemoryError):
        store.add(batch())
    monkeypatch.undo()
    assert observed(store) == before


@pytest.mark.parametrize("index_type", list(FLAT_INDEXES))
def test_a_large_upsert_replaces_and_adds_as_numpy_says(index_type):
    store, first = make_store(index_type)
    x = batch()
    ids = list(range(40, 40 + N))  # 40..49 replaced, the rest new
    assert store.upsert(ids, x, [{"u": i} for i in ids]) == ids
    assert len(store) == 40 + N and store.get([45]).metadata == [{"u": 45}]
    assert_exact(store.search(QUERIES, k=10), np.concatenate([first[:40], x]), range(40 + N), QUERIES, 10, "L2")


@pytest.mark.parametrize("defect", ["NaN", "metadata", "documents", "repeated ids"])
def test_a_large_upsert_that_fails_a_check_changes_nothing(defect):
    change, kwargs, error, pattern = DEFECTS[defect]
    store, _ = make_store()
    x = batch()
    if change:
        change(x)
    kwargs = dict(kwargs)
    ids = kwargs.pop("ids", list(range(40, 40 + N)))
    before = observed(store)
    with pytest.raises(error, match=pattern):
        store.upsert(ids, x, **kwargs)
    assert observed(store) == before



# An error after the add has committed (the compaction that follows it, an interrupt) leaves
# the write done, as on the usual path: only what the slot map does not hold is taken out.

def assert_whole(store: FAISSVectorStore, base: np.ndarray, ids: list, tmp_path) -> None:
    """``store`` holds exactly ``base`` under ``ids``, searches it exactly, saves and loads."""
    assert len(store) == len(ids) and store.ids() == ids
    np.testing.assert_array_equal(store.get(ids, include_vectors=True).vectors, base)
    assert_exact(store.search(QUERIES, k=10), base, ids, QUERIES, 10, "L2")
    store.save(tmp_path / "s")
    assert FAISSVectorStore.load(tmp_path / "s").search(QUERIES, k=10) == store.search(QUERIES, k=10)


# Every id of a store of 1,000: 20% of the slots dead, a compaction follows (Flat: at 10%).
REPLACING = list(range(1000)) + list(range(5000, 5000 + N - 1000))


def test_a_compaction_failing_after_a_large_upsert_with_warnings_as_errors_keeps_the_upsert(monkeypatch, tmp_path):
    store, _ = make_store(n=1000)
    x = batch()

    def out_of_memory(self, index, keep):
        raise MemoryError("simulated")

    monkeypatch.setattr(IndexKind, "rebuild", out_of_memory)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeWarning, match="compacting the index after this write failed"):
            store.upsert(REPLACING, x)
    monkeypatch.undo()
    assert_whole(store, x, REPLACING, tmp_path)


def test_an_interrupted_compaction_after_a_large_upsert_keeps_the_upsert(monkeypatch, tmp_path):
    store, _ = make_store(n=1000)
    x = batch()

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(FAISSState, "compact", interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.upsert(REPLACING, x)
    monkeypatch.undo()
    assert_whole(store, x, REPLACING, tmp_path)


def add_interrupted_after_commit(monkeypatch, store: FAISSVectorStore, x: np.ndarray) -> None:
    """``store.add(x)``, interrupted (KeyboardInterrupt) right after the state committed it."""
    real = FAISSState.add

    def then_interrupted(self, *args, **kwargs):
        real(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(FAISSState, "add", then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.add(x)
    monkeypatch.undo()


@pytest.mark.parametrize("index_type", list(FLAT_INDEXES))
def test_an_interrupt_after_a_large_add_has_committed_keeps_the_add(monkeypatch, index_type, tmp_path):
    store, first = make_store(index_type)
    x = batch()
    add_interrupted_after_commit(monkeypatch, store, x)
    assert_whole(store, np.concatenate([first, x]), list(range(50 + N)), tmp_path)
    assert store.add(batch(3)) == [50 + N, 51 + N, 52 + N]


def test_an_interrupt_after_a_large_add_that_trains_keeps_the_add(monkeypatch):
    store = FAISSVectorStore(D, "IVFFlat", nlist=64)  # trains at 39 * 64 vectors
    x = batch()
    add_interrupted_after_commit(monkeypatch, store, x)
    assert store.is_trained and len(store) == store.faiss_index.ntotal == N
    np.testing.assert_array_equal(store.get(list(range(N)), include_vectors=True).vectors, x)
    assert store.add(batch(3)) == [N, N + 1, N + 2] and len(store) == store.faiss_index.ntotal == N + 3


@pytest.mark.parametrize("when", ["before the thread runs", "with the thread running"])
def test_an_interrupt_inside_the_thread_start_leaves_no_add_running(monkeypatch, when):
    store, _ = make_store()
    before = observed(store)
    real = threading.Thread.start

    def start(self):
        if self.name == "parag-add-ahead" and when == "with the thread running":
            real(self)
        if self.name == "parag-add-ahead":
            raise KeyboardInterrupt
        real(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    with pytest.raises(KeyboardInterrupt):
        store.add(batch())
    monkeypatch.undo()
    assert not [t for t in threading.enumerate() if t.name == "parag-add-ahead"]
    assert observed(store) == before
    assert store.add(batch(3)) == [50, 51, 52]


def racing_the_glance(monkeypatch, store: FAISSVectorStore, race: str, saved) -> None:
    """From now on, right after an add's lockless glance (``adds_ahead``) says yes, and before
    it takes the lock, another thread closes ``store`` or loads ``saved`` into it read-only."""
    real = FAISSState.adds_ahead

    def raced(self, x):
        answer = real(self, x)
        other = threading.Thread(target=store.close if race == "close" else lambda: store.load(saved, mmap=True))
        other.start()
        other.join()
        return answer

    monkeypatch.setattr(FAISSState, "adds_ahead", raced)


@pytest.mark.parametrize("race", ["close", "load(mmap=True)"])
def test_a_close_or_read_only_load_racing_a_large_add_still_reports_a_bad_input_first(monkeypatch, race, tmp_path):
    store, _ = make_store()
    store.save(tmp_path / "s")
    racing_the_glance(monkeypatch, store, race, tmp_path / "s")
    with pytest.raises(InvalidMetadataError, match="3 items"):
        store.add(batch(), [{}] * 3)
    with pytest.raises(StoreClosedError if race == "close" else ReadOnlyStoreError):
        store.add(batch())


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("worker", ["late", "dead"])
def test_a_worker_late_or_dead_leaves_the_batch_to_the_call(monkeypatch, worker):
    # The checks may finish before the worker thread has claimed the batch, or the worker may
    # die before it runs (a thread hook failing): the caller then claims the batch and adds
    # it itself. It is never committed unadded, nor added twice.
    store, first = make_store()
    real = Batch._add

    def late(self, index):
        time.sleep(0.3)
        real(self, index)

    def dead(self, index):
        raise SystemExit  # (the thread ends, silently, before the add)

    monkeypatch.setattr(Batch, "_add", late if worker == "late" else dead)
    x = batch()
    assert store.add(x) == list(range(50, 50 + N))
    monkeypatch.undo()
    time.sleep(0.4 if worker == "late" else 0)  # (a late worker that found the batch claimed has ended)
    assert len(store) == store.faiss_index.ntotal == 50 + N
    np.testing.assert_array_equal(store.get(list(range(50 + N)), include_vectors=True).vectors,
                                  np.concatenate([first, x]))


@pytest.mark.parametrize("race", ["close", "load(mmap=True)"])
def test_a_race_with_a_cosine_batch_holding_an_all_zero_row_reports_the_row_first(monkeypatch, race, tmp_path):
    store, _ = make_store(metric="cosine")
    store.save(tmp_path / "s")
    racing_the_glance(monkeypatch, store, race, tmp_path / "s")
    x = batch()
    zero_row(x)
    with pytest.raises(InvalidArgumentError, match="row 7 is all zeros"):
        store.add(x)


def test_a_runtime_error_out_of_the_thread_start_leaves_the_store_consistent(monkeypatch):
    # CPython may report an interrupt inside Thread.start as RuntimeError, the thread running:
    # either the worker claimed the batch (the error goes on, the batch is taken out) or the
    # caller did (the worker adds nothing, the call adds the batch itself). Never both.
    store, first = make_store()
    real = threading.Thread.start

    def start(self):
        real(self)
        if self.name == "parag-add-ahead":
            raise RuntimeError("release unlocked lock")

    monkeypatch.setattr(threading.Thread, "start", start)
    x = batch()
    try:
        added = store.add(x)
    except RuntimeError:
        added = []
    monkeypatch.undo()
    time.sleep(0.2)  # (a worker that found the batch claimed has ended)
    assert len(store) == store.faiss_index.ntotal == 50 + len(added)
    assert added in ([], list(range(50, 50 + N)))
    vectors = np.concatenate([first, x]) if added else first
    np.testing.assert_array_equal(store.get(store.ids(), include_vectors=True).vectors, vectors)


def slow_flat_add(monkeypatch, seconds: float = 0.4) -> None:
    """FAISS's flat add, on the worker, starts ``seconds`` late (a large copy)."""
    real = faiss.IndexFlat.add

    def slow(self, x):
        time.sleep(seconds)
        real(self, x)

    monkeypatch.setattr(faiss.IndexFlat, "add", slow)


def test_a_ctrl_c_while_the_add_waits_for_faiss_takes_the_batch_out(monkeypatch):
    # A real SIGINT on the main thread while it waits for the worker's copy: the wait goes on
    # to the copy's end, then the batch is taken out and the KeyboardInterrupt raised.
    # (Thread.join, interrupted, would have marked the running worker as ended.)
    store, _ = make_store()
    before = observed(store)
    slow_flat_add(monkeypatch)
    main = threading.get_ident()
    timer = threading.Timer(0.15, lambda: signal.pthread_kill(main, signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            store.add(batch())
    finally:
        timer.join()
    monkeypatch.undo()
    assert not [t for t in threading.enumerate() if t.name == "parag-add-ahead"]
    assert observed(store) == before


def test_the_next_write_settles_an_add_ahead_whose_undo_an_interrupt_cut_short(monkeypatch):
    # An interrupt on the undo's first bytecode (before it waits): the worker's copy lands
    # beyond the slot map after the call has raised; the next write takes it out first.
    store, first = make_store()
    slow_flat_add(monkeypatch, 0.3)
    real_stop = Batch.stop
    calls = []

    def cut_short(self):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        real_stop(self)

    monkeypatch.setattr(Batch, "stop", cut_short)
    with pytest.raises(KeyboardInterrupt):
        store.add(batch(), [{}] * 3)  # the metadata's error starts the undo, which is interrupted
    time.sleep(0.5)  # the worker's copy has landed
    assert store.faiss_index.ntotal == 50 + N
    monkeypatch.undo()
    more = batch(3)
    assert store.add(more) == [50, 51, 52]
    assert len(store) == store.faiss_index.ntotal == 53
    np.testing.assert_array_equal(store.get(store.ids(), include_vectors=True).vectors, np.concatenate([first, more]))


def test_no_thread_to_be_had_while_handling_a_ctrl_c_still_adds(monkeypatch):
    # A "flush on Ctrl-C" block: Thread.start fails for want of a thread (no interrupt of its
    # own); the KeyboardInterrupt being handled is not taken for one, and the call adds the batch.
    store, first = make_store()
    real = threading.Thread.start

    def no_thread(self):
        if self.name == "parag-add-ahead":
            raise RuntimeError("can't start new thread")
        real(self)

    monkeypatch.setattr(threading.Thread, "start", no_thread)
    x = batch()
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        assert store.add(x) == list(range(50, 50 + N))
    monkeypatch.undo()
    assert len(store) == store.faiss_index.ntotal == 50 + N
