"""docs/format.md says what ``save`` writes: its manifest example, the ``auto_params`` of each
index kind and the version a version-1 store is saved as are checked against real saves
(review-0100 F6: the three had fallen behind the code)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from parag import FAISSVectorStore
from tests.crafting import manifest_of

ROOT = Path(__file__).resolve().parents[1]
FORMAT_MD = (ROOT / "docs" / "format.md").read_text()
MANIFEST_DOC = FORMAT_MD.split("### `manifest.json`")[1]


def current_version() -> int:
    """The version the ``format_version`` row of the manifest table names as this document's."""
    return int(re.search(r"the version of this document the store follows: `(\d+)`", MANIFEST_DOC).group(1))


def test_manifest_example_is_what_save_writes(tmp_path: Path) -> None:
    """The example: "a Flat store of 300 slots, 3 of them deleted", of dimension 8."""
    example = json.loads(MANIFEST_DOC.split("```json\n")[1].split("```")[0])
    store = FAISSVectorStore(8)
    store.add(np.random.default_rng(0).standard_normal((300, 8)))
    store.delete([0, 1, 2])
    store.save(tmp_path / "s")
    manifest = manifest_of(tmp_path / "s")
    assert set(example) == set(manifest) and set(example["files"]) == set(manifest["files"])
    informative = {"checksum", "files", "parag_version"}  # differ from save to save
    assert {k: v for k, v in example.items() if k not in informative} == {
        k: v for k, v in manifest.items() if k not in informative
    }
    assert manifest["format_version"] == current_version()
    ids, documented = manifest["files"]["ids"], example["files"]["ids"]
    assert set(ids) == set(documented) and (ids["size"], ids["block_size"]) == (documented["size"], documented["block_size"])


@pytest.mark.parametrize("index_type", ["HNSW", "IVFFlat"])
def test_auto_params_are_the_documented_ones(tmp_path: Path, index_type: str) -> None:
    store = FAISSVectorStore(8, index_type)  # no parameter given: every automatic one is
    store.add(np.random.default_rng(0).standard_normal((50, 8)))
    store.save(tmp_path / "s")
    auto = manifest_of(tmp_path / "s")["auto_params"]
    assert f"`{json.dumps(auto)}` for {index_type}" in MANIFEST_DOC


def test_a_version_1_store_is_saved_as_the_current_version(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "tests" / "fixtures" / "store_v1" / "flat_ip", tmp_path / "v1")
    FAISSVectorStore.load(tmp_path / "v1").save(tmp_path / "resaved")
    resaved = manifest_of(tmp_path / "resaved")["format_version"]
    said = re.search(r"\*\*Version 1\*\*.*?writes the current version \((\d+)\) on the next save", FORMAT_MD, re.S)
    assert resaved == int(said.group(1)) == current_version()
