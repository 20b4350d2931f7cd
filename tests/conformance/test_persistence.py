"""save/load round trips for every store kind x metric: config, ids, metadata, next id,
training state and search results come back identical, and the loaded store goes on
working (new ids continue, never reused), through both ``cls.load(path)`` and
``store.load(path)``. (The FAISS store's files: tests/test_store_persistence_roundtrip.py
and tests/test_persistence_*.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from tests.checks import build_round_trip_store as build
from tests.checks import exact_over, meta_for
from tests.conftest import clustered, oracle, recall_at_k

pytestmark = pytest.mark.needs("persistent")

D = 16
METRICS = ("L2", "IP", "cosine")


def state(store, queries: np.ndarray) -> tuple:
    ids = store.ids()
    got = store.get(ids, include_vectors=True)
    return (
        store.dimension, store.metric, store.index_type, store.params, store.is_trained,
        len(store), ids, got.metadata, got.vectors.tobytes(), repr(store),
        store.search(queries, k=10), store.search(queries[0], k=len(store) + 3),
    )


@pytest.mark.parametrize("metric", METRICS)
def test_round_trip(make_store, metric, tmp_path):
    store, vectors, live = build(make_store(D, metric))
    make_store.expect_trained(store, 401)  # 401 slots, tombstones included
    queries = clustered(8, D, seed=22, centres=12)
    before = state(store, queries)
    path = tmp_path / "store"
    store.save(path)
    assert state(store, queries) == before  # saving changes nothing

    # The class form returns a new store; the instance form loads into an unrelated store.
    loaded = make_store.load(path)
    other = make_store(3, "IP" if metric != "IP" else "L2")
    other.add(np.ones((5, 3)))
    same = other.load(str(path))
    assert same is other
    for s in (loaded, other):
        assert state(s, queries) == before
        assert s.search(queries, k=10, **make_store.wide) == store.search(queries, k=10, **make_store.wide)
    if make_store.exact:
        exact_over(loaded.search(queries, k=10), vectors, queries, 10, metric)

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
    exact_over(full, vectors, queries, n, metric)
    if make_store.exact:
        assert loaded.search(queries, k=10) == store.search(queries, k=10)
        exact_over(loaded.search(queries, k=10), vectors, queries, 10, metric)
    else:
        _, truth = oracle(np.stack(list(vectors.values())), queries, 10, metric)
        keys = list(vectors)
        truth_ids = np.array([[keys[r] for r in row] for row in truth])
        assert recall_at_k(loaded.search(queries, k=10, **make_store.wide).ids, truth_ids, 10) >= 0.95

    # A second round trip of the extended store.
    loaded.save(path)
    again = make_store.load(path)
    assert state(again, queries) == state(loaded, queries)
    assert again.add(np.ones(D)) == [5032]


def test_empty_and_emptied_stores(make_store, tmp_path):
    empty = make_store(4, "cosine")
    empty.save(tmp_path / "empty")
    loaded = make_store.load(tmp_path / "empty")
    assert len(loaded) == 0 and loaded.ids() == [] and loaded.search([1, 2, 3, 4], k=3) == ([], [], [])
    assert loaded.add([[1, 2, 3, 4]]) == [0]

    emptied = make_store(4, "L2")
    emptied.add(np.eye(4))
    emptied.delete([0, 1, 2, 3])
    emptied.save(tmp_path / "emptied")
    loaded = make_store.load(tmp_path / "emptied")
    assert len(loaded) == 0 and loaded.search([1, 0, 0, 0], k=2) == ([], [], [])
    assert loaded.add(np.eye(4)[:2]) == [4, 5]  # never reused
    assert loaded.search([1, 0, 0, 0], k=5).ids == [4, 5]


def test_save_twice_to_the_same_directory(make_store, tmp_path):
    path = tmp_path / "s"
    store = make_store(4, "IP")
    store.add(np.eye(4), [{"v": 1}] * 4)
    store.save(path)
    store.add([1, 1, 1, 1], {"v": 2})
    store.update_metadata([0], {"v": 3})
    store.save(path)
    loaded = make_store.load(path)
    assert loaded.ids() == [0, 1, 2, 3, 4]
    assert loaded.get([0, 4]).metadata == [{"v": 3}, {"v": 2}]
    assert loaded.search([1, 1, 1, 1], k=5) == store.search([1, 1, 1, 1], k=5)
    # Loading into an instance replaces its old content entirely.
    store.add(np.ones((3, 4)))
    assert store.load(path) is store and store.ids() == [0, 1, 2, 3, 4]
    assert store.add(np.zeros(4)) == [5]
