"""The vectors of one add on their way into the index, copied in by FAISS on a second
thread while the add checks its input, where that is safe.

A flat float32 index's add is a copy, which FAISS makes with the GIL released, and
:meth:`~parag.vectorstore.kinds.IndexKind.remove_tail` takes it back exactly. So a large batch
need not wait for its checks (the vectors' values, the metadata's types, the ids): they run
beside the copy, and a check that fails takes the vectors out again. On two cores this hides
nearly all of an add's checking behind FAISS's own copy. Any other index is changed by what it
is given (a graph links it, a quantizer encodes it) and is added to only after the checks.

What an interrupt (Ctrl-C) can still do: land on the very first bytecodes of the undo (the
with statement's exit, :meth:`Batch.stop`), before it waits; the vectors FAISS is copying then
stay in the index beyond the slot map until the store's next write takes them out
(``FAISSState.settle``). A window of a few bytecodes, as in the store's lock, after which the
program is being interrupted anyway. (No wait here is a ``Thread.join``: CPython 3.11's
join, interrupted, marks a thread that still runs as ended.)
"""

from __future__ import annotations

import sys
import threading

import faiss
import numpy as np

from parag._validation import normalised


class Batch:
    """The vectors ``x`` (unchecked) of one add to a store of ``metric``: added ahead by
    :meth:`start`, or when :meth:`vectors` is called.

    The worker thread and the calling thread each claim the batch (``dict.setdefault``: one
    atomic step, no lock for an interrupt to leak); whoever claims it first decides: the
    worker adds it, or the caller does (a worker slow to start, or dead) and the worker
    then never will.

    Examples
    --------
    >>> index = faiss.IndexFlatL2(2)
    >>> batch = Batch(np.ones((3, 2), np.float32), "L2")
    >>> batch.start(index)
    >>> batch.vectors().shape, index.ntotal
    ((3, 2), 3)
    """

    def __init__(self, x: np.ndarray, metric: str) -> None:
        self._x, self._metric = x, metric
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._claim: dict[str, str] = {}
        # The worker's end: _ended set, then _running released. A bare lock, not an Event: an
        # interrupt inside Event.wait, just after it took the Condition's lock, leaves that
        # lock held, and the retry (and the worker's set()) would wait for it for ever.
        self._ended = False
        self._running = threading.Lock()
        self._running.acquire()

    @property
    def started(self) -> bool:
        """Whether FAISS adds (or has added) the batch ahead (read it after :meth:`vectors`)."""
        return self._thread is not None

    def start(self, index: faiss.Index) -> None:
        """Add the batch to ``index`` on a second thread; if no thread can be had, leave it
        to :meth:`vectors` (``started`` stays False). ``started`` is True from before the
        thread starts: an interrupt inside ``Thread.start``, the thread already running,
        still leaves it to :meth:`stop`."""
        thread = threading.Thread(target=self._add, args=(index,), name="parag-add-ahead", daemon=True)
        self._thread = thread
        outer = sys.exc_info()[1]  # an exception the caller is handling: not an interrupt of start()
        try:
            thread.start()
        except RuntimeError as e:
            # No thread to be had (a limit, interpreter shutdown), or an interrupt inside
            # Thread.start that CPython reports so: the claim settles who adds the batch.
            interrupt = _interrupt_in(e) if e.__context__ is not outer else None
            if self._claim.setdefault("by", "caller") == "worker":
                if interrupt is not None:
                    raise interrupt from None
                raise  # (the worker is adding it: the caller's undo waits for it)
            self._thread = None
            if interrupt is not None:
                raise interrupt from None

    def _add(self, index: faiss.Index) -> None:
        try:
            if self._claim.setdefault("by", "worker") != "worker":
                return  # the caller claimed it first
            with np.errstate(all="ignore"):
                self._x = normalised(self._x, "vectors", self._metric)
            index.add(self._x)
        except BaseException as e:  # (an all-zero cosine row; memory; a hook): raised by vectors()
            self._error = e
        finally:
            self._ended = True
            self._running.release()

    def stop(self) -> None:
        """Make sure that no add of the batch runs any more: one not yet begun never will,
        one under way is waited for (see :meth:`_settle`)."""
        if self._thread is not None:
            self._settle()

    def vectors(self) -> np.ndarray:
        """The batch as the index takes it (a cosine store's rows unit-length), raising what
        that raises; once added, if the worker added it. Read ``started`` after it: False if
        the batch is the caller's to add after all."""
        if self._thread is not None:
            if self._settle():
                if self._error is not None:
                    raise self._error
                return self._x
            self._thread = None  # claimed by the caller first: not added
        return normalised(self._x, "vectors", self._metric)

    def _settle(self) -> bool:
        """Claim the batch for the caller unless the worker has it; then wait for the
        worker's add to end. True if the worker has the batch. An interrupt does not stop
        the claim or the wait (it is raised afterwards): the index must not be touched while
        FAISS copies into it."""
        interrupt: BaseException | None = None
        while True:
            try:
                worker = self._claim.setdefault("by", "caller") == "worker"
                while worker and not self._ended:
                    self._running.acquire()  # (interrupted after it: _ended is True, no second acquire)
                    self._running.release()
                break
            except BaseException as e:
                interrupt = _interrupt_in(e)
                if interrupt is None:
                    raise
        if interrupt is not None:
            raise interrupt
        return worker


def _interrupt_in(e: BaseException) -> BaseException | None:
    """The interrupt (KeyboardInterrupt, a signal handler's SystemExit) that ``e`` is, or
    that it stands for (CPython's lock code reports some interrupts as a RuntimeError raised
    while handling them); None for any other error."""
    if not isinstance(e, Exception):
        return e
    context = e.__context__
    return context if context is not None and not isinstance(context, Exception) else None
