"""The store directory format (docs/format.md): what a load accepts, what it refuses and how.

Crafted stores are re-sealed with :func:`seal` and :func:`reseal`, written from the
format document rather than from parag's code, so the tests also check the document.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import xxhash

import parag.persistence as persistence
from parag import FAISSVectorStore
from tests.crafting import data_file, manifest_of, reseal, seal
from parag.errors import (
    CorruptStoreError,
    NotAStoreError,
    ParagError,
    StoreClosedError,
    StoreNotFoundError,
    UnsupportedFormatError,
)

D = 8


def make_store(n: int = 300, index_type: str = "Flat", seed: int = 0, **params: int) -> FAISSVectorStore:
    rng = np.random.default_rng(seed)
    store = FAISSVectorStore(D, index_type, **params)
    store.add(rng.standard_normal((n, D)), [{"i": i, "s": f"text {i}"} for i in range(n)])
    store.delete([1, 2, 3])
    return store


def snapshot(store: FAISSVectorStore) -> tuple[Any, ...]:
    """Everything a user can observe of a store."""
    queries = np.random.default_rng(99).standard_normal((5, D))
    ids = store.ids()
    return ids, store.get(ids).metadata, store.search(queries, 7), len(store)


@pytest.fixture
def saved(tmp_path: Path) -> tuple[FAISSVectorStore, Path]:
    store = make_store()
    path = tmp_path / "store"
    store.save(path)
    return store, path


def load_error(path: Path, **options: Any) -> ParagError:
    with pytest.raises(ParagError) as info:
        FAISSVectorStore.load(path, **options)
    return info.value


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("index_type, params", [("Flat", {}), ("HNSW", {"M": 8}), ("IVFFlat", {"nlist": 4, "nprobe": 2})])
@pytest.mark.parametrize("verify", [True, False])
def test_round_trip(tmp_path: Path, index_type: str, params: dict, verify: bool) -> None:
    store = make_store(300, index_type, **params)
    store.save(tmp_path / "s")
    assert snapshot(FAISSVectorStore.load(tmp_path / "s", verify=verify)) == snapshot(store)


def test_round_trip_of_an_empty_store(tmp_path: Path) -> None:
    FAISSVectorStore(D).save(tmp_path / "s")
    loaded = FAISSVectorStore.load(tmp_path / "s")
    assert len(loaded) == 0 and loaded.ids() == []
    assert loaded.add(np.ones(D)) == [0]


def test_round_trip_spanning_several_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Small blocks, so that the index, ids and metadata each span many of them."""
    monkeypatch.setattr(persistence._writing, "BLOCK_SIZE", 1000)
    store = make_store(500, "HNSW", M=8)
    store.save(tmp_path / "s")
    assert len(manifest_of(tmp_path / "s")["files"]["index"]["block_checksums"]) > 20
    for options in ({}, {"verify": False}, {"mmap": True}):
        assert snapshot(FAISSVectorStore.load(tmp_path / "s", **options)) == snapshot(store)
    index = data_file(tmp_path / "s", "index")
    data = bytearray(index.read_bytes())
    data[7777] ^= 0x40
    index.write_bytes(data)
    error = load_error(tmp_path / "s")
    assert type(error) is CorruptStoreError and "bytes 7000-7999 (block 7)" in str(error)


def test_load_into_an_instance_replaces_its_contents(saved: tuple[FAISSVectorStore, Path]) -> None:
    store, path = saved
    other = FAISSVectorStore(3, "HNSW")
    assert other.load(path) is other
    assert snapshot(other) == snapshot(store) and other.dimension == D


