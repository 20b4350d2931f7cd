"""The FAISS store's round trip specifics (what every kind must do is in
tests/conformance/test_persistence.py): the manifest records the configuration and no file
is a pickle, and an IVFFlat store saved before training trains after load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from parag.vectorstore import FAISSVectorStore
from tests.checks import build_round_trip_store as build
from tests.checks import exact_over
from tests.conftest import clustered

D = 16
INDEX_TYPES = ("Flat", "IVFFlat", "HNSW")
METRICS = ("L2", "IP", "cosine")
CASES = [(t, m, {}) for t in INDEX_TYPES for m in METRICS] + [
    # IVFFlat with nlist 8 trains at 39 * 8 = 312 vectors: the store below (400) is trained.
    ("IVFFlat", m, {"nlist": 8, "nprobe": 2}) for m in METRICS
]


def case_id(case):
    t, m, p = case
    return f"{t}-{m}" + ("-trained" if p else "")


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_manifest_records_the_configuration(case, tmp_path):
    index_type, metric, params = case
    store, _, _ = build(FAISSVectorStore(D, index_type, metric, **params))
    assert store.is_trained == (index_type != "IVFFlat" or bool(params))
    path = tmp_path / "store"
    store.save(path)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["dimension"] == D and manifest["metric"] == metric
    assert manifest["index_type"] == index_type and manifest["params"] == store.params
    assert manifest["next_id"] == 5002 and isinstance(manifest["format_version"], int)
    for f in path.iterdir():
        assert not f.read_bytes()[:1] == b"\x80", f"{f.name} looks like a pickle"
    loaded = FAISSVectorStore.load(path)
    assert (loaded.index_type, loaded.params, loaded.is_trained) == (index_type, store.params, store.is_trained)
    if index_type == "IVFFlat":  # probing every list, a loaded IVF store is exact
        queries = clustered(8, D, seed=22, centres=12)
        assert loaded.search(queries, k=10, nprobe=8) == store.search(queries, k=10, nprobe=8)


@pytest.mark.parametrize("metric", METRICS)
def test_ivf_saved_before_training_trains_after_load(metric, tmp_path):
    nlist = 8
    x = clustered(500, D, seed=24, centres=12)
    q = clustered(6, D, seed=25, centres=12)
    store = FAISSVectorStore(D, "IVFFlat", metric, nlist=nlist, nprobe=1)
    store.add(x[:300], [{"i": i} for i in range(300)])
    store.save(tmp_path / "s")
    loaded = FAISSVectorStore.load(tmp_path / "s")
    assert not loaded.is_trained and loaded.params == {"nlist": nlist, "nprobe": 1}
    assert loaded.search(q, k=7) == store.search(q, k=7)
    vectors = dict(enumerate(x))
    exact_over(loaded.search(q, k=7), dict(enumerate(x[:300])), q, 7, metric)
    assert loaded.add(x[300:], [{"i": i} for i in range(300, 500)]) == list(range(300, 500))
    assert loaded.is_trained
    exact_over(loaded.search(q, k=500), vectors, q, 500, metric)
    exact_over(loaded.search(q, k=10, nprobe=nlist), vectors, q, 10, metric)
    assert all(len(r) == 10 for r in loaded.search(q, k=10).ids)
    # Trained state round-trips too.
    loaded.save(tmp_path / "s")
    again = FAISSVectorStore.load(tmp_path / "s")
    assert again.is_trained
    assert again.search(q, k=10) == loaded.search(q, k=10)
    assert again.search(q, k=10, nprobe=nlist) == loaded.search(q, k=10, nprobe=nlist)
