"""Stores saved in format version 1 load and answer exactly as they did, forever.

The fixtures under ``tests/fixtures/store_v1/`` were written once by
``tests/fixtures/make_store_v1.py`` and are never regenerated: if a change to parag breaks
this test, the change must migrate old stores, not the fixtures be rewritten.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import orjson
import pytest

from parag import FAISSVectorStore
from parag.errors import ReadOnlyStoreError

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "store_v1"
EXPECTED = orjson.loads((FIXTURES / "expected.json").read_bytes())
NAMES = sorted(EXPECTED["stores"])


@pytest.fixture(params=NAMES)
def fixture_copy(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, dict]:
    """A copy of one fixture store (loading creates a lock file: keep the repository clean)."""
    copy = tmp_path / request.param
    shutil.copytree(FIXTURES / request.param, copy)
    return copy, EXPECTED["stores"][request.param]


@pytest.mark.parametrize("name", NAMES)
def test_fixture_bytes_are_the_committed_ones(name: str) -> None:
    folder = FIXTURES / name
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}
    assert files == EXPECTED["stores"][name]["files_sha256"]
    manifest = orjson.loads((folder / "manifest.json").read_bytes())
    assert manifest["format_version"] == EXPECTED["format_version"] == 1


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


def test_loads_and_answers_as_recorded(fixture_copy: tuple[Path, dict]) -> None:
    path, expected = fixture_copy
    store = FAISSVectorStore.load(path)
    assert_answers(store, expected)
    assert store.add(np.ones(expected["dimension"], np.float32)) == [expected["next_id"]]


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
