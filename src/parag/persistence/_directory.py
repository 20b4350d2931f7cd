"""The store directory: what in it is parag's, the lock that keeps saves apart, tidying up."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from parag.errors import CorruptStoreError, NotAStoreError, UnsupportedFormatError
from parag.persistence._manifest import DATA_FILE, MANIFEST, MAX_MANIFEST_BYTES, TMP_MANIFEST, parse_manifest
from parag.persistence._safe_open import open_lock_file, open_regular

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, saves from two processes are not guarded
    fcntl = None  # type: ignore[assignment]

LOCK = ".parag.lock"


def read_raw_manifest(path: Path) -> bytes:
    """The bytes of ``path/manifest.json`` (a regular file, never through a link)."""
    with open_regular(path, MANIFEST) as f:
        return f.read(MAX_MANIFEST_BYTES + 1)


def current_generation(path: Path) -> int:
    """The generation of the store at ``path``; 0 if it has none or it is unreadable."""
    try:
        return generation_to_replace(path)
    except UnsupportedFormatError:
        return 0


def generation_to_replace(path: Path) -> int:
    """The generation of the store a save into ``path`` replaces; 0 if it has none or it is
    damaged (a save may replace a damaged store).

    Raises UnsupportedFormatError if a newer parag wrote it: this one would replace it with
    an older format, losing what the newer one stored, and a load refuses it anyway.
    """
    try:
        return int(parse_manifest(read_raw_manifest(path), path)["generation"])
    except UnsupportedFormatError as e:
        raise UnsupportedFormatError(
            f"refusing to save to {str(path)!r}, which would overwrite a newer store: {e}, or save "
            "to another directory"
        ) from None
    except (OSError, CorruptStoreError, NotAStoreError, KeyError, ValueError, TypeError):
        return 0


def check_ours(path: Path) -> None:
    """Refuse to write into anything but a parag store this parag can read, or an empty directory."""
    if not path.exists():
        return
    if not path.is_dir():
        raise NotAStoreError(f"cannot save to {str(path)!r}: it is a file, not a directory")
    if looks_like_store(path):
        generation_to_replace(path)  # refuses a newer parag's store before anything is written
        return  # files of the user's own beside the store are left alone
    foreign = sorted(p.name for p in path.iterdir() if p.name != LOCK and not is_ours(p.name))
    if foreign:
        raise NotAStoreError(
            f"refusing to save to {str(path)!r}: it is a non-empty directory that is not a parag "
            f"store (it holds {foreign[:5]}); choose a new or empty directory"
        )


def looks_like_store(path: Path) -> bool:
    """A parag manifest, or data files only parag names that way (even if the manifest is damaged)."""
    try:
        if b'"parag-store"' in read_raw_manifest(path):
            return True
    except (OSError, CorruptStoreError):
        pass
    return has_data_files(path)


def has_data_files(path: Path) -> bool:
    return any(DATA_FILE.fullmatch(p.name) for p in path.iterdir())


def is_ours(name: str) -> bool:
    return bool(DATA_FILE.fullmatch(name) or TMP_MANIFEST.fullmatch(name))


def clean_if_idle(path: Path) -> None:
    """Remove leftovers of interrupted saves, unless a save is running now (best effort:
    a load never fails because it could not tidy up, e.g. in a read-only directory)."""
    with lock(path, blocking=False) as locked:
        if not locked:
            return
        try:  # read again under the lock: a save may have committed since we looked
            manifest = parse_manifest(read_raw_manifest(path), path)
        except (OSError, CorruptStoreError, NotAStoreError):
            return  # never delete anything of a store we cannot read
        remove_leftovers(path, {info["name"] for info in manifest["files"].values()})


def remove_leftovers(path: Path, keep: set[str]) -> None:
    """Delete data files of earlier or interrupted saves (never a file parag did not name)."""
    try:
        stale = [p for p in path.iterdir() if is_ours(p.name) and p.name not in keep]
        for p in stale:
            p.unlink(missing_ok=True)
        if stale:
            fsync_dir(path)
    except OSError:
        pass  # best effort (a file still open on Windows, a read-only directory): retried next time


def fsync_dir(path: Path) -> None:
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def lock(path: Path, blocking: bool = True) -> Iterator[bool]:
    """An advisory lock on the store directory, so two saves never run at once.

    Yields whether the lock is held: a non-blocking attempt may not get it, a read-only
    directory cannot be locked at all, and a lock file that is no longer the directory's
    (a failed save that had created the directory removed both, holding the lock, while
    this one waited) locks nothing: the caller starts again. flock locks belong to an open
    file, so they also keep apart two threads of one process. The lock file is never
    created or opened through a symbolic link.
    """
    if fcntl is None:
        yield True
        return
    try:
        fd = open_lock_file(path)
    except FileNotFoundError:
        yield False  # the directory itself is gone (removed by a failed save)
        return
    except (OSError, CorruptStoreError):
        if blocking:
            raise
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield _is_the_lock_file(fd, path)
    finally:
        os.close(fd)


def _is_the_lock_file(fd: int, path: Path) -> bool:
    """Whether ``fd`` is still the file ``path/.parag.lock`` names (our open descriptor keeps
    its inode from being reused, so equal numbers mean the same file)."""
    try:
        named = os.stat(path / LOCK, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)
