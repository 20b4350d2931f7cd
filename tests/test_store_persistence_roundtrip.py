"""save/load round trips for every index type x metric: config, ids, metadata, next id,
IVF training state and search results come back identical, and the loaded store goes on
working (new ids continue, never reused), through both ``FAISSVectorStore.load(path)``
and ``store.load(path)``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from parag.vectorstore import FAISSVectorStore
from tests.conftest import clustered, oracle, recall_at_k

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


def meta_for(i: int) -> dict:
    return {
        "i": i, "text": f"doc {i} — ünïcödé ✓", "score": i / 7, "flag": i % 2 == 0, "none": None,
        "nested": {"list": [i, "x", 1.5, [True]], "empty": {}}, "big": 2**53 + i,
    }


def build(index_type: str, metric: str, params: dict, n: int = 400):
    """A store with tombstones, an explicit id, the highest generated id deleted."""
    x = clustered(n, D, seed=21, centres=12)
    store = FAISSVectorStore(D, index_type, metric, **params)
    store.add(x[:1], [meta_for(0)])
    store.add(x[1 : n - 1], [meta_for(i) for i in range(1, n - 1)])
    store.add(x[n - 1], meta_for(n - 1), ids=[5000])  # explicit id: next id becomes 5001
    store.add(np.ones(D), {"last": True})  # id 5001
    dead = [7, 8, 100, 5001]
    store.delete(dead)
    live = [i for i in range(n - 1) if i not in dead] + [5000]
    vectors = {i: x[i] for i in range(n - 1) if i not in dead} | {5000: x[n - 1]}
    assert store.ids() == live
    return store, vectors, live


def state(store: FAISSVectorStore, queries: np.ndarray) -> tuple:
    ids = store.ids()
    got = store.get(ids, include_vectors=True)
    return (
        store.dimension, store.metric, store.index_type, store.params, store.is_trained,
        len(store), ids, got.metadata, got.vectors.tobytes(), repr(store),
        store.search(queries, k=10), store.search(queries[0], k=len(store) + 3),
    )


def assert_exact(result, vectors: dict, queries, k, metric, tol=1e-4):
    """Batch ``result`` is an exact top-k over ``vectors`` (id -> vector), ties as sets."""
    ids = list(vectors)
    base = np.stack([vectors[i] for i in ids])
    scores, order = oracle(base, queries, len(ids), metric)
    for q, (dist, got) in enumerate(zip(result.distances, result.ids)):
        kk = min(k, len(ids))
        assert len(got) == kk and len(set(got)) == kk
        np.testing.assert_allclose(dist, scores[q, :kk], rtol=tol, atol=tol)
        full = dict(zip((ids[r] for r in order[q]), scores[q]))
        np.testing.assert_allclose(dist, [full[i] for i in got], rtol=tol, atol=tol)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_round_trip(case, tmp_path):
    index_type, metric, params = case
    store, vectors, live = build(index_type, metric, params)
    assert store.is_trained == (index_type != "IVFFlat" or bool(params))
    queries = clustered(8, D, seed=22, centres=12)
    before = state(store, queries)
    path = tmp_path / "store"
    store.save(path)
    assert state(store, queries) == before  # saving changes nothing

    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["dimension"] == D and manifest["metric"] == metric
    assert manifest["index_type"] == index_type and manifest["params"] == store.params
    assert manifest["next_id"] == 5002 and isinstance(manifest["format_version"], int)
    for f in path.iterdir():
        assert not f.read_bytes()[:1] == b"\x80", f"{f.name} looks like a pickle"

    # The class form returns a new store; the instance form loads into an unrelated store.
    loaded = FAISSVectorStore.load(path)
    other = FAISSVectorStore(3, "HNSW", "IP", M=4)
    other.add(np.ones((5, 3)))
    same = other.load(str(path))
    assert same is other
    for s in (loaded, other):
        assert state(s, queries) == before
        assert s.search(queries, k=10, **({"nprobe": 8} if index_type == "IVFFlat" else {})) == store.search(
            queries, k=10, **({"nprobe": 8} if index_type == "IVFFlat" else {}))
    if index_type == "Flat" or (index_type == "IVFFlat" and not params):
        assert_exact(loaded.search(queries, k=10), vectors, queries, 10, metric)

    # Adding after load: ids continue above every id ever held (5001 was deleted, not reused).
    more = clustered(30, D, seed=23, centres=12)
    new_meta = [{"more": j} for j in range(30)]
    assert loaded.add(more, new_meta) == list(range(5002, 5032))
    assert other.add(more[:1]) == [5002]
    assert store.add(more, new_meta) == list(range(5002, 5032))
    vectors |= {5002 + j: more[j] for j in range(30)}
    assert loaded.ids() == store.ids() == live + list(range(5002, 5032))
    assert loaded.get([5002, 5031]).metadata == [{"more": 0}, {"more": 29}]
    assert loaded.get([0]).metadata == [meta_for(0)]
    n = len(vectors)
    assert len(loaded) == n
    full = loaded.search(queries, k=n)  # everything findable, exactly
    assert all(set(row) == set(vectors) for row in full.ids)
    assert_exact(full, vectors, queries, n, metric)
    if index_type == "Flat":
        assert loaded.search(queries, k=10) == store.search(queries, k=10)
        assert_exact(loaded.search(queries, k=10), vectors, queries, 10, metric)
    elif index_type == "IVFFlat":
        assert_exact(loaded.search(queries, k=10, nprobe=8 if params else 1), vectors, queries, 10, metric)
    else:
        _, truth = oracle(np.stack(list(vectors.values())), queries, 10, metric)
        keys = list(vectors)
        truth_ids = np.array([[keys[r] for r in row] for row in truth])
        assert recall_at_k(loaded.search(queries, k=10, ef_search=512).ids, truth_ids, 10) >= 0.95

    # A second round trip of the extended store.
    loaded.save(path)
    again = FAISSVectorStore.load(path)
    assert state(again, queries) == state(loaded, queries)
    assert again.add(np.ones(D)) == [5032]


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
    assert_exact(loaded.search(q, k=7), dict(enumerate(x[:300])), q, 7, metric)
    assert loaded.add(x[300:], [{"i": i} for i in range(300, 500)]) == list(range(300, 500))
    assert loaded.is_trained
    assert_exact(loaded.search(q, k=500), vectors, q, 500, metric)
    assert_exact(loaded.search(q, k=10, nprobe=nlist), vectors, q, 10, metric)
    assert all(len(r) == 10 for r in loaded.search(q, k=10).ids)
    # Trained state round-trips too.
    loaded.save(tmp_path / "s")
    again = FAISSVectorStore.load(tmp_path / "s")
    assert again.is_trained
    assert again.search(q, k=10) == loaded.search(q, k=10)
    assert again.search(q, k=10, nprobe=nlist) == loaded.search(q, k=10, nprobe=nlist)


@pytest.mark.parametrize("index_type", INDEX_TYPES)
def test_empty_and_emptied_stores(index_type, tmp_path):
    empty = FAISSVectorStore(4, index_type, "cosine")
    empty.save(tmp_path / "empty")
    loaded = FAISSVectorStore.load(tmp_path / "empty")
    assert len(loaded) == 0 and loaded.ids() == [] and loaded.search([1, 2, 3, 4], k=3) == ([], [], [])
    assert loaded.add([[1, 2, 3, 4]]) == [0]

    emptied = FAISSVectorStore(4, index_type, "L2")
    emptied.add(np.eye(4))
    emptied.delete([0, 1, 2, 3])
    emptied.save(tmp_path / "emptied")
    loaded = FAISSVectorStore.load(tmp_path / "emptied")
    assert len(loaded) == 0 and loaded.search([1, 0, 0, 0], k=2) == ([], [], [])
    assert loaded.add(np.eye(4)[:2]) == [4, 5]  # never reused
    assert loaded.search([1, 0, 0, 0], k=5).ids == [4, 5]


def test_save_twice_to_the_same_directory(tmp_path):
    path = tmp_path / "s"
    store = FAISSVectorStore(4, "HNSW", "IP")
    store.add(np.eye(4), [{"v": 1}] * 4)
    store.save(path)
    store.add([1, 1, 1, 1], {"v": 2})
    store.update_metadata([0], {"v": 3})
    store.save(path)
    loaded = FAISSVectorStore.load(path)
    assert loaded.ids() == [0, 1, 2, 3, 4]
    assert loaded.get([0, 4]).metadata == [{"v": 3}, {"v": 2}]
    assert loaded.search([1, 1, 1, 1], k=5) == store.search([1, 1, 1, 1], k=5)
    # Loading into an instance replaces its old content entirely.
    store.add(np.ones((3, 4)))
    assert store.load(path) is store and store.ids() == [0, 1, 2, 3, 4]
    assert store.add(np.zeros(4)) == [5]
