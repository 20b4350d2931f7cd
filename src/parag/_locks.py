"""A reader-writer lock: many readers at once, or one writer alone, and no deadlock from
user code that calls back into the store (a callable filter runs under the read lock)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from threading import get_ident

from parag.errors import ReentrantWriteError


class RWLock:
    """Readers share the lock; a writer waits for them and then holds it alone.

    A waiting writer blocks new readers, so a stream of searches cannot starve an ``add``.
    The lock knows which threads hold it, so that a thread calling back into the store
    from inside a call never waits for itself:

    * a thread that holds the lock may read again (at once, even while a writer waits:
      the writer waits for that thread's outer call anyway);
    * a thread that holds the lock may not write: that raises ReentrantWriteError instead
      of waiting forever for its own read to end.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()  # taken directly by readers: cheaper than the Condition's own enter/exit
        self._cond = threading.Condition(self._mutex)
        self._readers: dict[int, int] = {}  # thread ident -> depth of its reads
        self._writer: int | None = None
        self._writers_waiting = 0
        # ``with lock.reading:`` holds the lock shared for the block. One object serves every
        # reader (it keeps no per-hold state): a search creates nothing and calls nothing to take it.
        self.reading = _Reading(self)

    def read(self) -> _Reading:
        """``with lock.read():`` holds the lock shared for the block (as ``lock.reading``)."""
        return self.reading

    @contextmanager
    def write(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._cond:
            if self._writer == me or me in self._readers:
                raise ReentrantWriteError(
                    "the store cannot be changed from inside one of its own calls (e.g. by a callable "
                    "filter during a search): it would wait forever for that call to end. Collect "
                    "the changes and apply them after the call returns"
                )
            self._writers_waiting += 1
            try:
                while self._writer is not None or self._readers:
                    self._cond.wait()
            except BaseException:  # interrupted: readers held back for this writer may go on
                self._cond.notify_all()
                raise
            finally:
                self._writers_waiting -= 1
            self._writer = me
        try:
            yield
        finally:
            with self._cond:
                self._writer = None
                self._cond.notify_all()


class _Reading:
    """Shared holds of an RWLock (a class rather than a generator: every search takes one).
    Any number of threads use the same object at once: the holder is the calling thread."""

    __slots__ = ("_lock",)

    def __init__(self, lock: RWLock) -> None:
        self._lock = lock

    def __enter__(self) -> None:
        lock, me = self._lock, get_ident()
        with lock._mutex:
            readers = lock._readers
            if me not in readers and lock._writer != me:
                while lock._writer is not None or lock._writers_waiting:
                    lock._cond.wait()
            readers[me] = readers.get(me, 0) + 1

    def __exit__(self, *exc: object) -> None:
        lock, me = self._lock, get_ident()
        with lock._mutex:
            depth = lock._readers.pop(me) - 1
            if depth:
                lock._readers[me] = depth
            elif not lock._readers and lock._writers_waiting:
                lock._cond.notify_all()  # only a waiting writer waits for the last reader