def test_manifest_fields(saved: tuple[FAISSVectorStore, Path]) -> None:
    store, path = saved
    manifest = manifest_of(path)
    assert set(manifest) == {
        "checksum", "checksum_algorithm", "count", "dimension", "files", "format", "format_version",
        "generation", "id_kind", "index_type", "kind", "metric", "n_slots", "next_id", "params", "parag_version",
        "trained",
    }
    assert (manifest["format"], manifest["format_version"], manifest["kind"]) == ("parag-store", 4, "FAISSVectorStore")
    assert manifest["checksum_algorithm"] == "xxh3-128"
    assert (manifest["count"], manifest["n_slots"], manifest["next_id"], manifest["id_kind"]) == (297, 300, 300, "int")
    assert set(manifest["files"]) == {"index", "ids", "metadata", "documents"}
    for role, info in manifest["files"].items():
        data = (path / info["name"]).read_bytes()
        assert info["name"].startswith(role + ".000001-")
        assert info["size"] == len(data) and info["block_size"] == persistence.BLOCK_SIZE
        assert info["block_checksums"] == [xxhash.xxh3_128(data).hexdigest()]
    assert (path / "manifest.json").read_bytes() == seal(manifest)
    assert sorted(p.name for p in path.iterdir()) == sorted(
        [".parag.lock", "manifest.json"] + [i["name"] for i in manifest["files"].values()]
    )


def test_ids_and_metadata_files_are_plain(saved: tuple[FAISSVectorStore, Path]) -> None:
    """ids.npy maps slot -> id (-1 deleted); metadata.jsonl has one line per slot, null if deleted."""
    _, path = saved
    slot_ids = np.load(data_file(path, "ids"), allow_pickle=False)
    assert slot_ids.dtype == np.int64 and slot_ids.tolist()[:5] == [0, -1, -1, -1, 4]
    lines = data_file(path, "metadata").read_bytes().split(b"\n")
    assert len(lines) == 300 and lines[1] == b"null" and orjson.loads(lines[4]) == {"i": 4, "s": "text 4"}


def test_each_save_is_a_new_generation_and_old_files_go(saved: tuple[FAISSVectorStore, Path]) -> None:
    store, path = saved
    first = set(os.listdir(path))
    store.add(np.ones(D))
    store.save(path)
    manifest = manifest_of(path)
    assert manifest["generation"] == 2
    assert not first & {i["name"] for i in manifest["files"].values()}
    assert set(os.listdir(path)) == {".parag.lock", "manifest.json"} | {i["name"] for i in manifest["files"].values()}
    assert snapshot(FAISSVectorStore.load(path)) == snapshot(store)


# --------------------------------------------------------------------------- the manifest


@pytest.mark.parametrize("mask", [0x01, 0xFF])
def test_every_flipped_byte_of_the_manifest_is_detected(saved: tuple[FAISSVectorStore, Path], mask: int) -> None:
    """Exhaustive: each byte, flipped, gives CorruptStoreError (the checksum covers
    whitespace and itself too). No FAISS parse happens: this runs in-process."""
    _, path = saved
    original = (path / "manifest.json").read_bytes()
    for offset in range(len(original)):
        damaged = bytearray(original)
        damaged[offset] ^= mask
        (path / "manifest.json").write_bytes(damaged)
        error = load_error(path)
        assert type(error) is CorruptStoreError, (offset, error)
        assert "manifest" in str(error) and str(path) in str(error)


def test_reformatted_manifest_is_refused(saved: tuple[FAISSVectorStore, Path]) -> None:
    """Same JSON content, other bytes: the checksum is over bytes, not over parsed JSON."""
    _, path = saved
    manifest = manifest_of(path)
    (path / "manifest.json").write_bytes(orjson.dumps(manifest))
    assert "checksum" in str(load_error(path))


