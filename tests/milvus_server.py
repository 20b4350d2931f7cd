"""A real Milvus server for tests and benchmarks: PyPI's ``milvus`` 2.3.5 standalone binary.

:func:`milvus_server` starts one in a fresh temporary directory, on the loopback address only
(see ``../shared/notes/milvus-facts.md``), and stops it on exit: SIGTERM, a few seconds, then
SIGKILL of its process group (it ignores a plain SIGTERM); the kernel kills it too if the
process that started it dies. Every port is a free one: the client, health and etcd ports
picked here (etcd through a config file of its own), the others by the wrapper from their
defaults. Starts hold ``flock /tmp/parag-milvus.lock`` until the server answers, so two
sessions never pick the same ports; the servers then run side by side. Authentication is on (user ``root``, password ``Milvus``), so
a wrong token can be tested.

Run it by hand with ``python tests/milvus_server.py`` (prints the URI, stops on Enter).
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOCK = "/tmp/parag-milvus.lock"
TOKEN = "root:Milvus"  # Milvus's default credentials
COMPONENTS = ("rootCoord", "proxy", "queryCoord", "queryNode", "indexNode", "dataCoord", "dataNode")
SETTINGS = {
    # Strong reads wait for the next time tick: 20 ms instead of 200 on the test server.
    "proxy.timeTickInterval": 20,
    # Growing segments get a temporary IVF index by default, which makes a FLAT collection
    # approximate until its segments are sealed; parag's Flat stores promise exact answers.
    "queryNode.segcore.interimIndex.enableIndex": "false",
}


class ServerUnavailable(RuntimeError):
    """The server could not start here (no ``milvus`` package, no free lock, a start failure)."""


@dataclass(frozen=True)
class Server:
    uri: str
    token: str
    directory: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _locked(wait_s: float) -> Iterator[None]:
    with open(LOCK, "a") as f:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ServerUnavailable(f"another Milvus test server held {LOCK} for over {wait_s:.0f} s") from None
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextmanager
def milvus_server(start_timeout_s: float = 120, lock_wait_s: float = 900) -> Iterator[Server]:
    """A running server; raises :class:`ServerUnavailable` when it cannot start."""
    try:
        import milvus
    except ImportError:
        raise ServerUnavailable("the milvus package (the server) is not installed: pip install 'parag[milvus-server]'") from None
    with tempfile.TemporaryDirectory(prefix="parag-milvus-") as tmp, ExitStack() as running:
        with _locked(lock_wait_s):  # ports are picked and bound by one start at a time
            server = _start(milvus, Path(tmp), running, start_timeout_s)
        yield server


def _start(milvus: Any, tmp: Path, running: ExitStack, timeout_s: float) -> Server:
    port, health = free_port(), free_port()
    config = milvus.MilvusServerConfig()
    config.configs.update(data_dir=str(tmp))
    config.resolve_storage()
    config.set("proxy_port", port)
    config.set("authorization_enabled", True)
    for component in COMPONENTS:
        config.set(f"{component}.ip", "127.0.0.1")
    for key, value in SETTINGS.items():
        config.set(key, value)
    # The embedded etcd listens on 2379/2380 unless a config file of its own says otherwise,
    # which the wrapper's template has no key for: it is added to the written milvus.yaml.
    etcd_yaml = tmp / "etcd.yaml"
    client_port, peer_port = free_port(), free_port()
    etcd_yaml.write_text(
        f"name: default\nlisten-client-urls: http://127.0.0.1:{client_port}\n"
        f"advertise-client-urls: http://127.0.0.1:{client_port}\n"
        f"listen-peer-urls: http://127.0.0.1:{peer_port}\n"
        f"initial-advertise-peer-urls: http://127.0.0.1:{peer_port}\n"
        f"initial-cluster: default=http://127.0.0.1:{peer_port}\n"
    )
    config.set("etcd_port", client_port)
    config.resolve()  # writes configs/milvus.yaml
    milvus_yaml = tmp / "configs" / "milvus.yaml"
    text = milvus_yaml.read_text()
    if "  use:\n    embed: true" not in text:
        raise ServerUnavailable("the milvus wrapper's config template changed: cannot point etcd at its ports")
    milvus_yaml.write_text(text.replace("  use:\n    embed: true", f"  config:\n    path: {etcd_yaml}\n  use:\n    embed: true", 1))
    milvus._initialize_data_files(str(tmp))  # unpacks the server binaries
    bin_dir = str(tmp / "bin")
    env = {**os.environ, "DEPLOY_MODE": "STANDALONE", "METRICS_PORT": str(health), "MILVUS_RUN_DIR": str(tmp / "run"),
           "LD_LIBRARY_PATH": bin_dir + ":" + os.environ.get("LD_LIBRARY_PATH", "")}
    log = running.enter_context(open(tmp / "server.log", "wb"))
    process = subprocess.Popen([os.path.join(bin_dir, "milvus"), "run", "standalone"], cwd=tmp, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                               preexec_fn=_die_with_parent)
    running.callback(_stop, process)
    server = Server(f"http://127.0.0.1:{port}", TOKEN, tmp)
    _wait_ready(server, process, timeout_s)
    return server


def _die_with_parent() -> None:
    """In the child: the kernel kills the server if the test process dies (even by SIGKILL)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _wait_ready(server: Server, process: subprocess.Popen, timeout_s: float) -> None:
    from pymilvus import MilvusClient

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (server.directory / "server.log").read_bytes()[-2000:].decode(errors="replace")
            raise ServerUnavailable(f"milvus-server exited with status {process.returncode}: {tail}")
        try:
            MilvusClient(uri=server.uri, token=server.token, timeout=2).list_collections()
            return
        except Exception:  # not listening yet, or not ready
            time.sleep(0.5)
    raise ServerUnavailable(f"milvus-server did not answer within {timeout_s:.0f} s")


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM, up to 3 s, then SIGKILL the whole group (the wrapper's children included)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(3)
        except subprocess.TimeoutExpired:
            pass
    process.wait(10)


if __name__ == "__main__":
    with milvus_server() as s:
        print(s.uri, s.token, flush=True)
        if sys.stdin.isatty():
            input("Enter stops the server\n")
        else:
            time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 3600)
