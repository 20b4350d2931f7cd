"""Loading: open the files a checked manifest names, and check every byte as it is read."""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

from parag.errors import (
    CorruptStoreError,
    NotAStoreError,
    StoreClosedError,
    StoreNotFoundError,
    StoreReadError,
    cause_of,
)
from parag.persistence import _directory as directory
from parag.persistence._manifest import MANIFEST, Checksum, checksum_of, parse_manifest
from parag.persistence._safe_open import open_regular

# What pathlib's exists() reads as "no such path" (a file where a directory should be, a link loop...)
_NOTHING_THERE = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EBADF)

_BACKGROUND_FROM = 1 << 24  # files of 16 MiB and more are checked on a background thread


def load(path: Path, verify: bool = True) -> StoreFiles:
    """Open the store at ``path``: read and check its manifest, open its data files."""
    check_is_store(path)
    manifest, handles = _open_consistent(path)
    try:
        for role, info in manifest["files"].items():
            _check_size(path, role, info, handles[role])
    except BaseException:
        for f in handles.values():
            f.close()
        raise
    directory.clean_if_idle(path)
    return StoreFiles(path, manifest, handles, verify)


def check_files(path: Path) -> dict[str, list[str]]:
    """Each data file of the store at ``path`` checked on its own: present, a regular file,
    its size, every block's checksum; the problems per file name (empty: all sound)."""
    check_is_store(path)
    manifest = read_manifest(path)
    problems: dict[str, list[str]] = {}
    for role, info in manifest["files"].items():
        try:
            handle = open_regular(path, info["name"])
        except FileNotFoundError:
            problems[info["name"]] = [f"store {str(path)!r} is missing its {role} file {info['name']!r}"]
            continue
        except CorruptStoreError as exc:
            problems[info["name"]] = [str(exc)]
            continue
        try:  # (before StoreFiles: a large file's verifying thread would start for nothing)
            _check_size(path, role, info, handle)
        except CorruptStoreError as exc:
            handle.close()
            problems[info["name"]] = [str(exc)]
            continue
        with StoreFiles(path, {**manifest, "files": {role: info}}, {role: handle}, verify=True) as one:
            try:
                one.check_whole(role)
            except CorruptStoreError as exc:
                problems[info["name"]] = [str(exc)]
    return problems


def _check_size(path: Path, role: str, info: dict[str, Any], handle: BinaryIO) -> None:
    size = os.fstat(handle.fileno()).st_size
    if size != info["size"]:
        raise CorruptStoreError(
            f"{role} file {str(path / info['name'])!r} has {size} bytes, the manifest says "
            f"{info['size']} (truncated or overwritten)"
        )


