"""Races between a store's reads, its writes and its loads, made deterministic: a thread is
paused with an Event in a hook at the point the race needs, never timed, and every wait has
a bound (a broken lock fails the test rather than hanging the suite); or the other call runs
in that hook itself, on the same thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import parag.tuning
import parag.vectorstore.faiss_reads as faiss_reads
import parag.vectorstore._write_input as write_input
from parag._locks import RWLock
from parag._slots import SlotMap
from parag.errors import (
    DimensionMismatchError,
    DuplicateIdError,
    InvalidArgumentError,
    ReentrantWriteError,
    StoreClosedError,
)
from parag.metadata import MetadataStore
from parag.vectorstore import FAISSVectorStore

D = 4
WAIT = 10  # seconds; each wait returns as soon as its event comes


class WatchedLock(RWLock):
    """A store's lock that counts the reads it holds and says when a writer has asked for it."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.writer_asked = threading.Event()
        self.reading = _Counted(self.reading, self)  # type: ignore[assignment]

    @contextmanager
    def write(self) -> Iterator[None]:
        self.writer_asked.set()
        with super().write():
            yield


class _Counted:
    """A lock's shared hold that keeps the lock's count of reads held."""

    def __init__(self, hold: object, lock: WatchedLock) -> None:
        self.hold, self.lock = hold, lock

    def __enter__(self) -> None:
        self.hold.__enter__()  # type: ignore[attr-defined]
        self.lock.reads += 1

    def __exit__(self, *exc: object) -> None:
        self.lock.reads -= 1
        self.hold.__exit__(*exc)  # type: ignore[attr-defined]


def test_an_in_that_builds_the_id_lookup_while_an_add_runs_loses_no_id(monkeypatch):
    # The first ``in`` builds the id -> slot dict from the slots it reads; an add that ran
    # between that read and the dict's installation would be missing from it for good (not
    # found, then stored twice). The ``in`` thread is paused inside the build; the add then
    # goes as far as the store lets it before the build goes on.
    store = FAISSVectorStore(D)
    store.add(np.eye(D))  # ids 0-3; the dict is not built yet
    lock = store._lock = WatchedLock()
    paused, resume, locked_during_build = threading.Event(), threading.Event(), []
    real = SlotMap._slot_ids

    def pausing(slots: SlotMap) -> np.ndarray:
        view = real.fget(slots)  # the slots as they are now: the build's first read
        if threading.current_thread().name == "in" and not paused.is_set():
            locked_during_build.append(lock.reads > 0)
            paused.set()
            resume.wait(WAIT)
        return view

    monkeypatch.setattr(SlotMap, "_slot_ids", property(pausing))
    found: list[bool] = []
    reader = threading.Thread(target=lambda: found.append(2 in store), name="in", daemon=True)
    writer = threading.Thread(target=lambda: store.add(np.ones(D), ids=[10]), daemon=True)
    reader.start()
    assert paused.wait(WAIT)
    writer.start()
    if locked_during_build[0]:
        assert lock.writer_asked.wait(WAIT)  # the add now waits for the read to end
    else:
        writer.join(WAIT)  # nothing holds the add back: it completes inside the build
    resume.set()
    reader.join(WAIT)
    writer.join(WAIT)
    assert not reader.is_alive() and not writer.is_alive() and found == [True]
    assert 10 in store and store.get([10]).ids == [10]
    with pytest.raises(DuplicateIdError):
        store.add(np.ones(D), ids=[10])
    assert store.ids() == [0, 1, 2, 3, 10]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[int, int], Path]:
    """Saved stores of 20 random vectors, by (dimension, seed); L2, but (4, 3) cosine. Saved
    once: a save fsyncs."""
    paths = {}
    for dimension, seed in [(4, 1), (4, 2), (8, 2), (4, 3)]:
        store = FAISSVectorStore(dimension, metric="cosine" if seed == 3 else "L2")
        store.add(np.random.default_rng(seed).standard_normal((20, dimension)), [{"seed": seed}] * 20)
        paths[dimension, seed] = tmp_path_factory.mktemp("saved") / "store"
        store.save(paths[dimension, seed])
    return paths


def swapping_first(monkeypatch: pytest.MonkeyPatch, module: ModuleType, check: str,
                   store: FAISSVectorStore, path: Path | None) -> None:
    """Make ``module.check``, which a call runs after checking its input and before taking the
    lock, first load ``path`` into ``store`` (None: close it), once: a load racing the call."""
    real, done = getattr(module, check), []

    def swapping(*args: object, **kwargs: object) -> object:
        if not done:
            done.append(True)
            if path is None:
                store.close()
            else:
                store.load(path)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, check, swapping)


@pytest.mark.parametrize("query", ["one", "batch"])
def test_a_search_raced_by_a_load_of_another_dimension_checks_its_query_again(saved, monkeypatch, query):
    # Checked against 4 dimensions, the query met an 8-dimensional index: FAISS read past its
    # end (one query) or failed an assertion (a batch). It is now checked against the store loaded.
    store = FAISSVectorStore.load(saved[4, 1])
    swapping_first(monkeypatch, faiss_reads, "check_include", store, saved[8, 2])
    with pytest.raises(DimensionMismatchError):
        store.search(np.ones(4) if query == "one" else np.ones((3, 4)), k=3, include=["metadata"])
    assert store.dimension == 8 and len(store.search(np.ones(8), k=3).ids) == 3


