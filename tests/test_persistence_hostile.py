"""A store directory crafted by a stranger: links, FIFOs, devices and directories where files
belong, a lock file pointing elsewhere. A load never leaves the store directory, never hangs,
never creates a file through a link; a save that the file system fails raises StoreWriteError
and leaves nothing behind."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from parag import FAISSVectorStore, persistence
from parag.errors import (
    CorruptStoreError,
    InvalidArgumentError,
    InvalidTypeError,
    ParagError,
    StoreNotFoundError,
    StoreReadError,
    StoreWriteError,
)

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX links, FIFOs and mounts")


def make_store(n: int = 50) -> FAISSVectorStore:
    store = FAISSVectorStore(4)
    store.add(np.random.default_rng(0).standard_normal((n, 4)), [{"i": i} for i in range(n)])
    return store


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    make_store().save(tmp_path / "s")
    return tmp_path / "s"


def data_file(path: Path, role: str) -> Path:
    return path / orjson.loads((path / "manifest.json").read_bytes())["files"][role]["name"]


def load_within(path: Path, seconds: float = 20, **options: Any) -> BaseException | FAISSVectorStore:
    """Load in a thread, failing the test if it does not finish in time (a FIFO would block)."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(FAISSVectorStore.load(path, **options))
        except BaseException as e:  # noqa: BLE001 - handed to the test
            outcome.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "load hung"
    return outcome[0]


def replace_with(target: Path, make: Callable[[Path], None]) -> None:
    target.unlink()
    make(target)


OUTSIDE = "outside-secret.bin"
REPLACEMENTS: dict[str, Callable[[Path], None]] = {
    "link to a copy outside": lambda p: p.symlink_to(p.parent.parent / OUTSIDE),
    "link to a FIFO": lambda p: (os.mkfifo(p.parent.parent / "fifo"), p.symlink_to(p.parent.parent / "fifo")),
    "FIFO": lambda p: os.mkfifo(p),
    "directory": lambda p: p.mkdir(),
    "link to /dev/zero": lambda p: p.symlink_to("/dev/zero"),
    "dangling link": lambda p: p.symlink_to(p.parent / "nowhere"),
}


@pytest.mark.parametrize("role", ["manifest", "index", "ids", "metadata"])
@pytest.mark.parametrize("kind", list(REPLACEMENTS))
@pytest.mark.parametrize("options", [{}, {"verify": False}, {"mmap": True}])
def test_data_files_must_be_regular_files_in_the_directory(saved: Path, role: str, kind: str, options: dict) -> None:
    target = saved / "manifest.json" if role == "manifest" else data_file(saved, role)
    shutil.copy(target, saved.parent / OUTSIDE)  # same bytes: only where they live differs
    replace_with(target, REPLACEMENTS[kind])
    outcome = load_within(saved, **options)
    assert isinstance(outcome, CorruptStoreError), outcome
    assert str(target) in str(outcome)


