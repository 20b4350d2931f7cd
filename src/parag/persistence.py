"""Saving a store to a directory so that no crash can leave it half-written, and loading it
back only if every byte is what was saved.

A store directory holds data files and ``manifest.json``, the single file that says which
data files make up the store, with the size and SHA-256 of each. A save writes new data
files under fresh names (``index.000007-3fa2c1.faiss``), fsyncs them, then atomically
replaces the manifest: before that rename the directory holds the complete old store,
after it the complete new one. Files of older saves, or of a save that was interrupted,
are removed afterwards. Nothing here uses pickle: the formats are FAISS's own index format,
``.npy`` without objects, and JSON. The full layout is in ``docs/format.md``.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from parag.errors import CorruptStoreError, NotAStoreError, StoreNotFoundError, UnsupportedFormatError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, saves from two processes are not guarded
    fcntl = None  # type: ignore[assignment]

MANIFEST = "manifest.json"
LOCK = ".parag.lock"
FORMAT = "parag-store"
FORMAT_VERSION = 1
_MAX_MANIFEST_BYTES = 1 << 20
_CHUNK = 1 << 24
# Names parag writes: data files with a generation tag, and manifests being written.
_OURS = re.compile(r"^(?:[a-z_]+\.\d{6,}-[0-9a-f]{6}\.[a-z]+|manifest\.json\.tmp-[0-9a-f]+)$")

Writer = Callable[[BinaryIO], Any]
PathLike = str | os.PathLike[str]


class _HashingWriter:
    """A write-only file that hashes what passes through it, so a save reads nothing back."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self._sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._sha.update(data)
        self.size += len(data)
        return self._f.write(data)

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


def save(path: PathLike, body: dict[str, Any], writers: dict[str, tuple[str, Writer]]) -> None:
    """Atomically replace the store at ``path`` with ``body`` and one file per writer.

    ``writers`` maps a role (``"index"``) to a file extension and a function that writes the
    file's bytes to the file object it is given.
    """
    path = Path(path)
    _check_ours(path)
    path.mkdir(parents=True, exist_ok=True)
    with _lock(path):
        generation = _current_generation(path) + 1
        tag = f"{generation:06d}-{secrets.token_hex(3)}"
        files: dict[str, dict[str, Any]] = {}
        try:
            for role, (ext, write) in writers.items():
                name = f"{role}.{tag}.{ext}"
                files[role] = {"name": name, **_write_file(path / name, write)}
            manifest = {**body, "format": FORMAT, "format_version": FORMAT_VERSION,
                        "generation": generation, "files": files}
            _write_manifest(path, manifest, tag)
        except BaseException:
            for info in files.values():
                (path / info["name"]).unlink(missing_ok=True)
            raise
        _remove_leftovers(path, {info["name"] for info in files.values()})


def load(path: PathLike, verify: bool = True) -> tuple[dict[str, Any], dict[str, Path]]:
    """Read and check the manifest at ``path``; return it and the path of each data file.

    With ``verify`` (the default) every file's SHA-256 is checked before anything parses
    it; without, only sizes are.
    """
    path = Path(path)
    if not path.exists():
        raise StoreNotFoundError(f"no store at {str(path)!r}: the path does not exist")
    if not path.is_dir() or not (path / MANIFEST).is_file():
        raise NotAStoreError(
            f"{str(path)!r} is not a parag store: it has no {MANIFEST} (save one with store.save(path))"
        )
    manifest = _read_manifest(path)
    paths = {}
    for role, info in manifest["files"].items():
        file = path / info["name"]
        if not file.is_file():
            raise CorruptStoreError(f"store {str(path)!r} is missing its {role} file {info['name']!r}")
        size = file.stat().st_size
        if size != info["size"]:
            raise CorruptStoreError(
                f"{role} file {str(file)!r} has {size} bytes, the manifest says {info['size']} "
                "(truncated or overwritten)"
            )
        if verify and sha256_file(file) != info["sha256"]:
            raise CorruptStoreError(f"{role} file {str(file)!r} fails its SHA-256 check (corrupted)")
        paths[role] = file
    with _lock(path, blocking=False) as locked:
        if locked:
            _remove_leftovers(path, {info["name"] for info in manifest["files"].values()})
    return manifest, paths


