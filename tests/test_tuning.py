"""store.tune() on FAISS indexes: the recall it reports is reached (numpy oracle), the setting persists.
(Bad arguments and empty stores, on every backend: tests/conformance/test_tune.py.)"""

from __future__ import annotations

import numpy as np
import pytest
from tests.conftest import clustered, oracle, recall_at_k

from parag import FAISSVectorStore
from parag.tuning import Setting, candidates, choose, drop_self

D = 32


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    # Many tight clusters: approximate search needs a real ef_search / nprobe to reach 0.95.
    x = clustered(6000, D, centres=200, seed=1, spread=0.6)
    return x[:5000], x[5000:5200]


def build(index_type: str, base: np.ndarray, **params: int) -> FAISSVectorStore:
    store = FAISSVectorStore(D, index_type, **params)
    store.add(base, [{"i": i} for i in range(len(base))])
    return store


@pytest.mark.parametrize(
    ("index_type", "param", "params"),
    [("HNSW", "ef_search", {"M": 8, "ef_construction": 16, "ef_search": 4096}), ("IVFFlat", "nprobe", {"nlist": 64})],
)
def test_tune_reaches_the_target_against_a_numpy_oracle(data, index_type, param, params):
    base, queries = data
    store = build(index_type, base, **params)
    result = store.tune(queries, target_recall=0.95, k=10)

    assert result.param == param and result.reached
    assert store.params[param] == result.value
    assert [s.value for s in result.settings] == sorted(s.value for s in result.settings)
    assert result.settings[-1] == Setting(result.value, result.recall, result.settings[-1].latency_ms)
    assert all(s.recall < 0.95 for s in result.settings[:-1])  # the smallest value that reaches it
    assert len(result.settings) > 1, "the data should make the lowest setting miss the target"
    # The store now searches with the chosen value by default, and reaches the recall it reported.
    _, ids, _ = store.search(queries, k=10)
    _, truth = oracle(base, queries, 10, "L2")
    assert recall_at_k(ids, truth, 10) >= 0.95 - 0.01  # float64 oracle vs float32 ties
    assert abs(recall_at_k(ids, truth, 10) - result.recall) <= 0.01


def test_tune_with_sampled_queries_measures_neighbours_other_than_the_query(data):
    base, queries = data
    store = build("HNSW", base, M=8, ef_construction=16)
    result = store.tune(target_recall=0.9, k=10, n_samples=100)
    assert result.reached and store.params["ef_search"] == result.value
    _, ids, _ = store.search(queries, k=10)
    assert recall_at_k(ids, oracle(base, queries, 10, "L2")[1], 10) >= 0.85


def test_tuned_setting_persists_through_save_and_load(data, tmp_path):
    base, queries = data
    for index_type, param in (("HNSW", "ef_search"), ("IVFFlat", "nprobe")):
        store = build(index_type, base, **({"nlist": 64} if index_type == "IVFFlat" else {"M": 8}))
        value = store.tune(queries, target_recall=0.9).value
        store.save(tmp_path / index_type)
        loaded = FAISSVectorStore.load(tmp_path / index_type)
        assert loaded.params[param] == value
        assert loaded.search(queries, k=10).ids == store.search(queries, k=10).ids
        assert loaded.search(queries, k=10).ids == store.search(queries, k=10, **{param: value}).ids


def test_deleted_vectors_are_neither_truth_nor_results(data):
    base, queries = data
    store = build("HNSW", base, M=8)
    store.delete(range(0, 5000, 3))  # a third deleted: tombstones, below the compaction share
    result = store.tune(queries, target_recall=0.95)
    assert result.reached
    live = np.setdiff1d(np.arange(5000), np.arange(0, 5000, 3))
    _, truth = oracle(base[live], queries, 10, "L2")
    assert recall_at_k(store.search(queries, k=10).ids, live[truth], 10) >= 0.94


def test_exact_stores_have_nothing_to_tune(data):
    base, queries = data
    for store in (build("Flat", base), build("IVFFlat", base[:100], nlist=64)):  # untrained IVF
        result = store.tune(queries)
        assert (result.param, result.value, result.recall, result.reached, result.settings) == (None, None, 1.0, True, [])


def test_tune_chooses_the_smallest_value_with_the_best_recall_the_oracle_measures():
    rng = np.random.default_rng(0)
    base, queries = rng.standard_normal((200, 8)), rng.standard_normal((5, 8))
    store = FAISSVectorStore(8, "HNSW", M=2)
    store.add(base)
    result = store.tune(queries, target_recall=1.0, k=3)
    # Every setting's recall, measured here against the numpy oracle, not taken from tune.
    _, truth = oracle(base, queries, 3, "L2")
    measured = {s.value: recall_at_k(store.search(queries, k=3, ef_search=s.value).ids, truth, 3)
                for s in result.settings}
    assert {s.value: s.recall for s in result.settings} == pytest.approx(measured)
    best = max(measured.values())
    assert result.value == min(v for v, r in measured.items() if r == best) and result.recall == pytest.approx(best)
    assert result.reached == (best >= 1.0)


def test_helpers():
    assert candidates(1, 1) == [1]
    assert candidates(10, 10) == [10]
    assert candidates(5, 7) == [5, 6, 7]
    assert drop_self([[1, 2, 3]], [9], 2).tolist() == [[1, 2]]
    assert choose([Setting(1, 0.5, 0.0), Setting(2, 0.5, 0.0)], 0.9).value == 1
