"""Stores saved in every older format version load and answer exactly as they did, forever.

The fixtures under ``tests/fixtures/store_v<N>/`` were written once by
``tests/fixtures/make_store_v<N>.py`` and are never regenerated: if a change to parag breaks
this test, the change must migrate old stores, not the fixtures be rewritten. Version 3
adds string ids and documents; a version-1 store has int ids and no documents. Compressed
storage kept its float32 vectors inside the index in version 3 (``store_v3_storage``) and in a
raw file of their own from version 4 on.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import orjson
import pytest

from parag import FAISSVectorStore
from parag.errors import InvalidTypeError, ReadOnlyStoreError

FIXTURES = Path(__file__).resolve().parent / "fixtures"
#: Each fixture folder and the format version its stores were written in.
FOLDERS = {"store_v1": 1, "store_v3": 3, "store_v3_storage": 3, "store_v4": 4}
EXPECTED = {d: orjson.loads((FIXTURES / d / "expected.json").read_bytes()) for d in FOLDERS}
CASES = [(d, name) for d, e in EXPECTED.items() for name in sorted(e["stores"])]


@pytest.fixture(params=CASES, ids=lambda c: f"{c[0]}-{c[1]}")
def fixture_copy(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, dict]:
    """A copy of one fixture store (loading creates a lock file: keep the repository clean)."""
    folder, name = request.param
    copy = tmp_path / name
    shutil.copytree(FIXTURES / folder / name, copy)
    return copy, {**EXPECTED[folder]["stores"][name], "filters": EXPECTED[folder].get("filters", [])}


@pytest.mark.parametrize("folder, name", CASES)
def test_fixture_bytes_are_the_committed_ones(folder: str, name: str) -> None:
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((FIXTURES / folder / name).iterdir())}
    assert files == EXPECTED[folder]["stores"][name]["files_sha256"]
    manifest = orjson.loads((FIXTURES / folder / name / "manifest.json").read_bytes())
    assert manifest["format_version"] == EXPECTED[folder]["format_version"] == FOLDERS[folder]


def assert_answers(store: FAISSVectorStore, expected: dict) -> None:
    assert (store.dimension, store.index_type, store.metric) == (
        expected["dimension"], expected["index_type"], expected["metric"]
    )
    assert store.params == expected["params"]
    assert len(store) == expected["count"]
    assert store.ids() == expected["ids"]
    got = store.get(expected["ids"], include_vectors=True)
    assert got.metadata == expected["metadata"]
    assert hashlib.sha256(got.vectors.astype("<f4").tobytes()).hexdigest() == expected["vectors_sha256"]
    result = store.search(np.asarray(expected["queries"], np.float32), expected["k"])
    assert result.ids == expected["result_ids"]
    assert result.metadata == expected["result_metadata"]
    # Distances may differ in the last bits between CPUs (SIMD paths); the queries were
    # chosen so that no two of their top scores are within 1e-3 of each other.
    np.testing.assert_allclose(result.distances, expected["result_distances"], rtol=1e-5, atol=1e-5)
    no_documents = [None] * len(expected["ids"])  # version 1: none
    assert got.documents == expected.get("documents", no_documents)
    if "result_documents" in expected:
        assert result.documents == expected["result_documents"]
    for spec, ids in zip(expected["filters"], expected.get("filtered_ids", [])):
        assert store.get(filter=spec).ids == ids


def test_loads_and_answers_as_recorded(fixture_copy: tuple[Path, dict]) -> None:
    path, expected = fixture_copy
    store = FAISSVectorStore.load(path)
    assert_answers(store, expected)
    new = store.add(np.ones(expected["dimension"], np.float32))
    assert new == [expected["next_id"]] if "next_id" in expected else len(new[0]) == 32  # int or uuid hex


@pytest.mark.parametrize("options", [{"verify": False}, {"mmap": True}])
def test_loads_alike_without_verify_and_mapped(fixture_copy: tuple[Path, dict], options: dict) -> None:
    path, expected = fixture_copy
    store = FAISSVectorStore.load(path, **options)
    assert_answers(store, expected)
    if options.get("mmap"):
        with pytest.raises(ReadOnlyStoreError):
            store.add(np.ones(expected["dimension"], np.float32))


def test_resaved_by_this_version_answers_alike(fixture_copy: tuple[Path, dict], tmp_path: Path) -> None:
    path, expected = fixture_copy
    FAISSVectorStore.load(path).save(tmp_path / "resaved")
    assert_answers(FAISSVectorStore.load(tmp_path / "resaved"), expected)


def test_a_v1_store_is_an_int_store_without_documents(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "store_v1" / "flat_ip", tmp_path / "v1")
    store = FAISSVectorStore.load(tmp_path / "v1")
    ids = store.ids()
    assert store.get(ids[:3]).documents == [None, None, None]
    with pytest.raises(InvalidTypeError, match="ids must be ints"):
        store.add(np.ones(store.dimension), ids=["a"])
    store.add(np.ones(store.dimension), documents="new")
    store.save(tmp_path / "v1")
    assert FAISSVectorStore.load(tmp_path / "v1").get(filter={"$document": {"$contains": "new"}}).ids == [max(ids) + 1]
