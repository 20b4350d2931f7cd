"""Every store kind against the numpy brute-force oracle of conftest: result shapes,
scores, k beyond the store's size, deletes, empty stores, metadata copies. Exact kinds must
be exact; approximate ones complete and clean. (Index-specific recall and training:
tests/test_store_oracle.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from tests.checks import assert_clean, assert_exact, data, filled

METRICS = ("L2", "IP", "cosine")
# One dimension wherever a test's data allow it (and 2 for hand-made vectors): a server kind
# (Milvus) makes a collection per dimension and metric, seconds each, which tests of the same
# dimension then reuse.
D = 12


@pytest.mark.needs("exact")
@pytest.mark.parametrize("metric", METRICS)
def test_exact_kinds_are_exact(make_store, metric):
    x, q = data(800, D, 30, seed=1)
    store = filled(make_store(D, metric), x, batches=(1, 7, 250))
    make_store.expect_trained(store, len(x))
    for k in (1, 10, 100):
        assert_exact(store.search(q, k=k), x, range(len(x)), q, k, metric)
    assert_exact(store.search(q[0], k=10), x, range(len(x)), q[0], 10, metric)


@pytest.mark.needs("exact")
@pytest.mark.parametrize("metric", METRICS)
def test_ties_compared_as_sets(make_store, metric):
    rng = np.random.default_rng(3)
    distinct = rng.standard_normal((60, D)).astype(np.float32)
    x = np.repeat(distinct, 3, axis=0)  # every vector three times: exact ties
    store = filled(make_store(D, metric), x)
    q = distinct[:5] + 0.01 * rng.standard_normal((5, D)).astype(np.float32)
    for k in (2, 3, 4, 7):
        assert_exact(store.search(q, k=k), x, range(len(x)), q, k, metric)


@pytest.mark.parametrize("metric", METRICS)
def test_score_semantics(make_store, metric):
    store = make_store(2, metric)
    store.add([[3.0, 4.0], [1.0, 0.0]])
    dist, ids, _ = store.search([2.0, 0.0], k=2)
    if metric == "L2":  # squared Euclidean distance, smaller first
        assert ids == [1, 0] and dist == pytest.approx([1.0, 17.0])
    elif metric == "IP":  # raw inner product, larger first
        assert ids == [0, 1] and dist == pytest.approx([6.0, 2.0])
    else:  # cosine similarity, larger first
        assert ids == [1, 0] and dist == pytest.approx([1.0, 0.6])


# ----------------------------------------------------------------------------- result shapes


def sample_store(make_store, metric: str, n: int = 200, d: int = D, seed: int = 10):
    """``n`` clustered vectors (200: IVF4 trains) with metadata {"row": id}, and 5 queries."""
    x, q = data(n, d, 5, seed=seed)
    store = filled(make_store(d, metric), x)
    make_store.expect_trained(store, n)
    return store, x, q


@pytest.mark.parametrize("metric", METRICS)
def test_single_query_flat_lists_batch_lists_of_lists(make_store, metric):
    store, x, q = sample_store(make_store, metric)
    dist, ids, meta = store.search(q[0], k=4)
    assert isinstance(dist, list) and isinstance(ids, list) and isinstance(meta, list)
    assert len(ids) == 4 and all(type(i) is int for i in ids)
    assert [m["row"] for m in meta] == ids

    batch = store.search(q, k=4)
    assert batch.distances is batch[0] and batch.ids is batch[1] and batch.metadata is batch[2]
    dist, ids, meta = batch
    assert len(dist) == len(ids) == len(meta) == len(q)
    for i, row in enumerate(ids):
        assert isinstance(row, list) and len(row) == 4
        single = store.search(q[i], k=4)
        assert single.ids == row and single.distances == dist[i] and single.metadata == meta[i]

    one_row = store.search(q[:1], k=4)  # 2-D with one row is still a batch
    assert len(one_row.ids) == 1 and one_row.ids[0] == store.search(q[0], k=4).ids
    # Any array-like: nested lists, float64, ints.
    assert store.search(q[0].astype(np.float64).tolist(), k=4).ids == store.search(q[0], k=4).ids
    assert len(store.search(np.ones(x.shape[1], dtype=np.int64), k=3).ids) == 3
    if make_store.exact:
        assert_exact(batch, x, range(len(x)), q, 4, metric)


@pytest.mark.parametrize("metric", METRICS)
def test_k_larger_than_store(make_store, metric):
    store, x, q = sample_store(make_store, metric)
    n = len(x)
    for k in (n, n + 1, 10_000):
        result = store.search(q, k=k)
        assert_clean(result, single=False)
        assert all(len(row) == n and set(row) == set(range(n)) for row in result.ids)
        assert_exact(result, x, range(n), q, k, metric)
    small = make_store(2, metric)  # 2-D: a second live store, on test_score_semantics' collections
    small.add(x[:3, :2])
    result = small.search(q[0, :2], k=10)
    assert_clean(result)
    assert sorted(result.ids) == [0, 1, 2]


@pytest.mark.parametrize("metric", METRICS)
def test_k_larger_than_store_with_deleted_vectors(make_store, metric):
    store, x, q = sample_store(make_store, metric)
    n = len(x)
    dead = list(range(0, n, 3))
    store.delete(dead)
    live = [i for i in range(n) if i % 3]
    assert store.ids() == live
    for k in (10, len(live), 1_000):
        result = store.search(q, k=k)
        assert_clean(result, single=False)
        if k >= len(live) or make_store.exact:  # exhaustive: exact whatever the index
            assert_exact(result, x[live], live, q, k, metric)
        assert all(len(row) == min(k, len(live)) and not set(row) & set(dead) for row in result.ids)


def test_empty_store_returns_empty_results(make_store):
    store = make_store(4)
    assert store.search([1, 2, 3, 4], k=5) == ([], [], [])
    assert store.search([[1, 2, 3, 4], [4, 3, 2, 1]], k=5) == ([[], []], [[], []], [[], []])


# ----------------------------------------------------------------------------- metadata copies


@pytest.mark.rotate_metrics(*METRICS)  # any metric finds [1, 0] nearest to itself
def test_returned_and_given_metadata_are_copies(make_store, metric):
    store = make_store(2, metric)
    given = [{"name": "a", "tags": ["x", "y"], "nested": {"n": 1}}, {"name": "b", "tags": [], "nested": {}}]
    store.add([[1, 0], [0, 1]], given)
    given[0]["name"] = "changed by caller"
    given[0]["tags"].append("z")

    _, _, meta = store.search([1, 0], k=1)
    assert meta == [{"name": "a", "tags": ["x", "y"], "nested": {"n": 1}}]
    meta[0]["name"] = "mutated"
    meta[0]["tags"].append("q")
    meta[0]["nested"]["n"] = 99
    del meta[0]["tags"]

    batch = store.search([[1, 0]], k=2)
    batch.metadata[0][0]["name"] = "mutated again"
    got = store.get([0]).metadata
    got[0]["name"] = "mutated by get"

    assert store.search([1, 0], k=2).metadata == [
        {"name": "a", "tags": ["x", "y"], "nested": {"n": 1}},
        {"name": "b", "tags": [], "nested": {}},
    ]
    assert store.get([0, 1]).metadata[0]["name"] == "a"