class StoreFiles:
    """The open data files of a checked manifest; every read is checked against it.

    The files are opened once, as the manifest is read, so a save that replaces the store
    meanwhile (and deletes these files) cannot change what this load sees. Use as a
    context manager, or call :meth:`close`.

    Attributes
    ----------
    path : Path
        The store directory.
    manifest : dict
        The checked manifest.
    verify : bool
        Whether reads check checksums (sizes are always checked).
    """

    #: The end of the StoreClosedError a read raises once the files are closed: why they are,
    #: and what to do (pass it as ``closed`` when reading :meth:`handle` directly).
    CLOSED = "the StoreFiles that opened it was closed (close(), or the end of its with block); load the store again"

    def __init__(self, path: Path, manifest: dict[str, Any], handles: dict[str, BinaryIO], verify: bool) -> None:
        self.path = path
        self.manifest = manifest
        self.verify = verify
        self.checksum: Checksum = checksum_of(manifest)
        self._handles = handles
        self._stop = threading.Event()
        # Large files are hashed on another thread from the moment they are opened, while
        # the small ones are read and parsed (xxhash releases the GIL).
        self._checks = {
            role: _Background(self._check_whole, role)
            for role, info in manifest["files"].items()
            if verify and info["size"] >= _BACKGROUND_FROM
        }

    def __enter__(self) -> StoreFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        for check in self._checks.values():
            check.wait()
        for f in self._handles.values():
            f.close()

    def describe(self, role: str) -> str:
        """``"<role> file '<path>'"``, for error messages."""
        return f"{role} file {str(self.path / self.manifest['files'][role]['name'])!r}"

    def size(self, role: str) -> int:
        return int(self.manifest["files"][role]["size"])

    def handle(self, role: str) -> BinaryIO:
        """The open file, for reads that need no check (the size fields of a header)."""
        return self._handles[role]

    def read(self, role: str) -> bytes:
        """The whole file, checked."""
        f, info = self._handles[role], self.manifest["files"][role]
        data = read_at(f, 0, info["size"], self.describe(role))
        if self.verify:
            view, block = memoryview(data), info["block_size"]
            for i, expected in enumerate(info[self.checksum.blocks_key]):
                self.check_block(role, i, view[i * block : (i + 1) * block], expected)
        return data

    def read_into(self, role: str, out: memoryview) -> None:
        """Fill ``out`` (exactly the file's size, e.g. a numpy array's buffer) with the whole
        file, checked: no second copy of a large file in RAM."""
        f, info = self._handles[role], self.manifest["files"][role]
        out = out.cast("B")
        if len(out) != info["size"]:
            raise ValueError(f"read_into: a buffer of {len(out)} bytes for a file of {info['size']}")
        read_into_at(f, 0, out, self.describe(role), closed=self.CLOSED)
        if role in self._checks:  # a large file: hashed on its background thread meanwhile
            self._checks[role].result()
        elif self.verify:
            block = info["block_size"]
            for i, expected in enumerate(info[self.checksum.blocks_key]):
                self.check_block(role, i, out[i * block : (i + 1) * block], expected)

    def checked_path(self, role: str) -> str:
        """A path that opens exactly the file opened here, after checking all of it (with
        ``verify``): the whole file passes its checksums before a parser reads a byte.

        For parsers that read a path (FAISS reads it directly, with one copy, or maps
        it). On Linux it is ``/proc/self/fd/N``, which still opens this file if a later
        save has deleted it.
        """
        f, info = self._handles[role], self.manifest["files"][role]
        self.check_whole(role)
        by_fd = f"/proc/self/fd/{f.fileno()}"
        return by_fd if os.path.exists(by_fd) else str(self.path / info["name"])

    def check_whole(self, role: str) -> None:
        """Check all of the file against its checksums (with ``verify``; else nothing), before
        anything reads it some other way than through this class (a descriptor of it, a path)."""
        if role in self._checks:  # a large file: hashed on its background thread meanwhile
            self._checks[role].result()
        elif self.verify:
            self._check_whole(role)

    def check_block(self, role: str, i: int, data: memoryview | bytes, expected: str) -> None:
        if self.checksum.hex(data) != expected:
            raise self._block_error(role, i)

    def _check_whole(self, role: str) -> None:
        """Hash the file a block at a time, read with pread into one reused buffer: no copy
        of the file in RAM and no mapping of it, so a mapped load's resident memory stays
        what its searches touch (a block read through a memory map would stay mapped)."""
        f, info = self._handles[role], self.manifest["files"][role]
        digests = info[self.checksum.blocks_key]
        if os.fstat(f.fileno()).st_size != info["size"]:
            raise CorruptStoreError(f"{self.describe(role)} changed size while it was being loaded")
        if not info["size"]:
            return
        block = info["block_size"]
        buffer = bytearray(min(block, info["size"]))
        with memoryview(buffer) as view:
            for i, expected in enumerate(digests):
                if self._stop.is_set():
                    raise CorruptStoreError(f"{self.describe(role)} was not checked: the load was abandoned")
                length = min(block, info["size"] - i * block)
                read_into_at(f, i * block, view[:length], self.describe(role), closed=self.CLOSED)
                self.check_block(role, i, view[:length], expected)

    def _block_error(self, role: str, i: int) -> CorruptStoreError:
        info = self.manifest["files"][role]
        start = i * info["block_size"]
        end = min(start + info["block_size"], info["size"]) - 1
        return CorruptStoreError(
            f"{self.describe(role)} fails its {self.checksum.name} check in bytes {start}-{end} "
            f"(block {i}): the file is corrupted"
        )


class _Background:
    """``fn(*args)`` on a daemon thread; :meth:`result` waits and re-raises what it raised."""

    def __init__(self, fn: Callable[..., None], *args: Any) -> None:
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, *args), name="parag-verify", daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to result()
            self._error = e

    def wait(self) -> None:
        self._thread.join()

    def result(self) -> None:
        self.wait()
        if self._error is not None:
            raise self._error


def read_at(f: BinaryIO, offset: int, length: int, what: str) -> bytes:
    """Exactly ``length`` bytes at ``offset`` (pread: threads sharing ``f`` do not race on its
    position). An early end raises CorruptStoreError, a failed read StoreReadError."""
    chunks, got = [], 0
    while got < length:
        try:
            chunk = os.pread(f.fileno(), length - got, offset + got)
        except OSError as e:
            raise StoreReadError.of(e, f"could not read {what} at byte {offset + got}: {cause_of(e)}") from e
        if not chunk:
            raise CorruptStoreError(f"{what} ends at byte {offset + got}, before its manifest size (truncated)")
        chunks.append(chunk)
        got += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def read_into_at(f: BinaryIO, offset: int, out: memoryview, what: str, *, closed: str) -> None:
    """Fill ``out`` with the bytes at ``offset`` (preadv: no copy, no race on the position).
    A file that ends too soon raises CorruptStoreError, one the system fails to read
    StoreReadError; both name ``what``. A closed ``f`` raises StoreClosedError ending with
    ``closed``: why its owner closed it and what to do, which only the owner knows."""
    read_pieces_at(f, [(offset, out)], what, closed=closed)


