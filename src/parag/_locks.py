"""A reader-writer lock: many readers at once, or one writer alone, and no deadlock from
user code that calls back into the store (a callable filter runs under the read lock)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from threading import get_ident

from parag.errors import ReentrantWriteError

#: Whether a GIL makes each list append or remove and each attribute read atomic and ordered.
GIL_ENABLED: bool = getattr(sys, "_is_gil_enabled", lambda: True)()


class RWLock:
    """Readers share the lock; a writer waits for them and then holds it alone.

    A waiting writer blocks new readers, so a stream of searches cannot starve an ``add``.
    The lock knows which threads hold it, so that a thread calling back into the store
    from inside a call never waits for itself:

    * a thread that holds the lock may read again (at once, even while a writer waits:
      the writer waits for that thread's outer call anyway);
    * a thread that holds the lock may not write: that raises ReentrantWriteError instead
      of waiting forever for its own read to end.

    Every search takes the read lock, so a read takes no mutex unless a writer is about:
    a reader appends its thread id to ``_readers`` and then looks at ``_writing`` (writers
    waiting or writing); a writer counts itself in ``_writing`` and then waits for
    ``_readers`` to empty. Each step is one bytecode, atomic under the GIL, so at least
    one of the two sees the other: the reader steps back and waits, or the writer waits
    for the reader (Dekker's handshake). Only then do they meet at the mutex.

    Without a GIL (free-threaded CPython) that argument does not hold, so there readers
    take the mutex to register and to leave (``locked_reads``; the default follows the
    interpreter).

    A KeyboardInterrupt lands where CPython checks for signals: as a Python function is
    entered, as a call returns, on a backward jump. A waiting writer re-checks every 50 ms,
    so a reader interrupted between leaving and waking it delays it at most that; an
    interrupted slow-path read removes its own entry; an interrupt that lands inside the
    mutex's ``__enter__``, after the acquisition, never leaves it held (``_guarded``); and a
    write interrupted anywhere in :meth:`write`'s own frames, taking or releasing the lock,
    releases it (a Ctrl-C interrupts once, so the clean-up after one runs to its end). What
    is left: an interrupt as a reader's ``__enter__`` registers it, or as its ``__exit__`` is
    entered (either reading class), leaves its entry behind (writers then wait for a read that never ends): a window of a
    few bytecodes on the path every search takes, which a class-based ``with`` cannot close.
    And one in contextlib's frames, as :meth:`write`'s ``with`` begins or ends, leaves the
    write suspended, and held, for as long as the interrupt's traceback lives (closed with
    it; an interactive session keeps the last one).
    """

    def __init__(self, locked_reads: bool = not GIL_ENABLED) -> None:
        # Reentrant so that an interrupted read can release a hold its KeyboardInterrupt leaked
        # (``_abandon_read``); only slow paths take it, so the cost does not show.
        self._cond = threading.Condition(threading.RLock())
        self._readers: list[int] = []  # thread id of each read held (twice for a nested read)
        self._writing = 0  # writers waiting or writing: new readers step back while it is not 0
        self._writer: int | None = None
        # ``with lock.reading:`` holds the lock shared for the block. One object serves every
        # reader (it keeps no per-hold state): a search creates nothing and calls nothing to take it.
        self.reading: _Reading | _LockedReading = _LockedReading(self) if locked_reads else _Reading(self)
        # ``with self._guarded:`` holds the mutex for the block (one object for every thread, as
        # ``reading``: the holds are the mutex's own).
        self._guarded = _Guarded(self)

    def read(self) -> _Reading | _LockedReading:
        """``with lock.read():`` holds the lock shared for the block (as ``lock.reading``)."""
        return self.reading

    @contextmanager
    def write(self) -> Iterator[None]:
        """``with lock.write():`` holds the lock alone for the block (ReentrantWriteError in a
        thread that holds it already)."""
        me, acquired = get_ident(), False
        try:
            try:
                with self._guarded:
                    if self._writer == me or me in self._readers:
                        raise ReentrantWriteError(
                            "the store cannot be changed from inside one of its own calls (e.g. by a callable "
                            "filter during a search): it would wait forever for that call to end. Collect "
                            "the changes and apply them after the call returns"
                        )
                    self._writing += 1
                    try:
                        while self._writer is not None or self._readers:
                            # A timeout: a reader interrupted between leaving and waking this writer
                            # must not leave it waiting forever (see the class docstring).
                            self._cond.wait(0.05)
                    except BaseException:  # interrupted: readers held back for this writer may go on
                        # (Condition.wait, interrupted just after it let the mutex go, raises without
                        # it: take it, again if need be; the mutex's block releases every hold.)
                        self._cond.acquire()
                        self._writing -= 1
                        self._cond.notify_all()
                        raise
                    self._writer, acquired = me, True  # (one statement: no interrupt between)
            except BaseException:  # an interrupt as the mutex's block ended may leave it held
                self._release_leaked()
                raise
            yield
        finally:
            if acquired:
                try:
                    self._end_write(me)
                except BaseException:  # interrupted on the way: release the mutex, retry (a Ctrl-C interrupts once)
                    self._release_leaked()
                    self._end_write(me)
                    raise

    def _end_write(self, me: int) -> None:
        """Release the write held by thread ``me``, if it still holds it, and wake the threads
        waiting for it (again, if it did before: a retry after an interrupt changes nothing)."""
        with self._guarded:
            if self._writer == me:
                self._writer, self._writing = None, self._writing - 1  # (one statement: no interrupt between)
            self._cond.notify_all()

    def _wait_for_writers(self) -> None:
        """The slow path of a read that found a writer about (its id already in ``_readers``):
        step back until no writer waits or writes, unless this thread holds the lock already."""
        me = get_ident()
        with self._guarded:
            if self._writer == me or self._readers.count(me) > 1:
                return  # a nested read: the writer waits for the outer one anyway
            self._readers.remove(me)
            if not self._readers:
                self._cond.notify_all()  # the writer may have been waiting for this reader
            while self._writing:
                self._cond.wait()  # (interrupted here, the read has not begun: nothing to undo)
            self._readers.append(me)

    def _wake_writer(self) -> None:
        with self._guarded:
            self._cond.notify_all()

    def _abandon_read(self) -> None:
        """Undo an interrupted slow-path read: remove one entry of this thread if there is
        one. It is this read's: a nested read never removes its entry, and a read that is
        not nested has no other entry of this thread."""
        me = get_ident()
        with self._guarded:
            if me in self._readers:
                self._readers.remove(me)
                self._cond.notify_all()

    def _release_leaked(self) -> None:
        """Release every hold of the mutex this thread has. Called only where this thread
        holds it nowhere legitimately (no user code ever runs under the mutex), so any hold
        left is one an interrupt leaked."""
        while True:
            try:
                self._cond.release()
            except RuntimeError:  # not held by this thread
                return


class _Guarded:
    """``with lock._guarded:`` is ``with lock._cond:`` that never leaves the mutex held: an
    interrupt inside the mutex's ``__enter__``, after the acquisition, escapes with it held
    (``with`` never took charge of it), and every other thread would wait for ever. A class
    rather than a generator: on a free-threaded build every read takes it twice."""

    __slots__ = ("_lock",)

    def __init__(self, lock: RWLock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        lock = self._lock
        try:
            lock._cond.__enter__()
        except BaseException:  # perhaps after the acquisition: release what it leaked
            lock._release_leaked()
            raise

    def __exit__(self, *exc: object) -> None:
        lock = self._lock
        if exc[0] is not None:
            # The block raised: an interrupt may have leaked a hold, or, inside Condition.wait,
            # left the mutex released (a release would raise RuntimeError over the interrupt).
            lock._release_leaked()
            return
        try:
            lock._cond.__exit__(*exc)
        except BaseException:  # interrupted inside the release: leave no hold behind
            lock._release_leaked()
            raise


class _Reading:
    """Shared holds of an RWLock (a class rather than a generator: every search takes one).
    Any number of threads use the same object at once: the holder is the calling thread."""

    __slots__ = ("_lock",)

    def __init__(self, lock: RWLock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        lock = self._lock
        lock._readers.append(get_ident())  # first register, then look for writers (see RWLock)
        if lock._writing:
            try:
                lock._wait_for_writers()
            except BaseException:  # interrupted (KeyboardInterrupt): the read never began
                lock._abandon_read()
                raise

    def __exit__(self, *exc: object) -> None:
        lock = self._lock
        readers = lock._readers
        readers.remove(get_ident())
        if lock._writing and not readers:
            lock._wake_writer()  # only a waiting writer waits for the last reader


class _LockedReading:
    """Shared holds of an RWLock that register under its mutex (free-threaded Python)."""

    __slots__ = ("_lock",)

    def __init__(self, lock: RWLock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        lock, me = self._lock, get_ident()
        with lock._guarded:
            if lock._writer != me and me not in lock._readers:  # a nested read does not wait
                while lock._writing:
                    lock._cond.wait()
            lock._readers.append(me)

    def __exit__(self, *exc: object) -> None:
        lock = self._lock
        with lock._guarded:
            lock._readers.remove(get_ident())
            if lock._writing and not lock._readers:
                lock._cond.notify_all()
