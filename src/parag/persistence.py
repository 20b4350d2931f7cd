"""Saving a store to a directory so that no crash can leave it half-written, and loading it
back only if every byte is what was saved.

A store directory holds data files and ``manifest.json``, the single file that says which
data files make up the store, with the size and SHA-256 of each. A save writes new data
files under fresh names (``index.000007-3fa2c1.faiss``), fsyncs them, then atomically
replaces the manifest: before that rename the directory holds the complete old store,
after it the complete new one. Files of older saves, or of a save that was interrupted,
are removed afterwards. Nothing here uses pickle: the formats are FAISS's own index format,
``.npy`` without objects, and JSON. The full layout is in ``docs/format.md``.

Data files are hashed in blocks of :data:`BLOCK_SIZE` bytes, one SHA-256 per block, so that
a load can check each block just before handing it to the parser while a background thread
reads and hashes the next ones: checking overlaps with parsing instead of doubling the time.
"""

from __future__ import annotations

import hashlib
import os
import queue
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from parag.errors import (
    CorruptStoreError,
    InvalidTypeError,
    NotAStoreError,
    StoreNotFoundError,
    UnsupportedFormatError,
)

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, saves from two processes are not guarded
    fcntl = None  # type: ignore[assignment]

MANIFEST = "manifest.json"
LOCK = ".parag.lock"
FORMAT = "parag-store"
FORMAT_VERSION = 1
BLOCK_SIZE = 1 << 22  # 4 MiB: hashes at full speed, and few blocks in flight take little RAM
_MAX_BLOCK_SIZE = 1 << 30
_MAX_MANIFEST_BYTES = 1 << 26  # 64 MiB: a manifest lists ~70 bytes per 4 MiB block
_READ_AHEAD = 4  # blocks a verified stream may hold ready (16 MiB)
_READ_CHUNK = 1 << 20  # reads that check a file in place go through one 1 MiB buffer
_WRITE_BEHIND = 16  # writes a hashing writer may queue (FAISS writes 1 MiB at a time)

# Names parag writes: data files with a generation tag, and manifests being written.
_DATA_FILE = re.compile(r"^[a-z_]+\.\d{6,}-[0-9a-f]{6}\.[a-z]+$")
_TMP_MANIFEST = re.compile(r"^manifest\.json\.tmp-[0-9a-f]+$")
# The manifest's checksum field, exactly as save writes it (see _seal).
_CHECKSUM_FIELD = re.compile(rb'"checksum": "([0-9a-f]{64})"')
_CHECKSUM_PLACEHOLDER = b"0" * 64
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")

Writer = Callable[[BinaryIO], Any]
PathLike = str | os.PathLike[str]