def read_pieces_at(f: BinaryIO, pieces: Iterable[tuple[int, memoryview]], what: str, *, closed: str) -> None:
    """Fill each ``out`` of ``pieces`` (offset, out) as :func:`read_into_at` does: in one
    loop, so that a read a row (re-ranking's) costs little more than its system call."""
    try:
        fd = f.fileno()
    except ValueError:  # closed, by the file's owner: ``closed`` says why and what to do
        raise StoreClosedError(f"{what} is closed: {closed}") from None
    for offset, out in pieces:
        piece, got = out, 0
        while True:  # (an empty piece reads 0 bytes: done)
            try:
                n = os.preadv(fd, [piece], offset + got)
            except OSError as e:
                raise StoreReadError.of(e, f"could not read {what} at byte {offset + got}: {cause_of(e)}") from e
            if n == len(piece):
                break
            if not n:
                raise CorruptStoreError(
                    f"{what} ends at byte {offset + got}, short of byte {offset + len(out)}: it was truncated"
                )
            got += n
            piece = out[got:]


def check_is_store(path: Path) -> None:
    """Raise unless ``path`` is a directory with a manifest."""
    if not stat.S_ISDIR(_mode_of(path)):
        raise NotAStoreError(f"{str(path)!r} is a file, not a parag store (a store is a directory)")
    if os.path.lexists(path / MANIFEST):
        return
    if directory.has_data_files(path):
        raise CorruptStoreError(
            f"store {str(path)!r} has parag data files but no {MANIFEST}: the manifest was deleted, "
            "or the first save into this directory was interrupted before it completed"
        )
    raise NotAStoreError(f"{str(path)!r} is not a parag store: it has no {MANIFEST} (save one with store.save(path))")


def _mode_of(path: Path) -> int:
    """The file mode of ``path``, following links.

    Raises StoreNotFoundError where there is nothing at ``path`` (or its name is too long
    for the system to look up: nothing can be stored there), StoreReadError where the system
    refuses to look (a parent without search permission, an I/O error).
    """
    try:
        return path.stat().st_mode
    except OSError as e:
        if e.errno in _NOTHING_THERE:
            raise StoreNotFoundError(f"no store at {str(path)!r}: the path does not exist") from None
        if e.errno == errno.ENAMETOOLONG:
            raise StoreNotFoundError(
                f"no store at {str(path)!r}: {cause_of(e)} (the path or one of its names is longer "
                "than the file system allows): give the path of a saved store"
            ) from None
        raise StoreReadError.of(e, f"could not look up {str(path)!r}: {cause_of(e)}", str(path)) from e


def _open_consistent(path: Path) -> tuple[dict[str, Any], dict[str, BinaryIO]]:
    """The manifest and its data files, opened as one consistent generation.

    A save in another process may commit a new manifest and delete the files of the old
    one between our reading the manifest and opening its files: then read it again.
    """
    for attempt in range(5):
        manifest = read_manifest(path)
        handles: dict[str, BinaryIO] = {}
        try:
            for role, info in manifest["files"].items():
                handles[role] = open_regular(path, info["name"])
            return manifest, handles
        except BaseException as e:
            for f in handles.values():
                f.close()
            if not isinstance(e, FileNotFoundError):
                raise
            missing = next(r for r in manifest["files"] if r not in handles)
            if attempt < 4 and directory.current_generation(path) != manifest["generation"]:
                continue  # a save replaced the store meanwhile: read the new one
            raise CorruptStoreError(
                f"store {str(path)!r} is missing its {missing} file {manifest['files'][missing]['name']!r}"
            ) from None
    raise AssertionError("unreachable")


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        raw = directory.read_raw_manifest(path)
    except FileNotFoundError:
        raise CorruptStoreError(f"store {str(path)!r} lost its {MANIFEST} while it was being loaded") from None
    if b'"checksum"' not in raw and b'"parag-store"' not in raw and not directory.has_data_files(path):
        raise NotAStoreError(f"{str(path)!r} is not a parag store: {str(path / MANIFEST)!r} was not written by parag")
    return parse_manifest(raw, path)
