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
stay in the index beyond the slot map. A window of a few bytecodes, as in the store's lock,
after which the program is being interrupted anyway.
"""

from __future__ import annotations

import threading

import faiss
import numpy as np

from parag._validation import normalised


class Batch:
    """The vectors ``x`` (unchecked) of one add to a store of ``metric``: added ahead by
    :meth:`start`, or when :meth:`vectors` is called.

    Examples
    --------
    >>> index = faiss.IndexFlatL2(2)
    >>> batch = Batch(np.ones((3, 2), np.float32), "L2")
    >>> batch.start(index)
    >>> batch.vectors().shape, batch.started, index.ntotal
    ((3, 2), True, 3)
    """

    def __init__(self, x: np.ndarray, metric: str) -> None:
        self._x, self._metric = x, metric
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        # Who claimed the batch first, the worker (to add it) or the calling thread (so that
        # it never is): dict.setdefault decides in one atomic step, with no lock an interrupt
        # could leak.
        self._claim: dict[str, str] = {}

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
        try:
            thread.start()
        except RuntimeError:
            # No thread to be had (a limit, interpreter shutdown), or an interrupt inside
            # Thread.start that CPython reports so: the claim tells which.
            if self._claim.setdefault("by", "caller") == "worker":
                raise  # (the worker is adding: the caller's undo waits for it)
            self._thread = None  # none began, or one that will find the batch claimed

    def _add(self, index: faiss.Index) -> None:
        if self._claim.setdefault("by", "worker") != "worker":
            return  # stopped before it began
        try:
            # Unchecked values: a bad one is the checks' to report, not a warning's.
            with np.errstate(all="ignore"):
                self._x = normalised(self._x, "vectors", self._metric)
            index.add(self._x)
        except BaseException as e:  # (an all-zero cosine row; memory): raised by vectors()
            self._error = e

    def stop(self) -> None:
        """Make sure that no add of the batch runs any more: one not yet begun never will,
        one under way is waited for (see :meth:`_wait`)."""
        if self._thread is not None:
            self._wait(self._thread, claim=True)

    def vectors(self) -> np.ndarray:
        """The batch as the index takes it (a cosine store's rows unit-length), raising what
        that raises; once added, if it was started (call it before any :meth:`stop`, and
        read ``started`` after it: a worker that died before it began leaves the batch to
        the caller)."""
        if self._thread is not None:
            self._wait(self._thread, claim=False)  # (never claims: the worker, started, will add the batch)
            if self._claim.setdefault("by", "caller") == "worker":
                if self._error is not None:
                    raise self._error
                return self._x
            self._thread = None  # it died before it ran (a failing thread hook): not added
        return normalised(self._x, "vectors", self._metric)

    def _wait(self, thread: threading.Thread, claim: bool) -> None:
        """Wait for the worker to end, unless (``claim``) the batch is claimed before the
        worker claims it. An interrupt does not stop the wait (it is raised afterwards), nor
        does one between the claim and the wait: the index must not be touched while FAISS
        copies into it. (A join, not an event the worker sets: it ends too for a worker that
        died before it ran.)"""
        interrupt: BaseException | None = None
        while True:
            try:
                if not claim or self._claim.setdefault("by", "caller") == "worker":
                    thread.join()
                break
            except Exception:
                raise
            except BaseException as e:  # an interrupt (KeyboardInterrupt, a signal handler's SystemExit)
                interrupt = e
        if interrupt is not None:
            raise interrupt
