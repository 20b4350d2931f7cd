"""Opening a store's files without leaving its directory.

A store may come from a stranger, so its directory may hold symbolic links (to files
elsewhere, to ``/dev/zero``, to a FIFO that blocks a reader forever) where parag expects
files. Every file parag opens in a store is named by a plain name, opened without following
a link (``O_NOFOLLOW``) or waiting on a FIFO or device (``O_NONBLOCK``), and used only if
``fstat`` on the very descriptor opened says it is a regular file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from parag.errors import CorruptStoreError, StoreReadError, cause_of

# O_NOFOLLOW and O_NONBLOCK do not exist on Windows, where links need privileges to create.
_SAFE = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_BINARY = getattr(os, "O_BINARY", 0)


def check_plain_name(name: str) -> None:
    """Raise unless ``name`` names an entry of a directory itself (no separator, not ``..``)."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise CorruptStoreError(f"{name!r} is not a plain file name: a store names only files in its directory")


def open_regular(directory: Path, name: str) -> BinaryIO:
    """``directory/name`` opened for reading, if it is a regular file (never through a link).

    Raises FileNotFoundError if it does not exist, CorruptStoreError if it is a link or not
    a regular file, StoreReadError if the file system refuses to open it.
    """
    check_plain_name(name)
    path = directory / name
    try:
        fd = os.open(path, os.O_RDONLY | _SAFE | _BINARY)
    except FileNotFoundError:
        raise
    except OSError as e:
        if os.path.islink(path):
            raise CorruptStoreError(
                f"{str(path)!r} is a symbolic link: a store's files must be regular files in its directory"
            ) from None
        raise StoreReadError.of(e, f"cannot open {str(path)!r}: {cause_of(e)}", str(path)) from None
    try:
        _require_regular(fd, path)
        _set_blocking(fd)
        return os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise


def open_lock_file(directory: Path) -> int:
    """A descriptor of ``directory/.parag.lock``, created if missing, never through a link.

    Raises OSError if it cannot be opened, CorruptStoreError if it is a link or not a
    regular file.
    """
    path = directory / ".parag.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _SAFE | _BINARY, 0o644)
    except OSError:
        if os.path.islink(path):
            raise CorruptStoreError(f"{str(path)!r} is a symbolic link: remove it (it is only a lock file)") from None
        raise
    try:
        _require_regular(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _require_regular(fd: int, path: Path) -> None:
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO, device or socket"
        raise CorruptStoreError(f"{str(path)!r} is {kind}, not a regular file: it cannot be part of a store")


def _set_blocking(fd: int) -> None:
    """Clear O_NONBLOCK again: it was only there so that opening a FIFO cannot hang."""
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)

