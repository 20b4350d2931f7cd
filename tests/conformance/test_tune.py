"""``store.tune`` on every store kind: it makes its choice the store's default, the recall it
reports is the one the numpy oracle measures of the store's searches afterwards, an exact
store has nothing to tune, and bad arguments or an empty store change nothing. (The sweep on
real FAISS indexes: tests/test_tuning.py; on Milvus's own indexes, flushed: tests/test_milvus_tune.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from parag.errors import DimensionMismatchError, InvalidArgumentError, InvalidTypeError
from tests.checks import data, filled
from tests.conftest import oracle, recall_at_k

D, K = 12, 5


@pytest.mark.rotate_metrics("L2", "IP", "cosine")
def test_tune_sets_its_choice_and_reports_the_recall_the_oracle_measures(make_store, metric):
    x, q = data(400, D, 20, seed=5)
    store = filled(make_store(D, metric), x, batches=(200,))
    result = store.tune(q, target_recall=0.9, k=K)
    if result.param is None:  # exact: nothing to tune
        assert (result.value, result.recall, result.reached, result.settings) == (None, 1.0, True, [])
        return
    assert store.params[result.param] == result.value
    if result.rerank is not None:
        assert store.params["rerank"] == result.rerank
    values = [(s.rerank or 0, s.value) for s in result.settings]
    assert values == sorted(values) and all(s.latency_ms > 0 for s in result.settings)
    chosen = [s for s in result.settings if (s.value, s.rerank) == (result.value, result.rerank)]
    assert chosen and chosen[0].recall == result.recall and result.reached == (result.recall >= 0.9)
    # Measured here against numpy, not taken from tune (float64 against float32: ties may differ).
    found = store.search(q, k=K, include=()).ids
    assert recall_at_k(found, oracle(x, q, K, metric)[1], K) == pytest.approx(result.recall, abs=0.02)


BAD = [
    ({"target_recall": 0}, InvalidArgumentError),
    ({"target_recall": 1.5}, InvalidArgumentError),
    ({"target_recall": float("nan")}, InvalidArgumentError),
    ({"target_recall": "0.9"}, InvalidTypeError),
    ({"target_recall": True}, InvalidTypeError),
    ({"k": 0}, InvalidArgumentError),
    ({"k": 2.5}, InvalidTypeError),
    ({"queries": np.zeros((3, D + 1))}, DimensionMismatchError),
    ({"queries": np.zeros((2, 3, D))}, InvalidArgumentError),
    ({"queries": np.zeros((0, D))}, InvalidArgumentError),
    ({"queries": [["a"] * D]}, InvalidTypeError),
    ({"queries": np.full((2, D), np.nan)}, InvalidArgumentError),
    ({"n_samples": 0}, InvalidArgumentError),
    ({"seed": -1}, InvalidArgumentError),
]


def test_bad_arguments_raise_and_change_nothing(make_store):
    x, _ = data(300, D, 0, seed=6)
    store = filled(make_store(D), x)
    params = store.params
    for kwargs, error in BAD:
        with pytest.raises(error):
            store.tune(**kwargs)
        assert store.params == params, kwargs


def test_an_empty_store_has_nothing_to_tune_where_it_searches_exactly_else_says_it_is_empty(make_store):
    # Exactly: an index not trained yet (FAISS IVF, compressed storage), or a float32 Flat
    # one. A Milvus collection is always "trained": an empty HNSW or IVF one is an error.
    store = make_store(D)
    params = store.params
    if not store.is_trained or (store.index_type == "Flat" and "rerank" not in params):
        assert store.tune() == (None, None, 1.0, True, [], None)
    else:
        with pytest.raises(InvalidArgumentError, match="empty"):
            store.tune()
    assert store.params == params and len(store) == 0
