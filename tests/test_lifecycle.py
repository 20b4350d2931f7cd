"""Data lifecycle through FAISS specifics (what every kind must do is in
tests/conformance/test_lifecycle.py): HNSW's tombstones and compaction under many small
deletes, IVFFlat training mid-life with tombstones, and filtered search over real data.
Every search is checked against :class:`tests.lifecycle_model.Model`.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from parag.vectorstore import FAISSVectorStore
from tests.conformance.kinds import KINDS
from tests.conftest import load_dataset
from tests.lifecycle_model import (
    D,
    METRICS,
    N,
    Model,
    check_all,
    check_search,
    dataset,
    filled,
    rich_metadata,
)

HNSW, IVF16 = KINDS["HNSW"], KINDS["IVF16"]


@pytest.mark.parametrize("metric", ["L2", "cosine"])
def test_hnsw_deletes_in_small_batches(metric):
    """Many small deletes: tombstones pile up to the threshold, compaction then runs."""
    store, model, x, q = filled(HNSW, metric)
    rng = np.random.default_rng(10)
    order = rng.permutation(N)
    deleted: set[int] = set()
    compacted = False
    for step in range(0, int(0.7 * N), 250):
        batch = order[step : step + 250].tolist()
        store.delete(batch)
        model.delete(batch)
        deleted |= set(batch)
        compacted |= HNSW.held(store) < N
        if step % 1000 == 0:
            check_search(store, model, q, 10, exact=False, deleted=deleted)
            check_search(store, model, q, 10, {"rank": {"$lt": 3000}}, exact=False, deleted=deleted)
    assert compacted and HNSW.held(store) < N
    check_all(store, model, False, q, deleted)


@pytest.mark.parametrize("metric", METRICS)
def test_ivf_trains_mid_life_with_tombstones(metric, tmp_path):
    """An IVFFlat store answers exactly while untrained, trains once it holds 39 * nlist
    vectors (tombstones included) without losing or resurrecting any, and stays right after
    compaction and a round trip."""
    x, q = dataset(n=900, seed=15)
    meta = rich_metadata(x, seed=15)
    store, model = IVF16(D, metric), Model(metric)
    store.add(x[:400], meta[:400])
    model.add(range(400), x[:400], meta[:400])
    store.delete(list(range(0, 400, 15)))  # 27 tombstones: below the compaction threshold
    model.delete(list(range(0, 400, 15)))
    store.update_metadata([1, 2], [{"id": 1, "rank": 0}, {"id": 2, "rank": 0}])
    model.update_metadata([1, 2], [{"id": 1, "rank": 0}, {"id": 2, "rank": 0}])
    assert not store.is_trained
    check_all(store, model, True, q, set(range(0, 400, 15)), [{"rank": 0}, {"side": "pos"}])
    store.upsert([3, 4], x[400:402], meta[400:402])
    model.upsert([3, 4], x[400:402], meta[400:402])
    ids = store.add(x[402:700], meta[402:700])  # 702 slots >= 624: trains
    assert ids == list(range(400, 698))
    model.add(ids, x[402:700], meta[402:700])
    assert store.is_trained
    deleted = set(range(0, 400, 15))
    check_all(store, model, True, q, deleted, [{"rank": 0}, {"side": "pos"}, {"rank": {"$lt": 600}}])
    got = store.get(model.ids(), include_vectors=True)
    want = np.stack([model.vectors[i] for i in model.ids()])
    if metric == "cosine":
        want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(got.vectors, want, rtol=1e-6, atol=1e-6)
    doomed = list(range(100, 300))  # crosses the threshold: compaction of a trained IVF
    store.delete(doomed, missing_ok=True)
    model.delete([i for i in doomed if i in model.vectors])
    deleted |= set(doomed)
    assert IVF16.held(store) == len(store)
    store.save(tmp_path / "ivf")
    loaded = FAISSVectorStore.load(tmp_path / "ivf")
    assert loaded.is_trained
    for s in (store, loaded):
        check_all(s, model, True, q, deleted, [{"rank": 0}, {"side": "pos"}])
        assert s.get([3]).metadata == [meta[400]]


@pytest.mark.parametrize("config", ["Flat", *(pytest.param(c, marks=pytest.mark.slow) for c in ("IVFFlat", "HNSW"))])
def test_real_data_filtered_search(config, debian_stores):
    """debian-minilm (59k x 384 MiniLM embeddings) with {"source": 100 values, "year"}:
    1% and 10% selectivity filters, and deletes, against the numpy oracle."""
    data = load_dataset("debian-minilm")
    base, queries = data["base"], data["queries"][:40]
    shared, meta = debian_stores(config)
    store, model = copy.copy(shared), Model("cosine")  # a copy: the deletes below stay here
    model.add(range(len(base)), base, meta)
    rng = np.random.default_rng(14)
    exact = config == "Flat"
    ten = [f"src{i}" for i in range(10)]
    specs = [{"source": "src42"}, {"source": {"$in": ten}}, {"year": 2020},
             {"$and": [{"year": {"$gte": 2020}}, {"source": {"$in": ten[:2]}}]}]
    for spec in specs:
        check_search(store, model, queries, 10, spec, exact=exact)
    doomed = rng.choice(len(base), len(base) // 5, replace=False).tolist()
    store.delete(doomed)
    model.delete(doomed)
    for spec in specs[:2]:
        check_search(store, model, queries, 10, spec, exact=exact, deleted=set(doomed))
