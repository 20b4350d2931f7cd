"""Checks shared by the conformance suite and the FAISS-specific tests: results against
the numpy brute-force oracle of conftest, and errors against what the contract promises."""

from __future__ import annotations

import re
import warnings
from typing import Any, Callable

import numpy as np
import pytest

from parag.errors import ParagError
from tests.conftest import clustered, oracle, recall_at_k

# The store the error tests fail calls on: N vectors of dimension D.
D = 8
N = 200  # IVF4 trains at 156
QUERIES = clustered(6, D, seed=99)

# The FAISS kind that the bad-input catalogues (tests/conformance/test_errors.py, and the
# malformed filters and record calls of test_filters / test_records) run on. Every FAISS
# kind is one class, FAISSVectorStore, whose public methods check their arguments
# (parag._validation, parag.metadata.encode_metadata, parag._ids, compile_filter) before any
# index-kind code runs: a bad input takes the same path whatever the kind, and each case on
# all seven kinds checked that one path seven times (1,200 tests). The catalogues run on
# HNSW-sq8 (the most state a failed call could disturb: an approximate compressed index and
# its float32 copy) and on the Milvus kinds (checks of their own); one case of each
# catalogue still runs on every kind (test_errors.test_every_kind_refuses_bad_input_alike).
INPUT_CHECK_KINDS = ("HNSW-sq8",)

PADDING = 1e30  # FAISS pads missing results with +-3.4e38
TOL = 1e-4

# The stores of shared(): the latest store kind's only (tests/conformance/conftest.py empties
# it after each module), so a server kind's collections go back to its pool.
SHARED: dict[tuple, Any] = {}


def shared(make_store: Any, build: Callable[..., Any], *args: Any) -> Any:
    """``build(make_store, *args)``, built once per store kind and arguments, for the tests
    that only read it (a Milvus store's adds are round trips). Bad-input tests may share it:
    their calls must fail and change nothing, which each of them checks."""
    if not any(key[0] is make_store for key in SHARED):
        SHARED.clear()
    key = (make_store, build, args)
    if key not in SHARED:
        SHARED[key] = build(make_store, *args)
    return SHARED[key]


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


def filled(store, x: np.ndarray, batches=(1,)):
    """``store`` (empty) after adding ``x`` (ids = row numbers) in batches of the given
    sizes, then the rest."""
    start = 0
    for size in [*batches, len(x)]:
        part = x[start : start + size]
        if len(part):
            ids = store.add(part, [{"row": start + j} for j in range(len(part))])
            assert ids == list(range(start, start + len(part)))
            start += len(part)
    assert len(store) == len(x)
    return store


def approx_recall(store, base: np.ndarray, queries: np.ndarray, metric: str, **kw) -> float:
    _, ids, meta = store.search(queries, k=10, **kw)
    for row_ids, row_meta in zip(ids, meta):
        assert [m["row"] for m in row_meta] == row_ids
    _, truth = oracle(base, queries, 10, metric)
    return recall_at_k(ids, truth, 10)


def check_raises(call, cls, builtin, name):
    """``call()`` raises ``cls``, a ParagError that is also ``builtin``, with a message that
    matches the regex ``name`` (the argument it names), and no numpy warning on the way."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(cls) as info:
            call()
    e = info.value
    assert isinstance(e, ParagError) and isinstance(e, builtin), type(e).__mro__
    assert re.search(name, str(e)), f"message {str(e)!r} does not name {name!r}"
    return e


def errors_store(store, expect_trained=None):
    """``store`` (empty, dimension D) after adding N vectors with metadata and deleting two:
    tombstones, and the highest id gone (the next generated id is still N)."""
    x = clustered(N, D, seed=1)
    assert store.add(x, [{"i": i, "tags": ["a", str(i)]} for i in range(N)]) == list(range(N))
    store.delete([3, N - 1])
    if expect_trained is not None:
        expect_trained(store, N)
    return store


def snapshot(s) -> tuple:
    """Everything observable about an error-test store."""
    ids = s.ids()
    return (
        len(s), ids, s.search(QUERIES, k=7), s.search(QUERIES[0], k=N + 5),
        s.get(ids).metadata, s.params, s.is_trained, repr(s),
    )


def assert_unchanged(s, before: tuple) -> None:
    assert snapshot(s) == before
    # No id was consumed by the failed call.
    assert s.add(np.full(D, 0.5), {"new": True}) == [N]


def load_both_ways(store, path, cls, builtin, name) -> None:
    """Loading ``path`` fails the same way through the class and the instance form."""
    check_raises(lambda: type(store).load(path), cls, builtin, name)
    check_raises(lambda: store.load(path), cls, builtin, name)
    check_raises(lambda: store.load(str(path)), cls, builtin, name)


# ----------------------------------------------------------------------------- round trips


def meta_for(i: int) -> dict:
    return {
        "i": i, "text": f"doc {i} — ünïcödé ✓", "score": i / 7, "flag": i % 2 == 0, "none": None,
        "nested": {"list": [i, "x", 1.5, [True]], "empty": {}}, "big": 2**53 + i,
    }


def build_round_trip_store(store, n: int = 400):
    """``store`` (empty) with tombstones, an explicit id, the highest generated id deleted;
    and its live vectors (id -> vector) and ids."""
    x = clustered(n, store.dimension, seed=21, centres=12)
    store.add(x[:1], [meta_for(0)])
    store.add(x[1 : n - 1], [meta_for(i) for i in range(1, n - 1)])
    store.add(x[n - 1], meta_for(n - 1), ids=[5000])  # explicit id: next id becomes 5001
    store.add(np.ones(store.dimension), {"last": True})  # id 5001
    dead = [7, 8, 100, 5001]
    store.delete(dead)
    live = [i for i in range(n - 1) if i not in dead] + [5000]
    vectors = {i: x[i] for i in range(n - 1) if i not in dead} | {5000: x[n - 1]}
    assert store.ids() == live
    return store, vectors, live


def exact_over(result, vectors: dict, queries, k, metric) -> None:
    """Batch ``result`` is an exact top-k over ``vectors`` (id -> vector), ties as sets."""
    assert_exact(result, np.stack(list(vectors.values())), list(vectors), queries, k, metric)
