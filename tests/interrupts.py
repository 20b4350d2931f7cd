"""Interrupts (KeyboardInterrupt) where CPython delivers a Ctrl-C: as a Python function is
entered, as a call returns, on a backward jump; never between two bytecodes with no call
between them (CPython 3.11+). No signal can be timed to hit one such point; these put the
interrupt there."""

from __future__ import annotations

import contextlib
import dis
import sys
import threading
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def interrupted(owner: object, name: str, call: int = 1, after: bool = True) -> Iterator[None]:
    """Call number ``call`` of ``owner.name`` raises KeyboardInterrupt: as it returns, its
    work done (``after``: where CPython delivers a Ctrl-C that came during the call), or as
    it is entered (the check of its first bytecode), having done nothing; other calls work."""
    real, calls = getattr(owner, name), []

    def interrupting(*args, **kwargs):
        calls.append(1)
        if len(calls) != call:
            return real(*args, **kwargs)
        if after:
            real(*args, **kwargs)
        raise KeyboardInterrupt

    setattr(owner, name, interrupting)
    try:
        yield
    finally:
        setattr(owner, name, real)


class InterruptAt:
    """A trace function that raises KeyboardInterrupt at the ``target``-th signal check
    point of the code in ``files`` (0: none; ``seen`` counts them): of the functions
    ``names`` only, if given, and only once ``armed`` is set, if given."""

    def __init__(self, target: int, files: tuple[str, ...], names: tuple[str, ...] = (),
                 armed: threading.Event | None = None) -> None:
        self.target, self.files, self.names, self.armed, self.seen = target, files, names, armed, 0
        self._checks: dict = {}

    def run(self, call: Callable[[], object]) -> BaseException | None:
        """``call()`` with this trace function installed (the one there was before, after
        it): the exception it raised (the interrupt, with its traceback), if any."""
        previous = sys.gettrace()
        sys.settrace(self.trace)
        try:
            call()
        except BaseException as e:
            return e
        finally:
            sys.settrace(previous)
        return None

    def trace(self, frame, event, arg):
        code = frame.f_code
        if event != "call" or code.co_filename not in self.files or (self.names and code.co_name not in self.names):
            return None
        if self.armed is not None and not self.armed.is_set():
            return None
        frame.f_trace_opcodes = True
        self._hit()
        return self._local

    def _local(self, frame, event, arg):
        if event == "opcode" and frame.f_lasti in self.points(frame.f_code):
            self._hit()
        return self._local

    def _hit(self) -> None:
        self.seen += 1
        if self.seen == self.target:
            raise KeyboardInterrupt

    def points(self, code) -> set[int]:
        """The offsets in ``code`` where CPython checks for signals (after a call, a backward jump)."""
        if code not in self._checks:
            ops = list(dis.get_instructions(code))
            self._checks[code] = {b.offset for a, b in zip(ops, ops[1:]) if a.opname.startswith("CALL")} | {
                op.offset for op in ops if op.opname.startswith("JUMP_BACKWARD")}
        return self._checks[code]