def test_a_search_raced_by_a_load_answers_from_the_store_loaded(saved, monkeypatch):
    other = saved[4, 2]
    store = FAISSVectorStore.load(saved[4, 1])
    swapping_first(monkeypatch, faiss_reads, "check_include", store, other)
    got = store.search(np.ones(4), k=3, include=["metadata"])
    assert got == FAISSVectorStore.load(other).search(np.ones(4), k=3, include=["metadata"])
    assert got.metadata == [{"seed": 2}] * 3


def test_a_search_raced_by_close_raises_store_closed_error(saved, monkeypatch):
    store = FAISSVectorStore.load(saved[4, 1])
    swapping_first(monkeypatch, faiss_reads, "check_include", store, None)
    with pytest.raises(StoreClosedError):
        store.search(np.ones(4), k=3, include=["metadata"])


WRITES = {  # a write, and a check it runs between its input's and its lock
    "add": (lambda s: s.add(np.ones((2, 4)), documents=["a", "b"]), write_input, "check_documents"),
    "upsert": (lambda s: s.upsert([0, 99], np.ones((2, 4))), write_input, "check_documents"),
    "tune": (lambda s: s.tune(np.ones((2, 4))), parag.tuning, "check_target"),
}


@pytest.mark.parametrize("other", [(8, 2), (4, 3)], ids=["dimension", "metric"])
@pytest.mark.parametrize("write", list(WRITES))
def test_a_write_raced_by_a_load_of_another_dimension_is_refused_and_changes_nothing(saved, monkeypatch, write, other):
    # Checked against 4 dimensions, the vectors met an 8-dimensional index (FAISS's
    # AssertionError, not a parag error); not normalised, they met a cosine one. Now the
    # write is refused, saying to call again.
    call, module, check = WRITES[write]
    store = FAISSVectorStore.load(saved[4, 1])
    swapping_first(monkeypatch, module, check, store, saved[other])
    with pytest.raises(InvalidArgumentError, match="reloaded with another dimension or metric .* call again"):
        call(store)
    expected, q = FAISSVectorStore.load(saved[other]), np.ones(other[0])
    assert store.ids() == expected.ids() and store.search(q, k=5) == expected.search(q, k=5)


@pytest.mark.parametrize("write", list(WRITES))
def test_a_write_raced_by_a_load_of_the_same_dimension_and_metric_goes_on(saved, monkeypatch, write):
    # Every load makes a new index kind, and the kinds were compared by identity: a load of a
    # store configured alike refused the write, "reloaded with another configuration"
    # (review-0045 F3). Its input's checks still hold: it goes on, on the store loaded.
    call, module, check = WRITES[write]
    expected = FAISSVectorStore.load(saved[4, 2])
    call(expected)
    store = FAISSVectorStore.load(saved[4, 1])
    swapping_first(monkeypatch, module, check, store, saved[4, 2])
    call(store)
    assert store.get(store.ids()) == expected.get(expected.ids())
    assert store.search(np.ones(4), k=5) == expected.search(np.ones(4), k=5)


BIG = {"text": "x" * 20_000}  # 60 rows of it: 1.2 MB, past the 1 MiB a tidy waits for
TIDYING = {  # a write that rewrites the metadata buffer (tidy, or compaction's keep): its ids kept
    "update_metadata": (lambda s: s.update_metadata(list(range(60)), [{"n": i} for i in range(60)]), range(60)),
    "upsert": (lambda s: s.upsert(list(range(60)), np.ones((60, D)), [{"n": i} for i in range(60)]), range(60)),
    "delete": (lambda s: s.delete(list(range(55))), range(55, 60)),
    "compact": (lambda s: s.compact(), range(3, 60)),
}


@pytest.mark.parametrize("write", list(TIDYING))
def test_the_metadata_rewrite_after_a_write_runs_under_its_write_lock(monkeypatch, write):
    # update_metadata tidied (rewrote) the buffer after releasing the lock: a second writer
    # appended rows the rewrite then dropped, or hit BufferError, and readers parsed torn
    # JSON (review-0045 F1). Here another write runs in the rewrite itself, on the same thread,
    # at its last moment (the new buffer built, not yet installed): under the write lock it
    # is refused (ReentrantWriteError), and so would any other thread's read or write wait.
    call, kept = TIDYING[write]
    store = FAISSVectorStore(D)
    store.add(np.random.default_rng(0).standard_normal((60, D)), [BIG] * 60)
    if write == "compact":
        store.delete([0, 1, 2])  # 5% dead: no compaction, no tidy yet
    expected = {i: {"n": i} if write in ("update_metadata", "upsert") else BIG for i in kept}
    real, seen = MetadataStore._use, []

    def interrupted(meta: MetadataStore, *args: object) -> None:
        if not seen:
            seen.append(store._lock._writer == threading.get_ident())  # the write lock, held by this write
            try:
                store.update_metadata([59], {"n": "lost"})
            except ReentrantWriteError as e:
                seen.append(e)
        real(meta, *args)

    monkeypatch.setattr(MetadataStore, "_use", interrupted)
    call(store)
    assert seen[0] is True and isinstance(seen[1], ReentrantWriteError), seen
    got = store.get(list(kept))
    assert dict(zip(got.ids, got.metadata)) == expected