# --------------------------------------------------------------------------- saving


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
    """
    path = _as_path(path)
    _check_ours(path)
    if not path.exists():
        path.mkdir(parents=True, exist_ok=True)  # exist_ok: another thread may be creating it too
        _fsync_dir(path.parent)  # the new directory's own name must survive a crash too
    with _lock(path):
        generation = _current_generation(path) + 1
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
            _write_durably(tmp, _seal(manifest))
            _fsync_dir(path)  # the data files' names are durable before a manifest names them
        except BaseException:
            for file in created:
                file.unlink(missing_ok=True)
            raise
        os.replace(tmp, path / MANIFEST)  # the commit point: old store before, new store after
        _fsync_dir(path)
        _remove_leftovers(path, {info["name"] for info in files.values()})


class _BlockHasher:
    """SHA-256 of each consecutive ``block_size`` bytes fed to it (the last block may be short)."""

    def __init__(self, block_size: int) -> None:
        self.block_size = block_size
        self.digests: list[str] = []
        self._sha = hashlib.sha256()
        self._filled = 0

    def update(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while len(view):
            take = min(len(view), self.block_size - self._filled)
            self._sha.update(view[:take])
            self._filled += take
            view = view[take:]
            if self._filled == self.block_size:
                self._end_block()

    def finish(self) -> list[str]:
        if self._filled:
            self._end_block()
        return self.digests

    def _end_block(self) -> None:
        self.digests.append(self._sha.hexdigest())
        self._sha = hashlib.sha256()
        self._filled = 0


class _HashingWriter:
    """A write-only file object that hashes what passes through it, so a save reads nothing back.

    Hashing runs on a background thread (hashlib releases the GIL), in parallel with the
    serialisation and the writes: on two cores a save costs about what the writes alone do.
    """

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.size = 0
        self._hasher = _BlockHasher(BLOCK_SIZE)
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_WRITE_BEHIND)
        self._thread = threading.Thread(target=self._hash_queued, name="parag-hash", daemon=True)
        self._thread.start()

    def write(self, data: bytes) -> int:
        if not isinstance(data, bytes):
            data = bytes(data)  # a mutable buffer could change before the thread hashes it
        self._f.write(data)
        self._queue.put(data)
        self.size += len(data)
        return len(data)

    def digests(self) -> list[str]:
        """Wait for the hashing thread; the SHA-256 of each block written."""
        self.close()
        return self._hasher.finish()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _hash_queued(self) -> None:
        while (data := self._queue.get()) is not None:
            self._hasher.update(data)


def _write_file(file: Path, write: Writer) -> dict[str, Any]:
    """Create ``file`` with what ``write`` writes, fsync it; return its manifest entry."""
    with open(file, "xb") as f:
        hashing = _HashingWriter(f)  # type: ignore[arg-type]
        try:
            write(hashing)  # type: ignore[arg-type]
        finally:
            hashing.close()
        f.flush()
        os.fsync(f.fileno())
    return {"size": hashing.size, "block_size": BLOCK_SIZE, "block_sha256": hashing.digests()}


def _seal(manifest: dict[str, Any]) -> bytes:
    """The manifest's bytes, with ``checksum`` = SHA-256 of those very bytes in which the
    checksum's own 64 hex digits read as zeros. It covers every byte of the file: a flipped
    byte anywhere, even in whitespace or in the checksum itself, is detected."""
    draft = orjson.dumps(
        {**manifest, "checksum": _CHECKSUM_PLACEHOLDER.decode()},
        option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE,
    )
    digest = hashlib.sha256(draft).hexdigest().encode()
    field = b'"checksum": "' + _CHECKSUM_PLACEHOLDER + b'"'
    return draft.replace(field, b'"checksum": "' + digest + b'"', 1)


def _write_durably(file: Path, data: bytes) -> None:
    with open(file, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _current_generation(path: Path) -> int:
    """The generation of the store at ``path``; 0 if it has none or it is unreadable."""
    try:
        return int(_parse_manifest(_read_raw_manifest(path / MANIFEST), path)["generation"])
    except (OSError, CorruptStoreError, NotAStoreError, KeyError, ValueError, TypeError):
        return 0


# --------------------------------------------------------------------------- loading


def load(path: PathLike, verify: bool = True) -> StoreFiles:
    """Open the store at ``path``: read and check its manifest, open its data files.

    Sizes are checked here; content is checked as each file is read through the returned
    :class:`StoreFiles` (every block's SHA-256 with ``verify``, nothing more without).
    Leftovers of interrupted saves are removed when no save is running.

    Raises
    ------
    StoreNotFoundError
        ``path`` does not exist.
    NotAStoreError
        ``path`` is a file, or a directory that holds no parag store.
    CorruptStoreError
        The manifest or a data file is missing, truncated or damaged.
    UnsupportedFormatError
        The store was written in a newer format than this parag reads.
    """
    path = _as_path(path)
    _check_is_store(path)
    manifest, handles = _open_consistent(path)
    try:
        for role, info in manifest["files"].items():
            size = os.fstat(handles[role].fileno()).st_size
            if size != info["size"]:
                raise CorruptStoreError(
                    f"{role} file {str(path / info['name'])!r} has {size} bytes, the manifest says "
                    f"{info['size']} (truncated or overwritten)"
                )
    except BaseException:
        for f in handles.values():
            f.close()
        raise
    _clean_if_idle(path)
    return StoreFiles(path, manifest, handles, verify)


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
        Whether reads check SHA-256 (sizes are always checked).
    """

    def __init__(self, path: Path, manifest: dict[str, Any], handles: dict[str, BinaryIO], verify: bool) -> None:
        self.path = path
        self.manifest = manifest
        self.verify = verify
        self._handles = handles

    def __enter__(self) -> StoreFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for f in self._handles.values():
            f.close()

    def describe(self, role: str) -> str:
        """``"<role> file '<path>'"``, for error messages."""
        return f"{role} file {str(self.path / self.manifest['files'][role]['name'])!r}"

    def read(self, role: str) -> bytes:
        """The whole file, checked."""
        f, info = self._handles[role], self.manifest["files"][role]
        data = _read_at(f, 0, info["size"], self.describe(role))
        if self.verify:
            view, block = memoryview(data), info["block_size"]
            for i, expected in enumerate(info["block_sha256"]):
                self._check_block(role, i, view[i * block : (i + 1) * block], expected)
        return data

    def checked_path(self, role: str) -> str:
        """A path that opens exactly the file opened here, after checking all of it.

        For parsers that need a path (a FAISS memory map). On Linux it is
        ``/proc/self/fd/N``, which still opens this file if a later save has deleted it.
        """
        f, info = self._handles[role], self.manifest["files"][role]
        if self.verify:
            self._check_whole(role)
        by_fd = f"/proc/self/fd/{f.fileno()}"
        return by_fd if os.path.exists(by_fd) else str(self.path / info["name"])

    @contextmanager
    def stream(self, role: str) -> Iterator[VerifiedStream]:
        """A reader of the file whose every byte is checked before :meth:`VerifiedStream.read`
        returns it (with ``verify``; without, the bytes are only counted)."""
        stream = VerifiedStream(self, role)
        try:
            yield stream
        finally:
            stream.close()

    def _check_whole(self, role: str) -> None:
        """Hash the file through one small reusable buffer (a mapped load must not fill RAM)."""
        f, info = self._handles[role], self.manifest["files"][role]
        hasher, buffer, size = _BlockHasher(info["block_size"]), bytearray(_READ_CHUNK), 0
        f.seek(0)
        while n := f.readinto(buffer):
            hasher.update(memoryview(buffer)[:n])
            size += n
        if size != info["size"]:
            raise CorruptStoreError(f"{self.describe(role)} has {size} bytes, the manifest says {info['size']}")
        for i, (got, expected) in enumerate(zip(hasher.finish(), info["block_sha256"])):
            if got != expected:
                raise self._block_error(role, i)

    def _check_block(self, role: str, i: int, data: memoryview | bytes, expected: str) -> None:
        if hashlib.sha256(data).hexdigest() != expected:
            raise self._block_error(role, i)

    def _block_error(self, role: str, i: int) -> CorruptStoreError:
        info = self.manifest["files"][role]
        start = i * info["block_size"]
        end = min(start + info["block_size"], info["size"]) - 1
        return CorruptStoreError(
            f"{self.describe(role)} fails its SHA-256 check in bytes {start}-{end} (block {i}): "
            "the file is corrupted"
        )


class VerifiedStream:
    """Sequential reads of one data file, block by block, each block checked before use.

    A background thread reads and hashes up to :data:`_READ_AHEAD` blocks ahead of the
    consumer (file reads and hashlib release the GIL), so on two cores a verified load
    costs little more than the parse alone. The consumer never sees a byte of a block
    before that block has passed its check.
    """

    def __init__(self, files: StoreFiles, role: str) -> None:
        self._files, self._role = files, role
        info = files.manifest["files"][role]
        self.block_size: int = info["block_size"]
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=_READ_AHEAD)
        self._stop = threading.Event()
        self._block = memoryview(b"")
        self._pos = 0
        self._at_end = False
        self._thread = threading.Thread(target=self._produce, name="parag-verify", daemon=True)
        self._thread.start()

    def read(self, n: int) -> bytes:
        """Up to ``n`` checked bytes: the rest of the current block at most, b"" at the end.

        Returning less than asked is allowed (FAISS asks again for the rest), and it lets
        every block but the first go to FAISS whole, as the very bytes object that was
        read and hashed, without a copy.
        """
        if self._pos == len(self._block) and not self._next_block():
            return b""
        if self._pos == 0 and n >= len(self._block):
            self._pos = len(self._block)
            return self._block.obj  # type: ignore[return-value]
        take = min(n, len(self._block) - self._pos)
        self._pos += take
        return self._block[self._pos - take : self._pos].tobytes()

    def close(self) -> None:
        """Stop the reading thread (whether or not the file was read to its end)."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)  # unblock a thread waiting to put
            except queue.Empty:
                pass
        self._thread.join()

    def _next_block(self) -> bool:
        if self._at_end:
            return False
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        self._block, self._pos, self._at_end = memoryview(item), 0, not item
        return not self._at_end

    def _produce(self) -> None:
        files, role = self._files, self._role
        f, info = files._handles[role], files.manifest["files"][role]
        try:
            for i, expected in enumerate(info["block_sha256"]):
                start = i * self.block_size
                length = min(self.block_size, info["size"] - start)
                data = _read_at(f, start, length, files.describe(role))
                if files.verify:
                    files._check_block(role, i, data, expected)
                if not self._put(data):
                    return
            self._put(b"")  # end of file
        except BaseException as e:  # handed to the consumer, which raises it
            self._put(e)

    def _put(self, item: bytes | BaseException) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False


def _read_at(f: BinaryIO, offset: int, length: int, what: str) -> bytes:
    """Exactly ``length`` bytes at ``offset``."""
    f.seek(offset)
    chunks, got = [], 0
    while got < length:
        chunk = f.read(length - got)
        if not chunk:
            raise CorruptStoreError(f"{what} ends at byte {offset + got}, before its manifest size (truncated)")
        chunks.append(chunk)
        got += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _as_path(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidTypeError(f"path must be a str or os.PathLike naming a directory, got {path!r}")
    return Path(path)


def _check_is_store(path: Path) -> None:
    """Raise unless ``path`` is a directory with a manifest."""
    if not path.exists():
        raise StoreNotFoundError(f"no store at {str(path)!r}: the path does not exist")
    if not path.is_dir():
        raise NotAStoreError(f"{str(path)!r} is a file, not a parag store (a store is a directory)")
    if (path / MANIFEST).is_file():
        return
    if _has_data_files(path):
        raise CorruptStoreError(
            f"store {str(path)!r} has parag data files but no {MANIFEST}: the manifest was deleted, "
            "or the first save into this directory was interrupted before it completed"
        )
    raise NotAStoreError(f"{str(path)!r} is not a parag store: it has no {MANIFEST} (save one with store.save(path))")


def _open_consistent(path: Path) -> tuple[dict[str, Any], dict[str, BinaryIO]]:
    """The manifest and its data files, opened as one consistent generation.

    A save in another process may commit a new manifest and delete the files of the old
    one between our reading the manifest and opening its files: then read it again.
    """
    for attempt in range(5):
        manifest = _read_manifest(path)
        handles: dict[str, BinaryIO] = {}
        try:
            for role, info in manifest["files"].items():
                handles[role] = open(path / info["name"], "rb", buffering=0)
            return manifest, handles
        except FileNotFoundError:
            for f in handles.values():
                f.close()
            missing = next(r for r, i in manifest["files"].items() if r not in handles)
            if attempt < 4 and _current_generation(path) != manifest["generation"]:
                continue  # a save replaced the store meanwhile: read the new one
            raise CorruptStoreError(
                f"store {str(path)!r} is missing its {missing} file {manifest['files'][missing]['name']!r}"
            ) from None
    raise AssertionError("unreachable")


def _read_manifest(path: Path) -> dict[str, Any]:
    file = path / MANIFEST
    raw = _read_raw_manifest(file)
    if b'"checksum"' not in raw and b'"parag-store"' not in raw and not _has_data_files(path):
        raise NotAStoreError(f"{str(path)!r} is not a parag store: {str(file)!r} was not written by parag")
    return _parse_manifest(raw, path)


def _read_raw_manifest(file: Path) -> bytes:
    with open(file, "rb") as f:
        return f.read(_MAX_MANIFEST_BYTES + 1)


def _parse_manifest(raw: bytes, path: Path) -> dict[str, Any]:
    """Check the manifest's bytes and fields; return it.

    Order matters: the checksum is checked before any field is trusted, so a damaged
    ``format_version`` reads as damage, not as a newer format.
    """
    where = repr(str(path / MANIFEST))
    if len(raw) > _MAX_MANIFEST_BYTES:
        raise CorruptStoreError(f"manifest {where} is larger than {_MAX_MANIFEST_BYTES} bytes: it is not a manifest")
    try:
        manifest = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise CorruptStoreError(f"manifest {where} is corrupted: it is not valid JSON ({e})") from None
    if not isinstance(manifest, dict):
        raise CorruptStoreError(f"manifest {where} is corrupted: it is not a JSON object")
    _check_checksum(raw, manifest, where)
    if manifest.get("format") != FORMAT:
        raise NotAStoreError(f"manifest {where} describes a {manifest.get('format')!r}, not a {FORMAT!r}")
    version = manifest.get("format_version")
    if not _is_int(version) or version < 1:
        raise CorruptStoreError(f"manifest {where} has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise UnsupportedFormatError(
            f"store {str(path)!r} was written by parag {manifest.get('parag_version')} in format "
            f"version {version}; this parag reads format versions up to {FORMAT_VERSION}: upgrade parag"
        )
    _check_fields(manifest, where)
    return manifest


def _check_checksum(raw: bytes, manifest: dict[str, Any], where: str) -> None:
    fields = _CHECKSUM_FIELD.findall(raw)
    if len(fields) != 1 or manifest.get("checksum") != fields[0].decode():
        raise CorruptStoreError(f"manifest {where} is corrupted: its checksum field is missing or damaged")
    zeroed = _CHECKSUM_FIELD.sub(b'"checksum": "' + _CHECKSUM_PLACEHOLDER + b'"', raw)
    if hashlib.sha256(zeroed).hexdigest() != manifest["checksum"]:
        raise CorruptStoreError(f"manifest {where} is corrupted: it fails its SHA-256 checksum")


def _check_fields(manifest: dict[str, Any], where: str) -> None:
    """The fields persistence itself relies on (the store checks its own)."""
    generation, files = manifest.get("generation"), manifest.get("files")
    if not _is_int(generation) or generation < 1:
        raise CorruptStoreError(f"manifest {where} has an invalid generation {generation!r}")
    if not isinstance(files, dict) or not files:
        raise CorruptStoreError(f"manifest {where} has no files table")
    for role, info in files.items():
        problem = _file_entry_problem(info)
        if problem:
            raise CorruptStoreError(f"manifest {where}: the entry of the {role} file {problem}")


def _file_entry_problem(info: Any) -> str | None:
    if not isinstance(info, dict):
        return "is not an object"
    name, size, block, digests = (info.get(k) for k in ("name", "size", "block_size", "block_sha256"))
    if not isinstance(name, str) or not _DATA_FILE.match(name):
        # Also what keeps a crafted manifest from pointing outside the directory.
        return f"has an invalid name {name!r}"
    if not _is_int(size) or size < 0:
        return f"has an invalid size {size!r}"
    if not _is_int(block) or not 0 < block <= _MAX_BLOCK_SIZE:
        return f"has an invalid block_size {block!r}"
    n_blocks = -(-size // block)
    if not isinstance(digests, list) or len(digests) != n_blocks:
        return f"should list {n_blocks} block SHA-256s"
    if not all(isinstance(d, str) and _SHA256_HEX.match(d) for d in digests):
        return "has an invalid block SHA-256"
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --------------------------------------------------------------------------- the directory


def _check_ours(path: Path) -> None:
    """Refuse to write into anything but a parag store or an empty directory."""
    if not path.exists():
        return
    if not path.is_dir():
        raise NotAStoreError(f"cannot save to {str(path)!r}: it is a file, not a directory")
    if _looks_like_store(path):
        return  # files of the user's own beside the store are left alone
    foreign = sorted(p.name for p in path.iterdir() if p.name != LOCK and not _is_ours(p.name))
    if foreign:
        raise NotAStoreError(
            f"refusing to save to {str(path)!r}: it is a non-empty directory that is not a parag "
            f"store (it holds {foreign[:5]}); choose a new or empty directory"
        )


def _looks_like_store(path: Path) -> bool:
    """A parag manifest, or data files only parag names that way (even if the manifest is damaged)."""
    manifest = path / MANIFEST
    if manifest.is_file():
        try:
            if b'"parag-store"' in _read_raw_manifest(manifest):
                return True
        except OSError:
            pass
    return _has_data_files(path)


def _has_data_files(path: Path) -> bool:
    return any(_DATA_FILE.match(p.name) for p in path.iterdir())


def _is_ours(name: str) -> bool:
    return bool(_DATA_FILE.match(name) or _TMP_MANIFEST.match(name))


def _clean_if_idle(path: Path) -> None:
    """Remove leftovers of interrupted saves, unless a save is running now (best effort:
    a load never fails because it could not tidy up, e.g. in a read-only directory)."""
    with _lock(path, blocking=False) as locked:
        if not locked:
            return
        try:  # read again under the lock: a save may have committed since we looked
            manifest = _parse_manifest(_read_raw_manifest(path / MANIFEST), path)
        except (OSError, CorruptStoreError, NotAStoreError):
            return  # never delete anything of a store we cannot read
        _remove_leftovers(path, {info["name"] for info in manifest["files"].values()})


def _remove_leftovers(path: Path, keep: set[str]) -> None:
    """Delete data files of earlier or interrupted saves (never a file parag did not name)."""
    stale = [p for p in path.iterdir() if _is_ours(p.name) and p.name not in keep]
    try:
        for p in stale:
            p.unlink(missing_ok=True)
        if stale:
            _fsync_dir(path)
    except OSError:
        pass  # best effort (a file still open on Windows, a read-only directory): retried next time


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
    """An advisory lock on the store directory, so two saves never run at once.

    Yields whether the lock is held (a non-blocking attempt may not get it, and a
    read-only directory cannot be locked at all). flock locks belong to an open file,
    so they also keep apart two threads of one process.
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
