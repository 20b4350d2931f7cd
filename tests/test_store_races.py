"""Races between a store's reads and its writes, made deterministic: a thread is paused with
an Event in a hook at the point the race needs, never timed, and every wait has a bound (a
broken lock fails the test rather than hanging the suite)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from parag._locks import RWLock
from parag._slots import SlotMap
from parag.errors import DuplicateIdError
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
