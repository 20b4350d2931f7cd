"""Hypothesis: any sequence of adds (with metadata, some of them invalid, some deletes in
between) followed by a search gives the numpy oracle's answer over the vectors the store
should hold. Flat always answers exactly; so does an IVFFlat store that probes every list,
before and after it trains."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from parag.errors import InvalidArgumentError
from parag.vectorstore import FAISSVectorStore
from tests.conftest import oracle

TOL = 1e-4

# Small integers give many exact ties; thousandths give general positions. No denormals.
GRID = st.integers(-3, 3).map(float)
FINE = st.integers(-1000, 1000).map(lambda v: v / 1000)


def assert_matches_oracle(result, single: bool, live: dict[int, np.ndarray], meta: dict[int, dict],
                          queries: np.ndarray, k: int, metric: str) -> None:
    dists, idss, metas = ([x] for x in result) if single else result
    ids = list(live)
    n = len(ids)
    assert len(idss) == len(queries)
    if n == 0:
        assert all(row == [] for row in idss) and all(row == [] for row in dists)
        return
    base = np.stack([live[i] for i in ids])
    scores, order = oracle(base, queries, n, metric)
    for q in range(len(queries)):
        got, dist, got_meta = idss[q], np.asarray(dists[q], np.float64), metas[q]
        kk = min(k, n)
        assert len(got) == len(got_meta) == kk
        assert len(set(got)) == kk and set(got) <= set(ids)
        assert got_meta == [meta[i] for i in got]
        want = scores[q, :kk]
        np.testing.assert_allclose(dist, want, rtol=TOL, atol=TOL)
        own = dict(zip((ids[r] for r in order[q]), scores[q]))
        np.testing.assert_allclose(dist, [own[i] for i in got], rtol=TOL, atol=TOL)
        kth = want[-1]
        sure = {ids[r] for r, s in zip(order[q][:kk], want) if abs(s - kth) > TOL * (1 + abs(kth))}
        assert sure <= set(got)


def run_scenario(data, index_type: str, metric: str, params: dict, max_batch: int, max_ops: int) -> None:
    d = data.draw(st.integers(1, 6), label="dimension")
    elements = data.draw(st.sampled_from([GRID, FINE]), label="elements")
    store = FAISSVectorStore(d, index_type, metric, **params)
    live: dict[int, np.ndarray] = {}
    meta: dict[int, dict] = {}
    next_id = 0
    for _ in range(data.draw(st.integers(1, max_ops), label="ops")):
        if live and data.draw(st.integers(0, 4), label="delete?") == 0:
            doomed = data.draw(st.lists(st.sampled_from(sorted(live)), min_size=1, max_size=5, unique=True))
            assert store.delete(doomed) == len(doomed)
            for i in doomed:
                del live[i], meta[i]
            continue
        n = data.draw(st.integers(1, max_batch), label="batch size")
        one = n == 1 and data.draw(st.booleans(), label="1-D")
        x = data.draw(arrays(np.float32, (n, d), elements=elements), label="vectors")
        m = data.draw(st.one_of(st.none(), st.lists(st.fixed_dictionaries(
            {"tag": st.text(max_size=3), "v": st.integers(-5, 5)}), min_size=n, max_size=n)), label="metadata")
        if metric == "cosine" and not np.linalg.norm(x, axis=1).all():
            with pytest.raises(InvalidArgumentError):  # a zero vector has no direction
                store.add(x[0] if one else x, m)
            continue
        ids = store.add(x[0] if one else x, (m[0] if one else m) if m is not None else None)
        assert ids == list(range(next_id, next_id + n))
        next_id += n
        for j, i in enumerate(ids):
            live[i], meta[i] = x[j], ({} if m is None else m[j])
        assert len(store) == len(live) and store.ids() == sorted(live)

    queries = data.draw(arrays(np.float32, (data.draw(st.integers(1, 4)), d), elements=elements), label="queries")
    if metric == "cosine":
        queries[np.linalg.norm(queries, axis=1) == 0] = 1.0
    k = data.draw(st.integers(1, len(live) + 3), label="k")
    single = data.draw(st.booleans(), label="single query")
    event(f"{index_type} trained={store.is_trained}")
    result = store.search(queries[0] if single else queries, k=k)
    assert_matches_oracle(result, single, live, meta, queries[:1] if single else queries, k, metric)


SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("metric", ["L2", "IP", "cosine"])
@SETTINGS
@given(data=st.data())
def test_flat_adds_then_search_equal_the_oracle(metric, data):
    run_scenario(data, "Flat", metric, {}, max_batch=8, max_ops=8)


@pytest.mark.parametrize("metric", ["L2", "cosine"])
@SETTINGS
@given(data=st.data())
def test_ivf_probing_every_list_equals_the_oracle_across_training(metric, data):
    # nlist 2 trains at 78 vectors; with nprobe == nlist the IVF index is exact too.
    run_scenario(data, "IVFFlat", metric, {"nlist": 2, "nprobe": 2}, max_batch=50, max_ops=6)