@pytest.mark.parametrize("size", [0, 1, "half", "minus1"])
def test_truncated_manifest(saved: tuple[FAISSVectorStore, Path], size: Any) -> None:
    _, path = saved
    data = (path / "manifest.json").read_bytes()
    size = {"half": len(data) // 2, "minus1": len(data) - 1}.get(size, size)
    (path / "manifest.json").write_bytes(data[:size])
    assert type(load_error(path)) is CorruptStoreError


def test_manifest_of_a_newer_format(saved: tuple[FAISSVectorStore, Path]) -> None:
    _, path = saved
    reseal(path, {"format_version": 5, "parag_version": "9.0.0", "something_new": [1, 2]})
    error = load_error(path)
    assert isinstance(error, UnsupportedFormatError)
    assert "format version 5" in str(error) and "9.0.0" in str(error) and "upgrade parag" in str(error)


def make_newer(path: Path, unverifiable: bool = False) -> None:
    """Turn the store at ``path`` into one of format version 5 by "parag 9.0.0" (and, with
    ``unverifiable``, a checksum algorithm this parag does not know)."""
    if not unverifiable:
        reseal(path, {"format_version": 5, "parag_version": "9.0.0"})
        return
    manifest = {**manifest_of(path), "format_version": 5, "parag_version": "9.0.0",
                "checksum_algorithm": "blake3", "checksum": "0" * 64}
    (path / "manifest.json").write_bytes(orjson.dumps(manifest))


@pytest.mark.parametrize("case", ["newer", "newer, unknown checksum", "newer after the first check"])
def test_save_over_a_store_of_a_newer_format_is_refused(
    saved: tuple[FAISSVectorStore, Path], monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """An older parag must not downgrade a newer store (it used to overwrite it silently);
    the last case has a newer parag's save land after the first check, before the lock."""
    _, path = saved
    before_disk: dict[str, bytes] = {}
    if case == "newer after the first check":
        real_check = persistence._directory.check_ours

        def check_then_newer_save(where: Path) -> None:
            real_check(where)
            make_newer(where)
            before_disk.update(tree(where))

        monkeypatch.setattr(persistence._directory, "check_ours", check_then_newer_save)
    else:
        make_newer(path, unverifiable=case == "newer, unknown checksum")
        before_disk.update(tree(path))
    other = make_store(seed=1)
    before_store = snapshot(other)
    with pytest.raises(UnsupportedFormatError) as info:
        other.save(path)
    message = str(info.value)
    assert all(words in message for words in ("format version 5", "9.0.0", "upgrade parag", "another directory"))
    assert tree(path) == before_disk
    assert isinstance(load_error(path), UnsupportedFormatError)
    assert snapshot(other) == before_store


@pytest.mark.parametrize("version", [0, -1, "1", 1.0, None, True])
def test_manifest_with_an_invalid_format_version(saved: tuple[FAISSVectorStore, Path], version: Any) -> None:
    _, path = saved
    reseal(path, {"format_version": version})
    error = load_error(path)
    assert type(error) is CorruptStoreError and "format_version" in str(error)


def test_manifest_of_another_format(saved: tuple[FAISSVectorStore, Path]) -> None:
    _, path = saved
    reseal(path, {"format": "other-store"})
    assert type(load_error(path)) is NotAStoreError


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"kind": "OtherStore"}, "OtherStore"),
        ({"index_type": "LSH"}, "configuration"),
        ({"dimension": 0}, "configuration"),
        ({"params": {"nlist": 4}}, "configuration"),
        ({"metric": "hamming"}, "configuration"),
        ({"count": 298}, "298"),
        ({"count": 296}, "296"),
        ({"count": 301}, "count 301 > n_slots 300"),
        ({"n_slots": 301}, "301"),
        ({"n_slots": 299}, "299"),
        ({"next_id": 299}, "below 299"),
        ({"next_id": -1}, "counts are invalid"),
        ({"count": "297"}, "counts are invalid"),
        ({"trained": False}, None),  # a Flat store ignores it
        ({"generation": 0}, "generation"),
        ({"files": {}}, "files"),
    ],
)
def test_manifest_that_disagrees(saved: tuple[FAISSVectorStore, Path], changes: dict, words: str | None) -> None:
    store, path = saved
    reseal(path, changes)
    if words is None:
        assert snapshot(FAISSVectorStore.load(path)) == snapshot(store)
        return
    error = load_error(path)
    expected = NotAStoreError if "kind" in changes else CorruptStoreError
    assert type(error) is expected and words in str(error), error


@pytest.mark.parametrize(
    "entry, words",
    [
        ({"name": "../index.000001-abcdef.faiss"}, "invalid name"),
        ({"name": "/etc/passwd"}, "invalid name"),
        ({"name": "index.faiss"}, "invalid name"),
        ({"size": -1}, "invalid size"),
        ({"block_size": 0}, "invalid block_size"),
        ({"block_checksums": []}, "block checksums"),
        ({"block_checksums": ["XYZ"]}, "invalid block checksum"),
    ],
)
def test_manifest_with_a_bad_file_entry(saved: tuple[FAISSVectorStore, Path], entry: dict, words: str) -> None:
    _, path = saved
    manifest = manifest_of(path)
    manifest["files"]["index"].update(entry)
    (path / "manifest.json").write_bytes(seal(manifest))
    error = load_error(path)
    assert type(error) is CorruptStoreError and words in str(error) and "index" in str(error)