def test_a_lock_file_link_is_never_followed(saved: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim-created-by-parag"
    (saved / ".parag.lock").unlink()
    (saved / ".parag.lock").symlink_to(victim)
    loaded = load_within(saved)
    assert isinstance(loaded, FAISSVectorStore) and len(loaded) == 50  # loads; just does not tidy up
    assert not victim.exists()
    with pytest.raises(CorruptStoreError, match="symbolic link"):
        loaded.save(saved)
    assert not victim.exists()
    assert len(FAISSVectorStore.load(saved)) == 50


@pytest.mark.parametrize("name", ["../index.000001-abcdef.faiss", "/etc/passwd", "index.000001-abcdef.faiss\n", ".."])
def test_manifest_names_must_be_plain(saved: Path, name: str) -> None:
    from tests.crafting import seal  # the attacker's tool: recompute the checksum

    manifest = orjson.loads((saved / "manifest.json").read_bytes())
    manifest["files"]["ids"]["name"] = name
    (saved / "manifest.json").write_bytes(seal(manifest))
    with pytest.raises(CorruptStoreError, match="invalid name"):
        FAISSVectorStore.load(saved)


# --------------------------------------------------------------------------- saves the OS fails


@pytest.mark.parametrize("path", ["a\0b", Path("x\0")])
def test_path_with_a_nul_byte(path: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="NUL"):
        make_store().save(path)
    with pytest.raises(InvalidArgumentError, match="NUL"):
        FAISSVectorStore.load(path)


def test_a_path_too_long_to_look_up_is_no_store(tmp_path: Path) -> None:
    long = tmp_path / ("x" * 300)  # one name past NAME_MAX: the system refuses to look it up
    for load in (FAISSVectorStore.load, make_store().load, persistence.check_files):
        with pytest.raises(StoreNotFoundError, match="no store at .*xxx'.*too long"):
            load(long)


def test_a_path_that_cannot_be_searched_is_a_read_error(tmp_path: Path) -> None:
    (tmp_path / "shut").mkdir(mode=0)
    if os.access(tmp_path / "shut", os.X_OK):
        pytest.skip("running as root: permissions are not enforced")
    with pytest.raises(StoreReadError, match="could not look up .*store.*Permission denied"):
        FAISSVectorStore.load(tmp_path / "shut" / "store")


def test_save_under_proc() -> None:
    if not os.path.isdir("/proc/self"):
        pytest.skip("no /proc")
    with pytest.raises(StoreWriteError) as info:
        make_store().save("/proc/parag-store/inner")
    assert isinstance(info.value, OSError) and "/proc/parag-store/inner" in str(info.value)
    assert not os.path.exists("/proc/parag-store")


@pytest.mark.parametrize("flag", ["verify", "mmap"])
@pytest.mark.parametrize("value", [1, 0, None, "yes", np.bool_(True)])
def test_load_flags_must_be_bools(saved: Path, flag: str, value: Any) -> None:
    with pytest.raises(InvalidTypeError, match=flag):
        FAISSVectorStore.load(saved, **{flag: value})


FILL_DISK = """
import resource, signal, sys
import numpy as np
from parag import FAISSVectorStore
from parag.errors import StoreWriteError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write beyond the limit fails with EFBIG instead
store = FAISSVectorStore(64)
store.add(np.random.default_rng(0).standard_normal((2000, 64)))
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
try:
    store.save(sys.argv[1])
except StoreWriteError as e:
    print("StoreWriteError", e.errno, e)
"""


def test_a_file_too_large_for_the_file_system_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "new" / "store"
    done = subprocess.run([sys.executable, "-c", FILL_DISK, str(target)], capture_output=True, text=True, timeout=60)
    assert done.stdout.startswith("StoreWriteError 27 "), done.stdout + done.stderr  # EFBIG
    assert str(target) in done.stdout and "File too large" in done.stdout
    assert not (tmp_path / "new").exists()  # the directories the save created are gone again


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "mnt"
    mount.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full(tiny_tmpfs: Path) -> None:
    small = make_store(50)
    small.save(tiny_tmpfs / "old")
    before = sorted(p.name for p in (tiny_tmpfs / "old").iterdir())
    big = FAISSVectorStore(64)
    big.add(np.random.default_rng(0).standard_normal((2000, 64)))  # 512 KB: cannot fit
    with pytest.raises(StoreWriteError) as info:
        big.save(tiny_tmpfs / "old")
    assert info.value.errno == 28 and "No space left" in str(info.value) and str(tiny_tmpfs / "old") in str(info.value)
    assert sorted(p.name for p in (tiny_tmpfs / "old").iterdir()) == before
    assert len(FAISSVectorStore.load(tiny_tmpfs / "old")) == 50
    with pytest.raises(StoreWriteError):
        big.save(tiny_tmpfs / "new" / "deeper")
    assert not (tiny_tmpfs / "new").exists()


def test_read_only_file_system(tiny_tmpfs: Path) -> None:
    make_store().save(tiny_tmpfs / "s")
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_tmpfs)], check=True)
    assert len(FAISSVectorStore.load(tiny_tmpfs / "s")) == 50  # loads (without tidying up)
    for target in (tiny_tmpfs / "s", tiny_tmpfs / "new"):
        with pytest.raises(StoreWriteError) as info:
            make_store(10).save(target)
        assert info.value.errno == 30 and "Read-only file system" in str(info.value)
    assert len(FAISSVectorStore.load(tiny_tmpfs / "s")) == 50
    assert isinstance(StoreWriteError("x"), (ParagError, OSError))
