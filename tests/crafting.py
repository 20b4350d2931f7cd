"""Crafting store directories as an attacker (or a careful test) would: change any file,
then recompute every size and checksum by the rules of docs/format.md (not parag's code),
so that the store passes every integrity check whatever its content."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import xxhash


def seal(manifest: dict[str, Any]) -> bytes:
    """Manifest bytes by the rule of docs/format.md: XXH3-128 of the file with the
    checksum's 32 hex digits read as zeros."""
    zeros = "0" * 32
    draft = orjson.dumps(
        {**manifest, "checksum_algorithm": "xxh3-128", "checksum": zeros},
        option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE,
    )
    digest = xxhash.xxh3_128(draft).hexdigest()
    return draft.replace(f'"checksum": "{zeros}"'.encode(), f'"checksum": "{digest}"'.encode())


def manifest_of(path: Path) -> dict[str, Any]:
    return orjson.loads((path / "manifest.json").read_bytes())


def reseal(path: Path, changes: dict[str, Any] | None = None, files: dict[str, bytes] | None = None) -> None:
    """Apply ``changes`` to the manifest and new contents to data files (by role), then
    recompute every size, block checksum and the manifest checksum: a store that passes every
    integrity check, whatever its content."""
    manifest = {**manifest_of(path), **(changes or {})}
    for role, data in (files or {}).items():
        (path / manifest["files"][role]["name"]).write_bytes(data)
    for info in manifest["files"].values():
        data = (path / info["name"]).read_bytes()
        block = info["block_size"]
        info["size"] = len(data)
        info["block_checksums"] = [
            xxhash.xxh3_128(data[i : i + block]).hexdigest() for i in range(0, len(data), block)
        ]
    (path / "manifest.json").write_bytes(seal(manifest))


def data_file(path: Path, role: str) -> Path:
    return path / manifest_of(path)["files"][role]["name"]