def test_manifest_missing_a_role(saved: tuple[FAISSVectorStore, Path]) -> None:
    _, path = saved
    manifest = manifest_of(path)
    del manifest["files"]["ids"]
    (path / "manifest.json").write_bytes(seal(manifest))
    assert type(load_error(path)) is CorruptStoreError


# --------------------------------------------------------------------------- data files that disagree


def npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


class Boom:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os._exit, (13,))  # would kill the test process if ever unpickled


def pickled_npy() -> bytes:
    """An object array: the .npy holds a pickle that would run code. parag must refuse it
    by its dtype, without unpickling."""
    return npy(np.array([Boom()] * 300, dtype=object), allow_pickle=True)


def test_ids_file_with_a_duplicate_live_id(saved: tuple[FAISSVectorStore, Path]) -> None:
    _, path = saved
    ids = np.load(data_file(path, "ids"))
    ids[10] = ids[11]
    reseal(path, files={"ids": npy(ids)})
    assert "distinct live ids" in str(load_error(path))


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda ids: ids.astype(np.int32), "int32"),
        (lambda ids: ids.astype(">i8"), ">i8"),
        (lambda ids: ids[:-1], "(299,)"),
        (lambda ids: ids.reshape(20, 15), "(20, 15)"),
        (lambda ids: np.where(ids == 0, -5, ids), "negative ids"),
        (lambda ids: np.where(ids == 0, -1, ids), "297"),  # one live id fewer than count
    ],
)
def test_ids_file_that_disagrees(saved: tuple[FAISSVectorStore, Path], make: Any, words: str) -> None:
    _, path = saved
    reseal(path, files={"ids": npy(make(np.load(data_file(path, "ids"))))})
    error = load_error(path)
    assert type(error) is CorruptStoreError and words in str(error), error


@pytest.mark.parametrize(
    "data, words",
    [
        (b"\x93NUMPY\x01\x00garbage", "not a valid .npy"),
        (b"not numpy at all", "not a valid .npy"),
        (b"", "not a valid .npy"),
        (npy(np.arange(300, dtype=np.int64))[:-8], "bytes of ids"),
        (npy(np.arange(300, dtype=np.int64)) + b"\0" * 8, "bytes of ids"),
        (npy(np.zeros(300, "U3")), "<U3"),
        (pickled_npy(), "object"),
    ],
)
def test_ids_file_that_is_not_an_int64_npy(saved: tuple[FAISSVectorStore, Path], data: bytes, words: str) -> None:
    _, path = saved
    reseal(path, files={"ids": data})
    error = load_error(path)
    assert type(error) is CorruptStoreError and words in str(error), error


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda lines: lines[:-1], "299 lines"),
        (lambda lines: lines + [b"{}"], "301 lines"),
        (lambda lines: [b"null"] + lines[1:], "slot 0 has no metadata but id 0"),
        (lambda lines: lines[:1] + [b"{}"] + lines[2:], "slot 1 has some metadata but id -1"),
    ],
)
def test_metadata_file_that_disagrees(saved: tuple[FAISSVectorStore, Path], edit: Any, words: str) -> None:
    _, path = saved
    lines = data_file(path, "metadata").read_bytes().split(b"\n")
    reseal(path, files={"metadata": b"\n".join(edit(lines))})
    error = load_error(path)
    assert type(error) is CorruptStoreError and words in str(error) and "metadata" in str(error), error


def ip_store() -> FAISSVectorStore:
    """Same size and index type as the saved store, another metric."""
    store = FAISSVectorStore(D, metric="IP")
    store.add(np.ones((300, D)))
    return store


