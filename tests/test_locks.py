"""RWLock with real threads: readers share it, a writer holds it alone, and a read or a
leave interrupted (KeyboardInterrupt, a real SIGINT) leaves no writer waiting for ever."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from parag._locks import RWLock

WORKER = Path(__file__).with_name("locks_interrupt_worker.py")
WAIT = 10  # seconds a step may take on a loaded machine before the test calls it stuck


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"stuck: {what}"
        time.sleep(0.001)


def in_function(thread_id: int, name: str) -> bool:
    """Whether the thread is (blocked) inside a function of this name."""
    frame = sys._current_frames().get(thread_id)
    while frame is not None:
        if frame.f_code.co_name == name:
            return True
        frame = frame.f_back
    return False


def holding_write(lock: RWLock) -> tuple[threading.Thread, threading.Event, threading.Event]:
    """A thread that takes the write lock and holds it until ``release`` is set."""
    inside, release = threading.Event(), threading.Event()

    def write() -> None:
        with lock.write():
            inside.set()
            release.wait(WAIT)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread, inside, release


def assert_a_writer_gets_it(lock: RWLock) -> None:
    thread, inside, release = holding_write(lock)
    release.set()
    assert inside.wait(WAIT), "a writer waits for a read that has ended"
    thread.join(WAIT)


@pytest.mark.parametrize("locked_reads", [False, True])
def test_readers_share_and_a_writer_excludes_them(locked_reads: bool) -> None:
    lock = RWLock(locked_reads=locked_reads)
    inside: list[str] = []
    all_in, leave = threading.Barrier(3, timeout=WAIT), threading.Event()

    def read() -> None:
        with lock.reading:
            inside.append("r")
            all_in.wait()  # two readers hold it at once
            leave.wait(WAIT)
            with lock.read():  # a nested read does not wait for the waiting writer
                inside.remove("r")

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    all_in.wait()
    writer, writing, release = holding_write(lock)
    wait_until(lambda: in_function(writer.ident, "write"), "the writer starts")
    time.sleep(0.05)
    assert not writing.is_set()  # it waits for the readers
    leave.set()
    assert writing.wait(WAIT)
    assert inside == []  # the readers had left
    late = threading.Thread(target=lambda: lock.reading.__enter__() or inside.append("late"))
    late.start()
    time.sleep(0.05)
    assert inside == []  # a reader waits while the writer holds it
    release.set()
    wait_until(lambda: inside == ["late"], "the late reader enters once the writer is done")
    for t in (*readers, writer, late):
        t.join(WAIT)


def test_a_reader_that_leaves_without_waking_the_writer_delays_it_only_briefly() -> None:
    """The state a KeyboardInterrupt leaves between a reader's leaving and its waking the writer."""
    lock = RWLock(locked_reads=False)
    lock.reading.__enter__()
    writer, writing, release = holding_write(lock)
    wait_until(lambda: in_function(writer.ident, "write"), "the writer starts")
    lock._readers.remove(threading.get_ident())  # left, and interrupted before the wake-up
    assert writing.wait(WAIT), "the writer was never woken"
    release.set()
    writer.join(WAIT)


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs pthread_kill")
@pytest.mark.parametrize("blocked_in", ["mutex", "wait"])
def test_an_interrupted_slow_read_leaves_no_entry(blocked_in: str) -> None:
    """A read that found a writer about is interrupted by SIGINT where it waits: on the
    mutex (its entry still registered) or for the writer (its entry withdrawn). In a child
    process (tests/locks_interrupt_worker.py), so that the signal reaches no one else and a
    hang is a failure, not a stuck suite."""
    try:
        run = subprocess.run([sys.executable, str(WORKER), blocked_in], capture_output=True, text=True,
                             timeout=6 * WAIT)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the interrupted read hung: {e.stdout!r} {e.stderr!r}")
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stdout + run.stderr


class InterruptingMutex:
    """An RLock whose ``__enter__``, once armed, raises KeyboardInterrupt after acquiring: the
    state a real interrupt leaves when it lands there, which no signal can be timed to hit
    (the stop 19 CI hang: the mutex stayed held, and the read's clean-up waited for it)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.armed = False

    def __enter__(self) -> bool:
        self._lock.acquire()
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt
        return True

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def __getattr__(self, name: str):  # acquire, release and what Condition asks of an RLock
        return getattr(self._lock, name)


def interrupting(locked_reads: bool) -> tuple[RWLock, InterruptingMutex]:
    lock, mutex = RWLock(locked_reads=locked_reads), InterruptingMutex()
    lock._cond = threading.Condition(mutex)
    return lock, mutex


def assert_free(lock: RWLock) -> None:
    """Another thread writes, then this one reads: nothing holds the mutex or an entry."""
    assert_a_writer_gets_it(lock)
    with lock.reading:
        pass


@pytest.mark.parametrize("locked_reads", [False, True])
def test_an_interrupt_inside_the_mutex_enter_of_a_write_leaves_it_free(locked_reads: bool) -> None:
    lock, mutex = interrupting(locked_reads)
    mutex.armed = True
    with pytest.raises(KeyboardInterrupt):
        with lock.write():
            pytest.fail("the write began")
    assert_free(lock)


def test_an_interrupt_inside_the_mutex_enter_of_a_slow_read_leaves_it_free() -> None:
    lock, mutex = interrupting(False)
    writer, writing, release = holding_write(lock)
    assert writing.wait(WAIT)
    mutex.armed = True
    with pytest.raises(KeyboardInterrupt):
        with lock.reading:
            pytest.fail("the read began while a writer held the lock")
    release.set()
    writer.join(WAIT)
    assert_free(lock)


def test_an_interrupt_inside_the_mutex_enter_of_a_leaving_reader_leaves_it_free() -> None:
    """The last reader leaving wakes the waiting writer under the mutex (``_wake_writer``)."""
    lock, mutex = interrupting(False)
    lock.reading.__enter__()
    writer, writing, release = holding_write(lock)
    wait_until(lambda: lock._writing == 1, "the writer waits")
    mutex.armed = True
    with pytest.raises(KeyboardInterrupt):
        lock.reading.__exit__(None, None, None)
    assert writing.wait(WAIT), "the writer never got the lock"
    release.set()
    writer.join(WAIT)
    assert_free(lock)


def test_an_interrupt_inside_the_mutex_enter_of_a_locked_read_leaves_it_free() -> None:
    lock, mutex = interrupting(True)
    mutex.armed = True
    with pytest.raises(KeyboardInterrupt):
        with lock.reading:
            pytest.fail("the read began")
    assert_free(lock)