def sha256_file(file: Path) -> str:
    sha = hashlib.sha256()
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    with open(file, "rb", buffering=0) as f:
        while n := f.readinto(buffer):
            sha.update(view[:n])
    return sha.hexdigest()


def _check_ours(path: Path) -> None:
    """Refuse to write into anything but a parag store or an empty directory."""
    if not path.exists():
        return
    if not path.is_dir():
        raise NotAStoreError(f"cannot save to {str(path)!r}: it is a file, not a directory")
    foreign = [p.name for p in path.iterdir() if p.name not in (MANIFEST, LOCK) and not _OURS.match(p.name)]
    if foreign and not (path / MANIFEST).is_file():
        raise NotAStoreError(
            f"refusing to save to {str(path)!r}: it is a non-empty directory that is not a parag "
            f"store (it holds {sorted(foreign)[:5]}); choose a new or empty directory"
        )


def _write_file(file: Path, write: Writer) -> dict[str, Any]:
    with open(file, "xb") as f:
        hashing = _HashingWriter(f)
        write(hashing)  # type: ignore[arg-type]
        f.flush()
        os.fsync(f.fileno())
    return {"size": hashing.size, "sha256": hashing.hexdigest()}


def _checksum(manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _write_manifest(path: Path, manifest: dict[str, Any], tag: str) -> None:
    manifest = {**manifest, "checksum": _checksum(manifest)}
    tmp = path / f"{MANIFEST}.tmp-{tag.split('-')[1]}"
    with open(tmp, "xb") as f:
        f.write(orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path / MANIFEST)  # the commit point
    _fsync_dir(path)


def _read_manifest(path: Path) -> dict[str, Any]:
    file = path / MANIFEST
    with open(file, "rb") as f:
        raw = f.read(_MAX_MANIFEST_BYTES + 1)
    try:
        manifest = orjson.loads(raw)
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
        if manifest.get("format") != FORMAT:
            raise NotAStoreError(f"{str(file)!r} is not a parag manifest")
        if manifest.get("checksum") != _checksum(manifest):
            raise ValueError("its checksum does not match its content")
        if not isinstance(manifest.get("format_version"), int) or not isinstance(manifest.get("files"), dict):
            raise ValueError("it lacks format_version or files")
    except (ValueError, TypeError) as e:
        if isinstance(e, NotAStoreError):
            raise
        raise CorruptStoreError(f"manifest {str(file)!r} is corrupted: {e}") from None
    if manifest["format_version"] > FORMAT_VERSION:
        raise UnsupportedFormatError(
            f"store {str(path)!r} was written by parag {manifest.get('parag_version')} in format "
            f"{manifest['format_version']}; this parag reads formats up to {FORMAT_VERSION}: upgrade parag"
        )
    return manifest


def _current_generation(path: Path) -> int:
    try:
        return int(_read_manifest(path)["generation"])
    except (FileNotFoundError, CorruptStoreError, NotAStoreError, KeyError, ValueError, TypeError):
        return 0


def _remove_leftovers(path: Path, keep: set[str]) -> None:
    """Delete data files of earlier or interrupted saves (never a file parag did not write)."""
    stale = [p for p in path.iterdir() if _OURS.match(p.name) and p.name not in keep]
    for p in stale:
        p.unlink(missing_ok=True)
    if stale:
        _fsync_dir(path)


def _fsync_dir(path: Path) -> None:
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _lock(path: Path, blocking: bool = True) -> Iterator[bool]:
    """An advisory lock on the store directory, so two processes never save at once.

    Yields whether the lock is held (a non-blocking attempt may not get it, and a
    read-only directory cannot be locked at all).
    """
    if fcntl is None:
        yield True
        return
    try:
        fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
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
        yield True
    finally:
        os.close(fd)