@pytest.mark.parametrize(
    "make_donor, words",
    [
        (lambda: make_store(300, "HNSW", M=8), "IndexHNSWFlat, expected IndexFlat"),
        (lambda: make_store(299), "299 vectors"),
        (ip_store, "metric"),
    ],
)
def test_index_file_that_disagrees(saved: tuple[FAISSVectorStore, Path], tmp_path: Path, make_donor: Any, words: str) -> None:
    _, path = saved
    make_donor().save(tmp_path / "donor")
    reseal(path, files={"index": data_file(tmp_path / "donor", "index").read_bytes()})
    error = load_error(path)
    assert type(error) is CorruptStoreError and words in str(error) and "index" in str(error), error


def test_index_file_that_faiss_cannot_parse(saved: tuple[FAISSVectorStore, Path]) -> None:
    _, path = saved
    reseal(path, files={"index": b"IxF2" + b"\xff" * 100})
    error = load_error(path)
    assert type(error) is CorruptStoreError and "not a valid FAISS index" in str(error)


def test_index_dimension_that_disagrees(tmp_path: Path) -> None:
    small, big = FAISSVectorStore(4), FAISSVectorStore(8)
    small.add(np.ones((10, 4)))
    big.add(np.ones((10, 8)))
    small.save(tmp_path / "small")
    big.save(tmp_path / "big")
    reseal(tmp_path / "small", files={"index": data_file(tmp_path / "big", "index").read_bytes()})
    assert "dimension is 8" in str(load_error(tmp_path / "small"))


# --------------------------------------------------------------------------- paths that are not stores


def test_missing_path(tmp_path: Path) -> None:
    error = load_error(tmp_path / "nope")
    assert isinstance(error, StoreNotFoundError) and isinstance(error, FileNotFoundError)
    assert "does not exist" in str(error)


