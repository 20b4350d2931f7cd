"""MilvusVectorStore.tune on Milvus's own indexes (HNSW, IVF_FLAT, flushed so that the server
really searches them) against the numpy oracle: the recall it reports is the one the store's
searches reach afterwards, the value is the smallest that reaches the target, and it is kept
with the collection. (The contract on every backend, unflushed: tests/conformance/test_tune.py.)
Skipped where the server cannot start."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import clustered, oracle, recall_at_k
from tests.milvus_support import POOL

pytest.importorskip("pymilvus")

N, D, K = 3000, 32, 10
# Overlapping clusters, so that the smallest values miss the target and each tune measures
# several values.
CASES = {"HNSW": ("ef_search", {"M": 8, "ef_construction": 32}, 0.95),
         "IVFFlat": ("nprobe", {"nlist": 32}, 0.95)}


@pytest.fixture(scope="module")
def data():
    x = clustered(N + 40, D, centres=60, seed=21, spread=1.0)
    return x[:N], x[N:]


def flushed(index_type: str, x: np.ndarray):
    store = POOL.store(D, index_type, "L2", **CASES[index_type][1])
    store.add(x)
    store.flush()  # sealed and indexed: the server searches its index, not brute force
    return store


@pytest.mark.parametrize("index_type", CASES)
def test_tune_chooses_the_smallest_value_reaching_the_target_and_keeps_it(milvus, data, index_type):
    x, q = data
    param, _, target = CASES[index_type]
    store = flushed(index_type, x)
    result = store.tune(q, target_recall=target, k=K)
    assert result.param == param and result.reached and store.params[param] == result.value
    assert len(result.settings) > 1, "the data should make the smallest value miss the target"
    assert [s.value for s in result.settings] == sorted(s.value for s in result.settings)
    assert all(s.recall < target for s in result.settings[:-1]) and result.settings[-1].value == result.value
    truth = oracle(x, q, K, "L2")[1]
    if index_type == "IVFFlat":  # each recall measured again here, on the store's own search
        for s in result.settings:
            got = store.search(q, K, include=(), nprobe=s.value).ids
            assert recall_at_k(got, truth, K) == pytest.approx(s.recall, abs=0.01), s
    # The server's HNSW search is not a function of ef alone: on the test server, recall@10 at
    # ef 10 moved from 0.69 to 0.79 after searches with a larger ef (docs/milvus.md). So only
    # the chosen value is checked, where it is high enough for that to fade.
    got = store.search(q, K, include=()).ids
    assert recall_at_k(got, truth, K) >= target - 0.02
    # Kept with the collection: opening it again searches with the tuned value.
    from parag.vectorstore import MilvusVectorStore

    with MilvusVectorStore.open(store.collection, uri=milvus.uri, token=milvus.token) as reopened:
        assert reopened.params[param] == result.value
    # So is a store constructed on the collection, unless it is given a value of its own.
    build = CASES[index_type][1]
    for given, expected in (({}, result.value), ({param: 7}, 7)):
        with MilvusVectorStore(D, index_type, "L2", uri=milvus.uri, token=milvus.token, collection=store.collection,
                               **build, **given) as constructed:
            assert constructed.params[param] == expected


def test_string_ids_inner_product_deleted_rows_and_sampled_queries(milvus, data):
    # IVF_FLAT gives the same hits for the same nprobe every time: each setting's recall is
    # measured again here, against numpy over the rows left after the deletes. (IP: scores
    # where larger is better, as cosine's; cosine is tuned in tests/conformance/test_tune.py.)
    metric = "IP"
    x, q = data
    x = x * np.linspace(0.5, 2.0, len(x), dtype=np.float32)[:, None]  # lengths differ: IP is not cosine
    store = POOL.store(D, "IVFFlat", metric, nlist=32)
    ids = [f"doc-{i}-\u00e9" for i in range(N)]
    store.add(x, ids=ids)
    store.flush()
    gone = list(range(0, N, 3))
    store.delete([ids[i] for i in gone])
    kept = np.setdiff1d(np.arange(N), gone)
    result = store.tune(q, target_recall=0.95, k=K)
    assert result.reached and len(result.settings) > 1
    truth = kept[oracle(x[kept], q, K, metric)[1]]
    for s in result.settings:
        got = [[int(i.split("-")[1]) for i in row] for row in store.search(q, K, include=(), nprobe=s.value).ids]
        assert recall_at_k(got, truth, K) == pytest.approx(s.recall, abs=0.01), s
    # Sampled queries: probing every list is exact, so 1.0 is reached, which it would not be if a
    # sampled vector counted as its own neighbour on one side only.
    sampled = store.tune(target_recall=1.0, k=K, n_samples=30, seed=3)
    assert sampled.reached and sampled.recall == 1.0 and sampled.value <= 32


def test_a_collection_too_small_to_be_indexed_has_nothing_to_tune(milvus, data):
    # Below the server's 1,024 rows a segment: searched exhaustively, flushed or not.
    store = POOL.store(D, "IVFFlat", "L2", nlist=32)
    store.add(data[0][:600])
    assert store.tune(data[1]) == (None, None, 1.0, True, [], None)
    assert store.params["nprobe"] == 64
    from parag.vectorstore.milvus_schema import SEARCH_PROPERTY

    assert SEARCH_PROPERTY not in POOL.client.describe_collection(store.collection).get("properties", {})


def test_a_saved_value_parag_cannot_read_is_a_mismatch_error(milvus):
    from parag.errors import CollectionMismatchError
    from parag.vectorstore import MilvusVectorStore
    from parag.vectorstore.milvus_schema import SEARCH_PROPERTY

    store = POOL.store(3, "HNSW", "L2", M=4)
    store.add(np.eye(3, dtype=np.float32))
    for text in ("not json", "[64]", '{"ef_search": "many"}', '{"ef_search": 1.9}', '{"ef_search": true}',
                 '{"ef_search": 0}', '{"ef_search": 99999999}'):
        POOL.client.alter_collection_properties(store.collection, properties={SEARCH_PROPERTY: text})
        with pytest.raises(CollectionMismatchError, match="cannot read"):
            MilvusVectorStore.open(store.collection, uri=milvus.uri, token=milvus.token)


def test_k_beyond_what_milvus_returns_is_refused(milvus):
    from parag.errors import InvalidArgumentError

    store = POOL.store(4, "IVFFlat", "L2", nlist=16)
    store.add(np.random.default_rng(0).standard_normal((16_400, 4)).astype(np.float32))
    params = store.params
    with pytest.raises(InvalidArgumentError, match="k must be at most 16383"):
        store.tune(k=20_000)  # 16,399 neighbours of a sampled vector: more than a search returns
    assert store.params == params
