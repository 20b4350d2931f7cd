"""Saving: new data files under fresh names, hashed as they are written, then one atomic
rename of the manifest commits them (``docs/format.md``, *Save: the commit protocol*)."""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from parag.errors import StoreWriteError, cause_of
from parag.persistence import _directory as directory
from parag.persistence._manifest import CURRENT, FORMAT, FORMAT_VERSION, MANIFEST, seal

BLOCK_SIZE = 1 << 22  # 4 MiB: a manifest lists few blocks, and a damaged one is located closely

Writer = Callable[[BinaryIO], Any]


SAVE_ATTEMPTS = 10  # a save starts again only when a failed save removed the directory it waited on


def save(path: Path, body: dict[str, Any], writers: dict[str, tuple[str, Writer]]) -> None:
    """Atomically replace the store at ``path`` with ``body`` and one file per writer.

    Any OSError becomes a StoreWriteError naming the path and the cause; what the save
    created (files, and the directory itself if it did not exist) is removed first.
    """
    try:
        for _ in range(SAVE_ATTEMPTS):
            if _save_once(path, body, writers):
                return
        raise FileNotFoundError(
            errno.ENOENT, f"its directory was removed {SAVE_ATTEMPTS} times while the save waited to write", str(path)
        )
    except OSError as e:
        raise _write_error(path, e) from None


def _save_once(path: Path, body: dict[str, Any], writers: dict[str, tuple[str, Writer]]) -> bool:
    """One attempt at :func:`save`: False if, once locked, the lock file turned out to be gone
    (a failed save that had created the directory removed it meanwhile): nothing was written."""
    created_dirs = _missing_ancestors(path)
    directory.check_ours(path)
    locked = False
    try:
        if created_dirs:
            path.mkdir(parents=True, exist_ok=True)  # exist_ok: another thread may be creating it too
            directory.fsync_dir(path.parent)  # the new directory's own name must survive a crash too
        with directory.lock(path) as locked:
            if locked:
                _commit(path, body, writers, created_dirs)
        return locked
    except BaseException:
        if not locked:
            # Without the lock, another save may be waiting on a lock file here: remove
            # only directories that are empty.
            _remove_empty_dirs(created_dirs)
        raise


def _commit(
    path: Path, body: dict[str, Any], writers: dict[str, tuple[str, Writer]], created_dirs: list[Path]
) -> None:
    """Steps 3-7 of the commit protocol, holding the lock; on failure, undo them and the
    directories this save created (still holding the lock, so no other save is writing there)."""
    generation = directory.generation_to_replace(path) + 1
    tag = f"{generation:06d}-{secrets.token_hex(3)}"
    tmp = path / f"{MANIFEST}.tmp-{tag.split('-')[1]}"
    created: list[Path] = []
    files: dict[str, dict[str, Any]] = {}
    try:
        for role, (ext, write) in writers.items():
            file = path / f"{role}.{tag}.{ext}"
            created.append(file)
            files[role] = {"name": file.name, **_write_file(file, write)}
        manifest = {**body, "format": FORMAT, "format_version": FORMAT_VERSION,
                    "generation": generation, "files": files}
        created.append(tmp)
        _write_durably(tmp, seal(manifest))
        directory.fsync_dir(path)  # the data files' names are durable before a manifest names them
        os.replace(tmp, path / MANIFEST)  # the commit point: old store before, new store after
    except BaseException:
        for file in created:
            _unlink_quietly(file)
        _remove_new_dirs(created_dirs)
        raise
    try:
        directory.fsync_dir(path)
    except OSError:
        pass  # committed: a failure now must not report the save as failed
    directory.remove_leftovers(path, {info["name"] for info in files.values()})


def _write_error(path: Path, e: OSError) -> StoreWriteError:
    where = e.filename if e.filename is not None else path
    return StoreWriteError.of(
        e,
        f"could not save the store to {str(path)!r}: {cause_of(e)} ({str(where)!r}); the store on disk "
        "is as it was before this save",
        str(where),
    )


def _missing_ancestors(path: Path) -> list[Path]:
    """``path`` and those of its parents that do not exist yet, innermost first."""
    missing = []
    for p in (path, *path.parents):
        if os.path.lexists(p):
            break
        missing.append(p)
    return missing


def _remove_new_dirs(created: list[Path]) -> None:
    """Undo a failed save's new directories, holding the lock: the store directory only if it
    holds nothing but the lock file (a file of the user's, or of a save that does not hold the
    lock, keeps it and its lock), then those of its new parents that are empty. A save
    waiting on the lock file finds it gone and starts again."""
    if not created:
        return
    try:
        if os.listdir(created[0]) == [directory.LOCK]:
            (created[0] / directory.LOCK).unlink()
    except OSError:
        return
    _remove_empty_dirs(created)


def _remove_empty_dirs(created: list[Path]) -> None:
    """Remove these directories, innermost first, as long as they are empty."""
    for p in created:
        try:
            p.rmdir()
        except OSError:
            return


def _unlink_quietly(file: Path) -> None:
    try:
        file.unlink(missing_ok=True)
    except OSError:
        pass


class BlockHasher:
    """The checksum of each consecutive ``block_size`` bytes fed to it (the last block may be short)."""

    def __init__(self, block_size: int, new: Callable[[], Any] = CURRENT.new) -> None:
        self.block_size = block_size
        self.digests: list[str] = []
        self._new = new
        self._hash = new()
        self._filled = 0

    def update(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while len(view):
            take = min(len(view), self.block_size - self._filled)
            self._hash.update(view[:take])
            self._filled += take
            view = view[take:]
            if self._filled == self.block_size:
                self._end_block()

    def finish(self) -> list[str]:
        if self._filled:
            self._end_block()
        return self.digests

    def _end_block(self) -> None:
        self.digests.append(self._hash.hexdigest())
        self._hash = self._new()
        self._filled = 0


class HashingWriter:
    """A write-only file object that hashes what passes through it, so a save reads nothing back.

    Hashing runs in line with the writes: XXH3-128 hashes at ~14 GB/s, several times the
    speed of the page cache a write fills, so a thread to overlap it would cost more in
    hand-offs (measured on a busy two-core machine) than it could save.
    """

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.size = 0
        self.error: OSError | None = None  # what the file system said, if a write failed
        self._hasher = BlockHasher(BLOCK_SIZE)

    def write(self, data: bytes) -> int:
        try:
            self._f.write(data)
        except OSError as e:
            self.error = e  # FAISS reports a failed callback as its own RuntimeError
            raise
        self._hasher.update(data)
        self.size += len(data)
        return len(data)

    def digests(self) -> list[str]:
        """The checksum of each block written."""
        return self._hasher.finish()


def _write_file(file: Path, write: Writer) -> dict[str, Any]:
    """Create ``file`` with what ``write`` writes, fsync it; return its manifest entry."""
    with open(file, "xb") as f:
        hashing = HashingWriter(f)  # type: ignore[arg-type]
        try:
            write(hashing)  # type: ignore[arg-type]
        except Exception:
            if hashing.error is not None:
                raise hashing.error from None
            raise
        f.flush()
        os.fsync(f.fileno())
    return {"size": hashing.size, "block_size": BLOCK_SIZE, CURRENT.blocks_key: hashing.digests()}


def _write_durably(file: Path, data: bytes) -> None:
    with open(file, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
