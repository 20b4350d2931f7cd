"""``parag info`` and ``parag verify``: what a store holds, and whether it is sound."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import click

from parag.cli.errors import CORRUPT
from parag.cli.output import clip, compact_json, emit_json, key_values, progress, say, table
from parag.cli.options import json_option, load_store, store_argument
from parag import persistence
from parag.errors import CorruptStoreError
from parag.vectorstore import FAISSVectorStore

EXAMPLES = 3  # distinct example values shown per metadata key
CHUNK = 50_000  # records decoded at a time


@click.command()
@store_argument
@click.option("--sample", type=click.IntRange(min=0), metavar="N",
              help="Read the metadata of only the first N records for the key summary (default: all).")
@json_option
def info(store: Path, sample: int | None, as_json: bool) -> None:
    """Describe a store: configuration, counts, size on disk and in memory, format, and the
    metadata keys with their types and example values.

    The store is loaded (verified, memory-mapped) through parag's public API; the file
    details come from its manifest (docs/format.md).

    \b
    Examples:
      parag info my-store
      parag info my-store --sample 10000 --json
    """
    with load_store(store, read_only=True) as s, persistence.load(store, verify=False) as files:
        manifest = files.manifest  # (checked again)
        sizes = {role: entry["size"] for role, entry in manifest["files"].items()}
        summary = {
            "store": str(store),
            "dimension": s.dimension, "index_type": s.index_type, "metric": s.metric, "params": s.params,
            "trained": s.is_trained,
            "count": len(s), "deleted": manifest["n_slots"] - manifest["count"], "next_id": manifest["next_id"],
            "format_version": manifest["format_version"], "written_by": manifest.get("parag_version"),
            "generation": manifest["generation"],
            "disk_bytes": sum(sizes.values()) + (store / persistence.MANIFEST).stat().st_size,
            # What a full load holds: the index as FAISS serialises it, the ids and the metadata
            # bytes (parag keeps metadata encoded); Python's per-record bookkeeping comes on top.
            "memory_estimate_bytes": sum(sizes.values()),
            "files": {role: {"name": e["name"], "size": e["size"]} for role, e in manifest["files"].items()},
            "metadata_keys": _metadata_keys(s, sample),
        }
    if as_json:
        emit_json(summary)
        return
    shown = {k: v for k, v in summary.items() if k not in ("store", "files", "metadata_keys")}
    shown["disk_bytes"] = _size(summary["disk_bytes"])
    shown["memory_estimate_bytes"] = f"≈ {_size(summary['memory_estimate_bytes'])}"
    key_values(f"store {store}", shown.items())
    table("files", ["role", "name", "bytes"], [[r, f["name"], f["size"]] for r, f in summary["files"].items()])
    keys = summary["metadata_keys"]
    table("metadata keys", ["key", "records", "types", "examples"],
          [[k, v["count"], ", ".join(v["types"]), ", ".join(v["examples"])] for k, v in keys.items()])


def _metadata_keys(store: FAISSVectorStore, sample: int | None) -> dict[str, dict[str, Any]]:
    """Per key: how many records have it, its JSON types, a few distinct example values."""
    ids = store.ids()[:sample] if sample is not None else store.ids()
    keys: dict[str, dict[str, Any]] = defaultdict(lambda: {"count": 0, "types": set(), "examples": []})
    with progress("reading metadata", len(ids)) as advance:
        for start in range(0, len(ids), CHUNK):
            for meta in store.get(ids[start : start + CHUNK]).metadata:
                for key, value in meta.items():
                    entry = keys[key]
                    entry["count"] += 1
                    entry["types"].add(_json_type(value))
                    example = clip(compact_json(value), 24)
                    if len(entry["examples"]) < EXAMPLES and example not in entry["examples"]:
                        entry["examples"].append(example)
            advance(min(CHUNK, len(ids) - start))
    return {k: {**v, "types": sorted(v["types"])} for k, v in sorted(keys.items())}


def _json_type(value: Any) -> str:
    names = {bool: "bool", int: "int", float: "float", str: "string", list: "list", dict: "object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


@click.command()
@store_argument
@json_option
def verify(store: Path, as_json: bool) -> None:
    """Check a store: every checksum and every cross-check a load makes.

    Exit code 0 if the store is sound, 4 if it is damaged, 3 if there is no store. A
    damaged store's files are then each checked on their own (size, checksum of every
    block), so --json lists the problems per file.

    \b
    Examples:
      parag verify my-store
      parag verify my-store --json || echo "restore my-store from a backup"
    """
    problems: dict[str, list[str]] = {}
    try:
        with progress("verifying", None):
            load_store(store, read_only=True).close()  # mapped: checked whole, without holding it in RAM
    except CorruptStoreError as exc:
        problems = _file_problems(store)
        load_problem = " ".join(str(exc).split())
        named = [f for f in problems if f in load_problem] or [_named_file(store, load_problem)]
        if not any(load_problem in p for f in named for p in problems.get(f, [])):
            problems.setdefault(named[0], []).append(load_problem)
    if as_json:
        emit_json({"store": str(store), "sound": not problems, "problems": problems})
    elif problems:
        for file, found in problems.items():
            for problem in found:
                say(f"{file}: {problem}")
    else:
        say(f"{store}: sound (every checksum and cross-check passed)")
    if problems:
        raise click.exceptions.Exit(CORRUPT)


def _named_file(store: Path, message: str) -> str:
    """The store file a load's error message is about (the manifest if it names none)."""
    names = [p.name for p in store.iterdir() if p.name in message] if store.is_dir() else []
    return max(names, key=len) if names else persistence.MANIFEST


def _file_problems(store: Path) -> dict[str, list[str]]:
    """Each data file checked on its own (present, its size, every block's checksum), so
    that every damaged file is named, not only the first."""
    try:
        problems = persistence.check_files(store)
    except CorruptStoreError as exc:  # the manifest itself: nothing more to read
        message = " ".join(str(exc).split())
        return {_named_file(store, message): [message]}
    return {name: [" ".join(p.split()) for p in found] for name, found in problems.items()}