def test_file_instead_of_a_store(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("hello")
    assert type(load_error(tmp_path / "f")) is NotAStoreError


@pytest.mark.parametrize(
    "contents",
    [{}, {"notes.txt": b"mine"}, {".parag.lock": b""}, {"manifest.json": b'{"name": "my project"}'},
     {"manifest.json": b"\x00\x01 not json"}],
)
def test_directory_that_is_not_a_store(tmp_path: Path, contents: dict[str, bytes]) -> None:
    for name, data in contents.items():
        (tmp_path / name).write_bytes(data)
    error = load_error(tmp_path)
    assert type(error) is NotAStoreError and str(tmp_path) in str(error)


def test_store_whose_manifest_was_deleted(saved: tuple[FAISSVectorStore, Path]) -> None:
    _, path = saved
    (path / "manifest.json").unlink()
    error = load_error(path)
    assert type(error) is CorruptStoreError and "no manifest.json" in str(error)


# --------------------------------------------------------------------------- verify=False


def test_verify_false_skips_hashing_but_not_sizes(saved: tuple[FAISSVectorStore, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    store, path = saved
    calls = []
    real = persistence._manifest.Checksum.hex
    monkeypatch.setattr(persistence._manifest.Checksum, "hex", lambda *a: calls.append(1) or real(*a))
    FAISSVectorStore.load(path, verify=False)
    unverified = len(calls)
    assert unverified >= 1  # the manifest's own checksum is always checked
    calls.clear()
    FAISSVectorStore.load(path)
    assert len(calls) - unverified == 4  # one block per data file
    monkeypatch.undo()

    meta = data_file(path, "metadata")
    data = bytearray(meta.read_bytes())
    data[data.index(b"text 150") + 1] ^= 0x01  # still one JSON object per line
    meta.write_bytes(data)
    assert type(load_error(path)) is CorruptStoreError
    FAISSVectorStore.load(path, verify=False)  # documented: a flip may load unnoticed

    meta.write_bytes(data[:-1])
    error = load_error(path, verify=False)
    assert type(error) is CorruptStoreError and "truncated" in str(error)
    meta.unlink()
    error = load_error(path, verify=False)
    assert type(error) is CorruptStoreError and "missing" in str(error)


# --------------------------------------------------------------------------- refusals and leftovers


def tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_save_over_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"precious")
    with pytest.raises(NotAStoreError, match="is a file"):
        make_store().save(tmp_path / "f")
    assert (tmp_path / "f").read_bytes() == b"precious"


@pytest.mark.parametrize(
    "contents",
    [
        {"thesis.tex": b"years of work", "sub/data.csv": b"1,2"},
        {"manifest.json": b'{"project": "mine"}'},
        {"index.faiss": b"someone else's index", "index.pkl": b"..."},
    ],
)
def test_save_over_a_directory_that_is_not_a_store_is_refused(tmp_path: Path, contents: dict[str, bytes]) -> None:
    for name, data in contents.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(data)
    before = tree(tmp_path)
    with pytest.raises(NotAStoreError, match="refusing to save"):
        make_store().save(tmp_path)
    assert tree(tmp_path) == before


def test_save_into_an_empty_directory_and_new_parents(tmp_path: Path) -> None:
    store = make_store()
    (tmp_path / "empty").mkdir()
    store.save(tmp_path / "empty")
    store.save(tmp_path / "a" / "b" / "c")
    assert snapshot(FAISSVectorStore.load(tmp_path / "empty")) == snapshot(store)
    assert snapshot(FAISSVectorStore.load(tmp_path / "a" / "b" / "c")) == snapshot(store)


def test_files_of_the_user_beside_a_store_are_kept(saved: tuple[FAISSVectorStore, Path]) -> None:
    store, path = saved
    (path / "README").write_bytes(b"my notes")
    (path / "index.faiss").write_bytes(b"not ours")
    store.save(path)
    FAISSVectorStore.load(path)
    assert (path / "README").read_bytes() == b"my notes"
    assert (path / "index.faiss").read_bytes() == b"not ours"


def test_damaged_store_can_be_saved_over(saved: tuple[FAISSVectorStore, Path]) -> None:
    store, path = saved
    (path / "manifest.json").write_bytes(os.urandom(500))
    assert type(load_error(path)) is CorruptStoreError
    store.save(path)
    assert snapshot(FAISSVectorStore.load(path)) == snapshot(store)


def plant_leftovers(path: Path) -> set[str]:
    """What an interrupted save leaves: data files of a newer generation, a manifest being written."""
    names = set()
    for info in manifest_of(path)["files"].values():
        tag = info["name"].split(".")[1]  # "000001-3fa2c1"
        name = info["name"].replace(tag, "000002-abc123")
        shutil.copy(path / info["name"], path / name)
        names.add(name)
    (path / "index.000002-abc124.faiss").write_bytes(b"half written")
    (path / "manifest.json.tmp-abc123").write_bytes(b'{"half')
    return names | {"index.000002-abc124.faiss", "manifest.json.tmp-abc123"}


@pytest.mark.parametrize("action", ["load", "save"])
def test_leftovers_of_an_interrupted_save_are_removed(saved: tuple[FAISSVectorStore, Path], action: str) -> None:
    store, path = saved
    leftovers = plant_leftovers(path)
    assert leftovers <= set(os.listdir(path))
    if action == "load":
        assert snapshot(FAISSVectorStore.load(path)) == snapshot(store)
    else:
        store.save(path)
    assert not leftovers & set(os.listdir(path))
    assert snapshot(FAISSVectorStore.load(path)) == snapshot(store)


def test_leftovers_are_kept_while_a_save_may_be_running(saved: tuple[FAISSVectorStore, Path]) -> None:
    """A load must not delete the files of a save in progress (it holds the lock)."""
    fcntl = pytest.importorskip("fcntl")
    store, path = saved
    leftovers = plant_leftovers(path)
    fd = os.open(path / ".parag.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert snapshot(FAISSVectorStore.load(path)) == snapshot(store)
        assert leftovers <= set(os.listdir(path))
    finally:
        os.close(fd)
    FAISSVectorStore.load(path)
    assert not leftovers & set(os.listdir(path))


# --------------------------------------------------------------------------- failures and races


@pytest.mark.parametrize("fail_at", ["data", "manifest", "dir_fsync"])
def test_a_failed_save_leaves_the_old_store(saved: tuple[FAISSVectorStore, Path], monkeypatch: pytest.MonkeyPatch, fail_at: str) -> None:
    store, path = saved
    before = tree(path)
    newer = make_store(seed=1)

    def disk_full(*args: Any) -> None:
        raise OSError(28, "No space left on device")

    if fail_at == "data":
        real_write = persistence._writing.HashingWriter.write
        monkeypatch.setattr(
            persistence._writing.HashingWriter, "write",
            lambda self, data: disk_full() if self.size + len(data) > 1000 else real_write(self, data),
        )
    elif fail_at == "manifest":
        monkeypatch.setattr(persistence._writing, "_write_durably", disk_full)
    else:
        monkeypatch.setattr(persistence._directory, "fsync_dir", disk_full)
    with pytest.raises(OSError, match="No space"):
        newer.save(path)
    monkeypatch.undo()
    assert tree(path) == before
    assert snapshot(FAISSVectorStore.load(path)) == snapshot(store)


@pytest.mark.parametrize("user_file", [False, True])
def test_a_failed_save_into_a_new_directory_removes_only_what_it_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, user_file: bool
) -> None:
    """The new directory and its new parents go; but a file that appeared in it meanwhile
    keeps it, and its lock file with it (another save may be waiting on that lock)."""
    path = tmp_path / "new" / "store"

    def disk_full(*args: Any) -> None:
        if user_file:
            (path / "notes.txt").write_bytes(b"mine")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(persistence._writing, "_write_file", disk_full)
    with pytest.raises(OSError, match="No space"):
        make_store().save(path)
    if user_file:
        assert sorted(os.listdir(path)) == [".parag.lock", "notes.txt"]
    else:
        assert os.listdir(tmp_path) == []


def test_a_save_committed_during_a_load_is_read_whole(saved: tuple[FAISSVectorStore, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process commits a save (deleting the old files) right after this load read
    the old manifest: the load reads the new manifest and returns the new store."""
    store, path = saved
    newer = make_store(seed=1)
    real = persistence._reading.read_manifest
    calls = []

    def read_then_race(p: Path) -> dict[str, Any]:
        manifest = real(p)
        if not calls:
            newer.save(path)
        calls.append(1)
        return manifest

    monkeypatch.setattr(persistence._reading, "read_manifest", read_then_race)
    assert snapshot(FAISSVectorStore.load(path)) == snapshot(newer)
    assert len(calls) == 2


@pytest.mark.parametrize("options", [{}, {"verify": False}, {"mmap": True}])
def test_files_deleted_after_a_load_opened_them(
    saved: tuple[FAISSVectorStore, Path], options: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once opened, a load reads its generation even if a save deletes it meanwhile."""
    store, path = saved
    real_load = persistence.load

    def load_then_race(p: Path, verify: bool = True) -> persistence.StoreFiles:
        files = real_load(p, verify=verify)
        make_store(seed=1).save(path)  # commits and deletes the files just opened
        assert not (path / files.manifest["files"]["index"]["name"]).exists()
        return files

    monkeypatch.setattr(persistence, "load", load_then_race)
    assert snapshot(FAISSVectorStore.load(path, **options)) == snapshot(store)


def test_reading_closed_store_files_says_to_load_again(saved: tuple[FAISSVectorStore, Path]) -> None:
    """A read after the StoreFiles closed names the file and says to load the store again:
    not the advice for an index taken from a store (store.faiss_index), which shares the read."""
    _, path = saved
    with persistence.load(path) as files:
        out = memoryview(bytearray(files.size("ids")))
    with pytest.raises(StoreClosedError) as raised:
        files.read_into("ids", out)
    assert str(raised.value) == (
        f"{files.describe('ids')} is closed: the StoreFiles that opened it was closed (close(), "
        "or the end of its with block); load the store again"
    )


@pytest.mark.parametrize("role", ["index", "ids", "metadata"])
def test_files_checked_on_a_background_thread(saved: tuple[FAISSVectorStore, Path], monkeypatch: pytest.MonkeyPatch, role: str) -> None:
    """Large files are hashed on a background thread (every file here): damage is still caught,
    and a load that fails early stops that thread before it returns."""
    import threading

    store, path = saved
    monkeypatch.setattr(persistence._reading, "_BACKGROUND_FROM", 0)
    assert snapshot(FAISSVectorStore.load(path)) == snapshot(store)
    target = data_file(path, role)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x40
    target.write_bytes(data)
    error = load_error(path)
    assert type(error) is CorruptStoreError and "fails its xxh3-128 check" in str(error)
    assert not [t for t in threading.enumerate() if t.name == "parag-verify"]
