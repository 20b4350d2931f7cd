"""The manifest: the checksums a store's bytes are checked with, and the manifest's own rules.

Format version 2 names its checksum algorithm (``checksum_algorithm``, XXH3-128); version 1
used SHA-256 throughout and is still read. See ``docs/format.md``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import xxhash

from parag.errors import CorruptStoreError, NotAStoreError, UnsupportedFormatError

MANIFEST = "manifest.json"
FORMAT = "parag-store"
FORMAT_VERSION = 4  # 4: compressed storage's vectors in a raw file (docs/format.md, "Versions")
MAX_BLOCK_SIZE = 1 << 30
MAX_MANIFEST_BYTES = 1 << 26  # 64 MiB: a manifest lists ~50 bytes per 4 MiB block
# Names parag writes: data files with a generation tag, and manifests being written.
DATA_FILE = re.compile(r"[a-z_]+\.[0-9]{6,}-[0-9a-f]{6}\.[a-z][a-z0-9]*")
TMP_MANIFEST = re.compile(r"manifest\.json\.tmp-[0-9a-f]+")
# The manifest's checksum field, exactly as save writes it (see seal).
_CHECKSUM_FIELD = re.compile(rb'"checksum": "([0-9a-f]{32}|[0-9a-f]{64})"')


@dataclass(frozen=True)
class Checksum:
    """A checksum algorithm: its name in the manifest, and the file-entry key of its digests."""

    name: str
    new: Callable[[], Any]  # a hashlib-style object: update(), hexdigest()
    hex_digits: int
    blocks_key: str

    def hex(self, data: bytes | memoryview) -> str:
        h = self.new()
        h.update(data)
        return str(h.hexdigest())

    def is_digest(self, value: Any) -> bool:
        return isinstance(value, str) and len(value) == self.hex_digits and _is_lower_hex(value)


SHA256 = Checksum("sha256", hashlib.sha256, 64, "block_sha256")  # format version 1
XXH3_128 = Checksum("xxh3-128", xxhash.xxh3_128, 32, "block_checksums")  # format version 2
CURRENT = XXH3_128
CHECKSUMS = {c.name: c for c in (SHA256, XXH3_128)}


def _is_lower_hex(value: str) -> bool:
    return all(c in "0123456789abcdef" for c in value)


def seal(manifest: dict[str, Any]) -> bytes:
    """The manifest's bytes, with ``checksum`` = the XXH3-128 of those very bytes in which the
    checksum's own hex digits read as zeros. It covers every byte of the file: a flipped byte
    anywhere, even in whitespace or in the checksum itself, is detected."""
    placeholder = "0" * CURRENT.hex_digits
    draft = orjson.dumps(
        {**manifest, "checksum_algorithm": CURRENT.name, "checksum": placeholder},
        option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE,
    )
    field = f'"checksum": "{placeholder}"'.encode()
    return draft.replace(field, f'"checksum": "{CURRENT.hex(draft)}"'.encode(), 1)


def parse_manifest(raw: bytes, path: Path) -> dict[str, Any]:
    """Check the manifest's bytes and fields; return it.

    Order matters: the checksum is checked before any field is trusted, so a damaged
    ``format_version`` reads as damage, not as a newer format.
    """
    where = repr(str(path / MANIFEST))
    if len(raw) > MAX_MANIFEST_BYTES:
        raise CorruptStoreError(f"manifest {where} is larger than {MAX_MANIFEST_BYTES} bytes: it is not a manifest")
    try:
        manifest = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise CorruptStoreError(f"manifest {where} is corrupted: it is not valid JSON ({e})") from None
    if not isinstance(manifest, dict):
        raise CorruptStoreError(f"manifest {where} is corrupted: it is not a JSON object")
    checksum = _check_checksum(raw, manifest, path, where)
    if manifest.get("format") != FORMAT:
        raise NotAStoreError(f"manifest {where} describes a {manifest.get('format')!r}, not a {FORMAT!r}")
    version = manifest.get("format_version")
    if not is_int(version) or version < 1:
        raise CorruptStoreError(f"manifest {where} has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise _newer(manifest, path)
    if (checksum is SHA256) != (version == 1) or (version > 1 and "checksum_algorithm" not in manifest):
        raise CorruptStoreError(f"manifest {where}: format version {version} does not use {checksum.name}")
    _check_fields(manifest, checksum, where)
    return manifest


def checksum_of(manifest: dict[str, Any]) -> Checksum:
    """The algorithm of a checked manifest."""
    return CHECKSUMS[manifest.get("checksum_algorithm", SHA256.name)]


def _newer(manifest: dict[str, Any], path: Path) -> UnsupportedFormatError:
    return UnsupportedFormatError(
        f"store {str(path)!r} was written by parag {manifest.get('parag_version')} in format "
        f"version {manifest.get('format_version')}; this parag reads format versions up to "
        f"{FORMAT_VERSION}: upgrade parag"
    )


def _check_checksum(raw: bytes, manifest: dict[str, Any], path: Path, where: str) -> Checksum:
    name = manifest.get("checksum_algorithm", SHA256.name)
    checksum = CHECKSUMS.get(name) if isinstance(name, str) else None
    if checksum is None:
        version = manifest.get("format_version")
        if is_int(version) and version > FORMAT_VERSION:
            raise _newer(manifest, path)
        raise CorruptStoreError(f"manifest {where} names an unknown checksum algorithm {name!r}")
    fields = _CHECKSUM_FIELD.findall(raw)
    if len(fields) != 1 or manifest.get("checksum") != fields[0].decode() or len(fields[0]) != checksum.hex_digits:
        raise CorruptStoreError(f"manifest {where} is corrupted: its checksum field is missing or damaged")
    zeroed = _CHECKSUM_FIELD.sub(b'"checksum": "' + b"0" * checksum.hex_digits + b'"', raw)
    if checksum.hex(zeroed) != manifest["checksum"]:
        raise CorruptStoreError(f"manifest {where} is corrupted: it fails its {checksum.name} checksum")
    return checksum


def _check_fields(manifest: dict[str, Any], checksum: Checksum, where: str) -> None:
    """The fields persistence itself relies on (the store checks its own)."""
    generation, files = manifest.get("generation"), manifest.get("files")
    if not is_int(generation) or generation < 1:
        raise CorruptStoreError(f"manifest {where} has an invalid generation {generation!r}")
    if not isinstance(files, dict) or not files:
        raise CorruptStoreError(f"manifest {where} has no files table")
    for role, info in files.items():
        problem = _file_entry_problem(info, checksum)
        if problem:
            raise CorruptStoreError(f"manifest {where}: the entry of the {role} file {problem}")
    names = [info["name"] for info in files.values()]
    if len(set(names)) != len(names):
        raise CorruptStoreError(f"manifest {where} names one file for two roles")


def _file_entry_problem(info: Any, checksum: Checksum) -> str | None:
    if not isinstance(info, dict):
        return "is not an object"
    name, size, block, digests = (info.get(k) for k in ("name", "size", "block_size", checksum.blocks_key))
    if not isinstance(name, str) or not DATA_FILE.fullmatch(name):
        # Also what keeps a crafted manifest from pointing outside the directory.
        return f"has an invalid name {name!r}"
    if not is_int(size) or size < 0:
        return f"has an invalid size {size!r}"
    if not is_int(block) or not 0 < block <= MAX_BLOCK_SIZE:
        return f"has an invalid block_size {block!r}"
    n_blocks = -(-size // block)
    if not isinstance(digests, list) or len(digests) != n_blocks:
        return f"should list {n_blocks} block checksums in {checksum.blocks_key}"
    if not all(checksum.is_digest(d) for d in digests):
        return f"has an invalid block checksum (expected {checksum.hex_digits} lowercase hex digits)"
    return None


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
