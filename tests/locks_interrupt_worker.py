"""Worker of tests/test_locks.py's interrupted-read test, run as a script with one argument,
``mutex`` or ``wait``: where the read blocks when a real SIGINT interrupts it. Prints ``ok``
when the interrupted read raised KeyboardInterrupt and left no entry for writers to wait for
and the mutex free.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

# tests/ itself: a namespace package "tests" would lose to any regular one installed.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_locks import WAIT, assert_a_writer_gets_it, holding_write, in_function, wait_until  # noqa: E402

from parag._locks import RWLock  # noqa: E402


def sleeping(native_id: int) -> bool:
    """Whether the thread sleeps in the kernel (blocked in a lock's wait), per /proc."""
    try:
        stat = Path(f"/proc/self/task/{native_id}/stat").read_text()
    except OSError:
        return True  # no /proc: rely on the pause below
    return stat.rsplit(")", 1)[1].split()[0] == "S"


def interrupted_read(blocked_in: str) -> None:
    lock = RWLock(locked_reads=False)
    writer, writing, release = holding_write(lock)
    assert writing.wait(WAIT)
    main, main_native = threading.get_ident(), threading.get_native_id()
    holder_release = threading.Event()
    if blocked_in == "mutex":  # another thread holds the mutex, so the read blocks on it
        holder_has_it = threading.Event()

        def hold() -> None:
            with lock._cond:
                holder_has_it.set()
                holder_release.wait(WAIT)

        threading.Thread(target=hold, daemon=True).start()
        assert holder_has_it.wait(WAIT)

    def interrupt() -> None:
        wait_until(lambda: in_function(main, "_wait_for_writers") and sleeping(main_native),
                   "the read blocks in its slow path")
        time.sleep(0.02)  # blocked there, not merely passing through
        signal.pthread_kill(main, signal.SIGINT)
        holder_release.set()

    interrupter = threading.Thread(target=interrupt, daemon=True)
    interrupter.start()
    try:
        with lock.reading:
            sys.exit("the read began while a writer held the lock")
    except KeyboardInterrupt:
        pass
    else:
        sys.exit("the read was not interrupted")
    interrupter.join(WAIT)
    release.set()
    writer.join(WAIT)
    assert_a_writer_gets_it(lock)  # no entry of the interrupted read is left to wait for


if __name__ == "__main__":
    # A shell's background job inherits SIGINT ignored, and Python then keeps it ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    interrupted_read(sys.argv[1])
    print("ok")
