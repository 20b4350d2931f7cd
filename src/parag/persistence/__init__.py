"""Saving a store to a directory so that no crash can leave it half-written, and loading it
back only if every byte is what was saved, without leaving the directory.

A store directory holds data files and ``manifest.json``, the single file that says which
data files make up the store, with the size and block checksums (XXH3-128) of each. A save
writes new data files under fresh names (``index.000007-3fa2c1.faiss``), fsyncs them, then
atomically replaces the manifest: before that rename the directory holds the complete old
store, after it the complete new one. Files of older saves, or of a save that was
interrupted, are removed afterwards. Nothing here uses pickle: the formats are FAISS's own
index format, ``.npy`` without objects, and JSON. The full layout is in ``docs/format.md``,
what loading a stranger's store guarantees in ``docs/security.md``.

Modules: ``_manifest`` (checksums, the manifest's rules), ``_writing`` (save),
``_reading`` (load, checked reads), ``_directory`` (lock, leftovers), ``_safe_open``
(opening files inside the store only).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from parag._validation import check_bool
from parag.errors import InvalidArgumentError, InvalidTypeError
from parag.persistence import _reading, _writing
from parag.persistence._directory import LOCK
from parag.persistence._manifest import FORMAT, FORMAT_VERSION, MANIFEST
from parag.persistence._reading import StoreFiles, read_into_at, read_pieces_at
from parag.persistence._safe_open import open_regular
from parag.persistence._writing import BLOCK_SIZE, Writer

__all__ = [
    "save", "load", "check_files", "open_regular", "StoreFiles", "Writer", "read_into_at", "read_pieces_at",
    "BLOCK_SIZE", "FORMAT", "FORMAT_VERSION", "LOCK", "MANIFEST",
]

PathLike = str | os.PathLike[str]


def save(path: PathLike, body: dict[str, Any], writers: dict[str, tuple[str, Writer]]) -> None:
    """Atomically replace the store at ``path`` with ``body`` and one file per writer.

    Parameters
    ----------
    path : str or PathLike
        The store directory; created if missing. An existing file, or a non-empty
        directory that is not a parag store, is refused with NotAStoreError.
    body : dict
        JSON-serialisable fields of the manifest (configuration, counts).
    writers : dict
        Maps a role (``"index"``) to a file extension and a function that writes the
        file's bytes to the file object it is given.

    Raises
    ------
    NotAStoreError
        ``path`` is a file or a foreign directory: nothing is touched.
    UnsupportedFormatError
        ``path`` holds a store of a newer format version: nothing is touched.
    StoreWriteError
        The file system failed the save (disk full, read-only...): the store on disk is as
        it was, and a directory the save created is removed again.
    """
    _writing.save(as_path(path), body, writers)


def load(path: PathLike, verify: bool = True) -> StoreFiles:
    """Open the store at ``path``: read and check its manifest, open its data files.

    Sizes are checked here; content is checked as each file is read through the returned
    :class:`StoreFiles` (every block's checksum with ``verify``, nothing more without).
    Every file is opened inside ``path`` only, as a regular file, never through a link.
    Leftovers of interrupted saves are removed when no save is running.

    Raises
    ------
    StoreNotFoundError
        ``path`` does not exist.
    NotAStoreError
        ``path`` is a file, or a directory that holds no parag store.
    CorruptStoreError
        The manifest or a data file is missing, truncated, damaged, a link or not a file.
    UnsupportedFormatError
        The store was written in a newer format than this parag reads.
    StoreReadError
        The file system refused to read a file.
    """
    return _reading.load(as_path(path), check_bool(verify, "verify"))


def check_files(path: PathLike) -> dict[str, list[str]]:
    """Check every data file of the store at ``path`` on its own, against its manifest.

    A load stops at the first problem; this names every damaged file: one missing, a link or
    not a regular file, of the wrong size, or failing a block's checksum.

    Returns
    -------
    dict
        The problems per file name; empty when every data file is sound.

    Raises
    ------
    StoreNotFoundError, NotAStoreError, CorruptStoreError, UnsupportedFormatError
        As :func:`load` does for the directory and the manifest itself.
    """
    return _reading.check_files(as_path(path))


def as_path(path: Any, name: str = "path") -> Path:
    """``path`` (the argument ``name``) as a Path, or InvalidTypeError / InvalidArgumentError."""
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidTypeError(f"{name} must be a str or os.PathLike naming a directory, got {path!r}")
    text = os.fspath(path)
    if not isinstance(text, str):
        raise InvalidTypeError(f"{name} must name a directory as text, got {path!r}")
    if "\0" in text or not text:
        raise InvalidArgumentError(f"{name} must be a non-empty directory name without NUL bytes, got {text!r}")
    return Path(text)

