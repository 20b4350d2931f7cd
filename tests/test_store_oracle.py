"""FAISSVectorStore against the numpy brute-force oracle of conftest.

Flat must be exact; IVFFlat and HNSW must reach recall@10 >= 0.95 at their default
parameters on the real data of ../shared/data (skipped when absent) and on generated
clustered data (always run). An IVFFlat store answers exactly until it trains (at
39 * nlist vectors) and never loses a vector because of training.
"""

from __future__ import annotations

import numpy as np
import pytest

from parag.vectorstore import FAISSVectorStore
from tests.conftest import clustered, load_dataset, oracle, recall_at_k

INDEX_TYPES = ("Flat", "IVFFlat", "HNSW")
METRICS = ("L2", "IP", "cosine")
PADDING = 1e30  # FAISS pads missing results with +-3.4e38
TOL = 1e-4


# ----------------------------------------------------------------------------- helpers


def data(n: int, d: int, n_queries: int, seed: int = 0, centres: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Clustered base vectors and queries from the same clusters."""
    x = clustered(n + n_queries, d, centres=centres, seed=seed)
    return x[:n], x[n:]


def as_batch(result, single: bool):
    dist, ids, meta = result
    return ([dist], [ids], [meta]) if single else (dist, ids, meta)


def assert_clean(result, single: bool = True) -> None:
    """No FAISS padding: no -1 id, no +-3.4e38 distance, plain Python types."""
    for dist, ids, meta in zip(*as_batch(result, single)):
        assert len(dist) == len(ids) == len(meta)
        assert all(type(i) is int and i >= 0 for i in ids), ids
        assert all(type(d) is float and abs(d) < PADDING for d in dist), dist
        assert all(type(m) is dict for m in meta)


def assert_exact(result, base: np.ndarray, base_ids, queries: np.ndarray, k: int, metric: str,
                 tol: float = TOL) -> None:
    """``result`` is a correct exact top-k of ``queries`` over ``base`` (whose rows have ids
    ``base_ids``): the right scores to ``tol``, each id with its own true score, and the
    oracle's ids as a set except where ties at the k-th score make the choice arbitrary."""
    single = np.asarray(queries).ndim == 1
    queries = np.atleast_2d(queries)
    base_ids = list(base_ids)
    n = len(base)
    row_of = {i: r for r, i in enumerate(base_ids)}
    scores, order = oracle(base, queries, n, metric)  # every row, best first
    dists, idss, _ = as_batch(result, single)
    assert len(dists) == len(idss) == len(queries)
    for q in range(len(queries)):
        got, dist = list(idss[q]), np.asarray(dists[q], np.float64)
        want = scores[q, : min(k, n)]
        assert len(got) == min(k, n), (len(got), k, n)
        assert len(set(got)) == len(got), f"repeated ids {got}"
        np.testing.assert_allclose(dist, want, rtol=tol, atol=tol, err_msg=f"query {q}: scores")
        full = np.empty(n)
        full[order[q]] = scores[q]
        own = full[[row_of[i] for i in got]]
        np.testing.assert_allclose(dist, own, rtol=tol, atol=tol, err_msg=f"query {q}: id/score")
        if k >= n:
            assert set(got) == set(base_ids)
        else:
            kth = want[-1]
            sure = {base_ids[r] for r, s in zip(order[q][:k], want) if abs(s - kth) > tol * (1 + abs(kth))}
            assert sure <= set(got), f"query {q}: missing {sure - set(got)}"


def filled(index_type: str, metric: str, x: np.ndarray, batches=(1,), **params) -> FAISSVectorStore:
    """A store holding ``x`` (ids = row numbers), added in batches of the given sizes then the rest."""
    store = FAISSVectorStore(x.shape[1], index_type, metric, **params)
    start = 0
    for size in [*batches, len(x)]:
        part = x[start : start + size]
        if len(part):
            ids = store.add(part, [{"row": start + j} for j in range(len(part))])
            assert ids == list(range(start, start + len(part)))
            start += len(part)
    assert len(store) == len(x)
    return store


def approx_recall(store: FAISSVectorStore, base: np.ndarray, queries: np.ndarray, metric: str, **kw) -> float:
    _, ids, meta = store.search(queries, k=10, **kw)
    for row_ids, row_meta in zip(ids, meta):
        assert [m["row"] for m in row_meta] == row_ids
    _, truth = oracle(base, queries, 10, metric)
    return recall_at_k(ids, truth, 10)


# ----------------------------------------------------------------------------- Flat: exact


@pytest.mark.parametrize("metric", METRICS)
def test_flat_is_exact(metric):
    x, q = data(800, 24, 30, seed=1)
    store = filled("Flat", metric, x, batches=(1, 7, 250))
    for k in (1, 10, 100):
        assert_exact(store.search(q, k=k), x, range(len(x)), q, k, metric)
    assert_exact(store.search(q[0], k=10), x, range(len(x)), q[0], 10, metric)


@pytest.mark.parametrize("alias, metric", [("FlatL2", "L2"), ("FlatIP", "IP"), ("flat", "cosine"), ("FLAT", "IP")])
def test_flat_aliases_are_exact(alias, metric):
    x, q = data(300, 16, 10, seed=2)
    store = FAISSVectorStore(16, alias, None if alias.startswith("Flat") and alias != "Flat" else metric)
    assert store.index_type == "Flat" and store.metric == metric
    store.add(x)
    assert_exact(store.search(q, k=10), x, range(len(x)), q, 10, metric)


@pytest.mark.parametrize("metric", METRICS)
def test_flat_ties_compared_as_sets(metric):
    rng = np.random.default_rng(3)
    distinct = rng.standard_normal((40, 8)).astype(np.float32)
    x = np.repeat(distinct, 3, axis=0)  # every vector three times: exact ties
    store = filled("Flat", metric, x)
    q = distinct[:5] + 0.01 * rng.standard_normal((5, 8)).astype(np.float32)
    for k in (2, 3, 4, 7):
        assert_exact(store.search(q, k=k), x, range(len(x)), q, k, metric)


@pytest.mark.parametrize("metric", METRICS)
def test_score_semantics(metric):
    store = FAISSVectorStore(2, "Flat", metric)
    store.add([[3.0, 4.0], [1.0, 0.0]])
    dist, ids, _ = store.search([2.0, 0.0], k=2)
    if metric == "L2":  # squared Euclidean distance, smaller first
        assert ids == [1, 0] and dist == pytest.approx([1.0, 17.0])
    elif metric == "IP":  # raw inner product, larger first
        assert ids == [0, 1] and dist == pytest.approx([6.0, 2.0])
    else:  # cosine similarity, larger first
        assert ids == [1, 0] and dist == pytest.approx([1.0, 0.6])


# ----------------------------------------------------------------------------- approximate indexes


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("index_type", ["IVFFlat", "HNSW"])
def test_default_params_recall_on_clustered_data(index_type, metric):
    # IVFFlat at its defaults (nlist 256) trains at 39 * 256 = 9984 vectors: give it 10,000.
    n = 10_000 if index_type == "IVFFlat" else 4_000
    x, q = data(n, 32, 100, seed=4, centres=100)
    store = filled(index_type, metric, x, batches=(5_000,))
    assert store.is_trained
    assert approx_recall(store, x, q, metric) >= 0.95
    assert_clean(store.search(q[0], k=10))


@pytest.mark.parametrize("metric", METRICS)
def test_ivf_small_nprobe_still_answers_in_full(metric):
    x, q = data(2_000, 16, 40, seed=5, centres=40)
    store = filled("IVFFlat", metric, x, nlist=32, nprobe=2)
    assert store.is_trained and store.params == {"nlist": 32, "nprobe": 2}
    assert approx_recall(store, x, q, metric) >= 0.5
    assert approx_recall(store, x, q, metric, nprobe=32) == 1.0
    assert_exact(store.search(q, k=10, nprobe=32), x, range(len(x)), q, 10, metric)


def _real_case(name: str, metric: str):
    ds = load_dataset(name)
    base, queries, gt = ds["base"], ds["queries"], ds["gt"]
    return base, queries, gt


REAL = [("debian-minilm", "IP"), ("debian-minilm", "cosine"), ("siftsmall", "L2")]
# Building an index of debian-minilm's 59k x 384 takes 5-15 s here: run with the slow tests.
REAL_INDEXED = [
    pytest.param(name, metric, marks=pytest.mark.slow) if name == "debian-minilm" else (name, metric)
    for name, metric in REAL
]


@pytest.mark.parametrize("dataset, metric", REAL_INDEXED)
@pytest.mark.parametrize("index_type", ["IVFFlat", "HNSW"])
def test_default_params_recall_on_real_data(index_type, dataset, metric):
    base, queries, gt = _real_case(dataset, metric)
    store = FAISSVectorStore(base.shape[1], index_type, metric)
    assert store.add(base) == list(range(len(base)))
    assert store.is_trained  # siftsmall's 10,000 vectors just cross IVF's 9,984
    _, ids, _ = store.search(queries, k=10)
    assert all(len(r) == 10 for r in ids)
    recall = recall_at_k(ids, gt, 10)
    assert recall >= 0.95, f"{index_type}/{metric} on {dataset}: recall@10 {recall:.3f}"
    # gt is the data set's own brute force; check it against the oracle on a few queries.
    _, mine = oracle(base, queries[:5], 10, metric)
    assert recall_at_k(mine.tolist(), gt[:5], 10) >= 0.98


@pytest.mark.parametrize("dataset, metric", REAL)
def test_flat_is_exact_on_real_data(dataset, metric):
    base, queries, _ = _real_case(dataset, metric)
    store = FAISSVectorStore(base.shape[1], "Flat", metric)
    store.add(base)
    q = queries[:20]
    # siftsmall's squared distances reach ~1e5-1e6: a float32 relative tolerance.
    assert_exact(store.search(q, k=10), base, range(len(base)), q, 10, metric, tol=1e-4)


# ----------------------------------------------------------------------------- IVF training threshold


@pytest.mark.parametrize("metric", METRICS)
def test_ivf_exact_below_threshold_and_complete_across_it(metric):
    nlist = 16
    threshold = 39 * nlist  # 624, the documented rule
    x, q = data(1_000, 16, 20, seed=6, centres=30)
    store = FAISSVectorStore(16, "IVFFlat", metric, nlist=nlist, nprobe=2)

    store.add(x[:1], [{"row": 0}])  # searchable from the first vector
    assert not store.is_trained
    assert_exact(store.search(q, k=5), x[:1], [0], q, 5, metric)

    store.add(x[1:300], [{"row": r} for r in range(1, 300)])
    store.add(x[300 : threshold - 1], [{"row": r} for r in range(300, threshold - 1)])
    assert not store.is_trained and len(store) == threshold - 1
    have = x[: threshold - 1]
    for k in (1, 10, 1_000):
        assert_exact(store.search(q, k=k), have, range(len(have)), q, k, metric)
    # nprobe may be overridden before training too: still exact.
    assert_exact(store.search(q, k=10, nprobe=1), have, range(len(have)), q, 10, metric)

    store.add(x[threshold - 1], {"row": threshold - 1})  # the vector that crosses it
    assert store.is_trained
    store.add(x[threshold:], [{"row": r} for r in range(threshold, len(x))])
    assert store.is_trained and len(store) == len(x)
    assert store.ids() == list(range(len(x)))
    assert_complete_after_training(store, x, q, metric, nlist)


def assert_complete_after_training(store, x, q, metric, nlist):
    n = len(x)
    # Every row is still there: each answers k=n in full and exactly (via the fallback).
    assert_exact(store.search(q[:3], k=n), x, range(n), q[:3], n, metric)
    # Results are always complete and clean, whatever nprobe finds.
    for k in (1, 10, 200):
        result = store.search(q, k=k)
        assert_clean(result, single=False)
        assert all(len(r) == k for r in result.ids)
    # Each stored vector finds itself (L2 / cosine: it is its own nearest neighbour).
    if metric != "IP":
        _, ids, meta = store.search(x, k=1)
        assert [r[0] for r in ids] == list(range(n))
        assert [m[0]["row"] for m in meta] == list(range(n))
    # With every list probed, the IVF index is exact.
    assert_exact(store.search(q, k=10, nprobe=nlist), x, range(n), q, 10, metric)


@pytest.mark.parametrize("metric", METRICS)
def test_ivf_one_add_across_threshold(metric):
    x, q = data(700, 16, 20, seed=7, centres=30)
    store = FAISSVectorStore(16, "IVFFlat", metric, nlist=16, nprobe=1)
    store.add(x[:10], [{"row": r} for r in range(10)])
    assert not store.is_trained
    store.add(x[10:], [{"row": r} for r in range(10, 700)])
    assert store.is_trained
    assert_complete_after_training(store, x, q, metric, 16)


def test_ivf_threshold_is_39_per_list():
    x = clustered(39 * 8, 8, seed=8)
    store = FAISSVectorStore(8, "IVFFlat", "L2", nlist=8, nprobe=1)
    store.add(x[:-1])
    assert not store.is_trained and "trained=False" in repr(store)
    store.add(x[-1])
    assert store.is_trained


@pytest.mark.parametrize("metric", METRICS)
def test_ivf_training_after_deletes_keeps_every_live_vector(metric):
    x, q = data(800, 16, 10, seed=9, centres=30)
    store = FAISSVectorStore(16, "IVFFlat", metric, nlist=16, nprobe=2)
    store.add(x[:600])
    dead = list(range(0, 600, 6))
    assert store.delete(dead) == len(dead)  # 17% deleted: compacted to 500 vectors
    store.add(x[600:])  # 700 live crosses 39 * 16 = 624
    assert store.is_trained
    live = [i for i in range(800) if i not in set(dead)]
    assert store.ids() == live
    n = len(live)
    assert_exact(store.search(q, k=n), x[live], live, q, n, metric)
    assert_exact(store.search(q, k=10, nprobe=16), x[live], live, q, 10, metric)
    for row in store.search(q, k=50).ids:
        assert len(row) == 50 and not set(row) & set(dead)


# ----------------------------------------------------------------------------- result shapes


def make_store(index_type: str, metric: str, n: int = 300, d: int = 12, seed: int = 10, **params):
    x, q = data(n, d, 5, seed=seed)
    if index_type == "IVFFlat" and not params:
        params = {"nlist": 4, "nprobe": 1}  # trains at 156 vectors
    store = filled(index_type, metric, x, **params)
    return store, x, q


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("index_type", INDEX_TYPES)
def test_single_query_flat_lists_batch_lists_of_lists(index_type, metric):
    store, x, q = make_store(index_type, metric)
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


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("index_type", INDEX_TYPES)
def test_k_larger_than_store(index_type, metric):
    store, x, q = make_store(index_type, metric, n=200)
    for k in (200, 201, 10_000):
        result = store.search(q, k=k)
        assert_clean(result, single=False)
        assert all(len(row) == 200 and set(row) == set(range(200)) for row in result.ids)
        assert_exact(result, x, range(200), q, k, metric)
    small = FAISSVectorStore(x.shape[1], index_type, metric)
    small.add(x[:3])
    result = small.search(q[0], k=10)
    assert_clean(result)
    assert sorted(result.ids) == [0, 1, 2]


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("index_type", INDEX_TYPES)
def test_k_larger_than_store_with_deleted_vectors(index_type, metric):
    store, x, q = make_store(index_type, metric, n=200)
    dead = list(range(0, 200, 3))
    store.delete(dead)
    live = [i for i in range(200) if i % 3]
    assert store.ids() == live
    for k in (10, len(live), 500):
        result = store.search(q, k=k)
        assert_clean(result, single=False)
        if k >= len(live) or index_type == "Flat":  # exhaustive: exact whatever the index
            assert_exact(result, x[live], live, q, k, metric)
        assert all(len(row) == min(k, len(live)) and not set(row) & set(dead) for row in result.ids)


@pytest.mark.parametrize("index_type", INDEX_TYPES)
def test_empty_store_returns_empty_results(index_type):
    store = FAISSVectorStore(4, index_type)
    assert store.search([1, 2, 3, 4], k=5) == ([], [], [])
    assert store.search([[1, 2, 3, 4], [4, 3, 2, 1]], k=5) == ([[], []], [[], []], [[], []])


# ----------------------------------------------------------------------------- per-call overrides


@pytest.mark.parametrize("metric", METRICS)
def test_nprobe_override_is_per_call(metric):
    x, q = data(2_000, 16, 30, seed=11, centres=40)
    store = filled("IVFFlat", metric, x, nlist=32, nprobe=1)
    assert store.is_trained
    before = store.search(q, k=10)
    assert_exact(store.search(q, k=10, nprobe=32), x, range(len(x)), q, 10, metric)
    assert store.params["nprobe"] == 1
    assert store.search(q, k=10) == before
    assert store.search(q, k=10, nprobe=1000) == store.search(q, k=10, nprobe=32)  # capped at nlist


@pytest.mark.parametrize("metric", METRICS)
def test_ef_search_override_is_per_call(metric):
    x, q = data(3_000, 16, 30, seed=12, centres=40)
    store = filled("HNSW", metric, x, ef_search=8, M=8)
    before = store.search(q, k=10)
    high = store.search(q, k=10, ef_search=1_000)
    _, truth = oracle(x, q, 10, metric)
    assert recall_at_k(high.ids, truth, 10) >= 0.99
    assert recall_at_k(high.ids, truth, 10) >= recall_at_k(before.ids, truth, 10)
    assert store.params["ef_search"] == 8
    assert store.search(q, k=10) == before
    assert_clean(store.search(q, k=10, ef_search=1), single=False)


# ----------------------------------------------------------------------------- metadata copies


@pytest.mark.parametrize("index_type", INDEX_TYPES)
def test_returned_and_given_metadata_are_copies(index_type):
    store = FAISSVectorStore(3, index_type, "L2")
    given = [{"name": "a", "tags": ["x", "y"], "nested": {"n": 1}}, {"name": "b", "tags": [], "nested": {}}]
    store.add([[0, 0, 0], [5, 5, 5]], given)
    given[0]["name"] = "changed by caller"
    given[0]["tags"].append("z")

    _, _, meta = store.search([0, 0, 0], k=1)
    assert meta == [{"name": "a", "tags": ["x", "y"], "nested": {"n": 1}}]
    meta[0]["name"] = "mutated"
    meta[0]["tags"].append("q")
    meta[0]["nested"]["n"] = 99
    del meta[0]["tags"]

    batch = store.search([[0, 0, 0]], k=2)
    batch.metadata[0][0]["name"] = "mutated again"
    got = store.get([0]).metadata
    got[0]["name"] = "mutated by get"

    assert store.search([0, 0, 0], k=2).metadata == [
        {"name": "a", "tags": ["x", "y"], "nested": {"n": 1}},
        {"name": "b", "tags": [], "nested": {}},
    ]
    assert store.get([0, 1]).metadata[0]["name"] == "a"


@pytest.mark.parametrize("nlist", [1, 8, 63])
def test_ivf_nlist_below_default_nprobe_is_accepted(nlist):
    # Only nlist given: the default nprobe (64) must not make the constructor fail; it is
    # capped at nlist, i.e. the search probes every list.
    store = FAISSVectorStore(8, "IVFFlat", "L2", nlist=nlist)
    assert store.params == {"nlist": nlist, "nprobe": nlist}
    x, q = data(39 * nlist + 5, 8, 5, seed=13)
    store.add(x)
    assert store.is_trained
    assert_exact(store.search(q, k=10), x, range(len(x)), q, 10, "L2")
