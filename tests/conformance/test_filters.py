"""Filtered search (issue 3): the filter language and the pre-filter's exactness.

- Each operator's meaning, on hand-written metadata with hand-written answers (numbers by
  value, True is not 1, $ne/$nin match a missing field, ranges on numbers and strings,
  lists and dicts as whole values), on every store kind, before and after deletes and a
  save/load round trip.
- Every store kind x metric, fresh and after a save/load round trip, at selectivities from
  0.1% to 100%, with each operator and nested $and/$or/$not: exact indexes (Flat, and
  IVFFlat untrained or probing all its lists) equal the numpy oracle over the matching
  vectors (ids as sets where the k-th score ties, distances to 1e-4); IVFFlat (nlist 128)
  and HNSW reach recall@10 >= 0.95 with default parameters; every index returns
  min(k, matches) results, all matching, each with its true score.
- Malformed filters raise InvalidFilterError naming the culprit and change nothing (on one
  FAISS kind and the Milvus ones: compile_filter refuses them before any index code runs).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator

import numpy as np
import pytest

from parag.errors import InvalidArgumentError, InvalidFilterError, ParagError
from parag.filters import MAX_DEPTH
from tests.checks import INPUT_CHECK_KINDS, shared
from tests.conformance.kinds import WITH_APPROX_IVF
from tests.lifecycle_model import METRICS, N, Model, check_search, dataset, matches, rich_metadata, snapshot

SELECTIVITIES = (0.001, 0.01, 0.1, 0.25, 0.5, 1.0)

# ----------------------------------------------------------------------------- semantics

DOCS = [
    {"source": "a", "year": 2020, "score": 0.5, "flag": True, "tags": ["x", "y"], "lang": "en", "date": "2024-01-15"},
    {"source": "b", "year": 2021.0, "score": 1, "flag": 1, "tags": ["y", "x"], "lang": None},
    {"source": "a", "year": 2019, "flag": False, "nested": {"k": 1, "j": 2}, "date": "2023-12-31"},
    {"source": "c", "year": "2020", "flag": 0, "score": -2.5, "": 1, "a\nb": 2, "t\tab": True},
    {},
    {"source": "A", "year": 2022, "nested": {"j": 2, "k": 1}, "tags": [], "date": "2024-02-01", "a\nb": 3},
]
ALL_DOCS = set(range(len(DOCS)))

SEMANTICS = [
    ({"source": "a"}, {0, 2}),
    ({"source": {"$eq": "a"}}, {0, 2}),
    ({"source": {"$ne": "a"}}, {1, 3, 4, 5}),  # a missing field matches $ne
    ({"source": {"$in": ["a", "c"]}}, {0, 2, 3}),
    ({"source": {"$nin": ["a", "c"]}}, {1, 4, 5}),
    ({"source": {"$in": []}}, set()),
    ({"source": {"$nin": []}}, ALL_DOCS),
    ({"year": 2020}, {0}),  # not the string "2020"
    ({"year": "2020"}, {3}),
    ({"year": 2021}, {1}),  # 2021.0 == 2021
    ({"year": {"$eq": 2021.0}}, {1}),
    ({"year": {"$gt": 2019}}, {0, 1, 5}),  # ranges on numbers skip strings
    ({"year": {"$gte": 2019, "$lt": 2021}}, {0, 2}),
    ({"year": {"$lte": 2019.5}}, {2}),
    ({"year": {"$lt": "3"}}, {3}),  # ranges on strings skip numbers
    ({"flag": True}, {0}),  # True is not 1
    ({"flag": 1}, {1}),
    ({"flag": 0}, {3}),
    ({"flag": False}, {2}),
    ({"flag": {"$in": [True, 0]}}, {0, 3}),
    ({"flag": {"$nin": [True, 0]}}, {1, 2, 4, 5}),
    ({"flag": {"$gt": 0}}, {1}),  # bools are not numbers for ranges
    ({"score": {"$gt": 0}}, {0, 1}),
    ({"score": {"$in": [1.0]}}, {1}),
    ({"score": {"$gte": -2.5, "$lte": 0.5}}, {0, 3}),
    ({"lang": None}, {1}),
    ({"lang": {"$exists": True}}, {0, 1}),  # a null value exists
    ({"lang": {"$exists": False}}, {2, 3, 4, 5}),
    ({"tags": ["x", "y"]}, {0}),  # lists compare as whole values, in order
    ({"tags": []}, {5}),
    ({"tags": {"$in": [["y", "x"], []]}}, {1, 5}),
    ({"tags": "x"}, set()),
    ({"nested": {"k": 1, "j": 2}}, {2, 5}),  # dicts as whole values, key order aside
    ({"nested": {"$eq": {"j": 2, "k": 1}}}, {2, 5}),
    ({"date": {"$gte": "2024-01-01"}}, {0, 5}),  # ISO dates as strings
    ({"date": {"$lt": "2024"}}, {2}),
    ({"source": {"$gt": "B"}}, {0, 1, 2, 3}),  # lexicographic: "A" < "B" < "a"
    ({"$or": [{"source": "c"}, {"year": 2019}]}, {2, 3}),
    ({"$and": [{"source": "a"}, {"year": {"$gt": 2019}}]}, {0}),
    ({"$not": {"source": "a"}}, {1, 3, 4, 5}),
    ({"year": {"$not": {"$gt": 2019}}}, {2, 3, 4}),  # a string or missing year is not > 2019
    ({"source": "a", "year": 2019}, {2}),
    ({"$or": [{"$and": [{"source": "a"}, {"$not": {"flag": True}}]},
              {"nested": {"$exists": True}, "year": {"$gte": 2022}}]}, {2, 5}),
    ({"$not": {"$or": [{"source": {"$in": ["a", "b"]}}, {"$not": {"year": {"$exists": True}}}]}}, {3, 5}),
    ({"$and": [{"$or": [{"flag": True}, {"flag": False}]}, {"$or": [{"year": 2019}, {"lang": "en"}]}]}, {0, 2}),
    ({}, ALL_DOCS),
    ({"nope": "x"}, set()),
    ({"nope": {"$nin": ["x"]}}, ALL_DOCS),
    ({"nope": {"$ne": None}}, ALL_DOCS),
    ({"nope": {"$gt": 0}}, set()),
    # keys a Milvus JSON path cannot name (docs/milvus.md): any string is a key
    ({"": 1}, {3}),
    ({"a\nb": 2}, {3}),
    ({"a\nb": {"$ne": 2}}, ALL_DOCS - {3}),
    ({"a\nb": {"$exists": True}}, {3, 5}),
    ({"t\tab": True, "": {"$in": [1, 5]}}, {3}),
    ({"\x7f": {"$exists": False}}, ALL_DOCS),
]


def semantic_store(make_store, metric: str = "L2") -> tuple:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((len(DOCS), 8)).astype(np.float32)
    store = make_store(8, metric)
    store.add(x, DOCS)
    return store, x


@pytest.mark.parametrize("spec, want", SEMANTICS, ids=[str(s) for s, _ in SEMANTICS])
def test_model_agrees_with_hand_written_answers(spec, want):
    """The oracle's own filter evaluation, checked against the hand-written answers."""
    assert {i for i, m in enumerate(DOCS) if matches(m, spec)} == want


@pytest.mark.kinds(*WITH_APPROX_IVF)
def test_operator_semantics(make_store, tmp_path):
    store, x = semantic_store(make_store)
    q = np.zeros(8, np.float32)

    def found(s, spec) -> set[int]:
        dist, ids, meta = s.search(q, k=10, filter=spec)
        assert all(s.get([i]).metadata == [m] for i, m in zip(ids, meta))
        return set(ids)

    for spec, want in SEMANTICS:
        assert found(store, spec) == want, spec
    # After a delete and a metadata update: the columns follow.
    store.delete([0])
    store.update_metadata([3], [{"source": "a", "year": 2020}])
    docs = {i: m for i, m in enumerate(DOCS) if i != 0}
    docs[3] = {"source": "a", "year": 2020}
    for spec, _ in SEMANTICS:
        assert found(store, spec) == {i for i, m in docs.items() if matches(m, spec)}, spec
    if not make_store.persistent:
        return
    store.save(tmp_path / "s")
    loaded = make_store.load(tmp_path / "s")
    for spec, _ in SEMANTICS:
        assert found(loaded, spec) == {i for i, m in docs.items() if matches(m, spec)}, spec


def test_callable_filter(make_store):
    store, _ = semantic_store(make_store)
    q = np.zeros(8)
    if not make_store.callable_filters:  # a documented difference (Milvus): a clear error
        for spec in (lambda m: True, {"$or": [{"year": 2020}, lambda m: True]}):
            with pytest.raises(InvalidFilterError, match="callable"):
                store.search(q, 10, filter=spec)
        return
    assert set(store.search(q, 10, filter=lambda m: m.get("year") == 2020).ids) == {0}
    assert set(store.search(q, 10, filter=lambda m: "tags" in m).ids) == {0, 1, 5}
    assert store.search(q, 10, filter=lambda m: False).ids == []
    with pytest.raises(InvalidFilterError):
        store.search(q, 10, filter=lambda m: m["year"] > 2000)  # KeyError on {}, wrapped
    # The filter function gets copies: it cannot change the store.
    store.search(q, 10, filter=lambda m: m.clear())
    assert store.get([0]).metadata == [DOCS[0]]


def test_filter_is_not_mutated_and_can_be_reused(make_store):
    store, _ = shared(make_store, semantic_store)
    spec = {"$or": [{"source": {"$in": ["a"]}}, {"year": {"$gte": 2021}}]}
    frozen = repr(spec)
    first = store.search(np.zeros(8), 10, filter=spec)
    assert repr(spec) == frozen
    assert store.search(np.zeros(8), 10, filter=spec) == first


# ----------------------------------------------------------------------------- malformed filters

BAD_FILTERS = [
    ({"year": {"$foo": 1}}, "$foo"),
    ({"$foo": [{"year": 1}]}, "$foo"),
    ({"year": {"$in": 2020}}, "$in"),
    ({"year": {"$nin": "abc"}}, "$nin"),
    ({"year": {"$exists": 1}}, "$exists"),
    ({"year": {"$exists": "yes"}}, "$exists"),
    ({"year": {"$gt": {"a": 1}}}, "$gt"),
    ({"year": {"$lte": [1, 2]}}, "$lte"),
    ({"year": {"$lt": None}}, "$lt"),
    ({"year": {"$gte": True}}, "$gte"),
    ({"$and": {"year": 1}}, "$and"),
    ({"$or": []}, "$or"),
    ({"$or": [{"year": 1}, "x"]}, "$or"),
    ({"$not": [{"year": 1}]}, "$not"),
    ({"year": {"$not": 5}}, "$not"),
    ({1: "a"}, "1"),
    ({"year": {"$gt": 1, "plain": 2}}, "plain"),
    ({"year": {"$eq": {1, 2}}}, "$eq"),
    ("year = 2020", "str"),
    (["year", 2020], "list"),
    (42, "int"),
]


# Malformed and runaway filters: one FAISS kind (and the Milvus ones); compile_filter refuses
# them before any index-kind code runs (tests/checks.INPUT_CHECK_KINDS). The well-formed
# filters of this module run on every kind.
@pytest.mark.kinds(*INPUT_CHECK_KINDS)
@pytest.mark.parametrize("spec, culprit", BAD_FILTERS, ids=[repr(s) for s, _ in BAD_FILTERS])
def test_malformed_filter(make_store, spec, culprit):
    store, x = shared(make_store, semantic_store)
    before = snapshot(store, x[:2], {"source": "a"})
    with pytest.raises(InvalidFilterError) as info:
        store.search(x[0], 3, filter=spec)
    assert isinstance(info.value, (ParagError, ValueError, InvalidArgumentError))
    assert culprit in str(info.value), str(info.value)
    assert snapshot(store, x[:2], {"source": "a"}) == before


def nested_not(depth: int) -> dict:
    spec: dict = {"year": 2020}
    for _ in range(depth):
        spec = {"$not": spec}
    return spec


# Issue 10: what once escaped as RecursionError or OverflowError.
RUNAWAY_FILTERS = {
    "10,000 nested $not": (nested_not(10_000), rf"\$not.*{MAX_DEPTH}"),
    "nesting one past the limit": (nested_not(MAX_DEPTH + 1), rf"\$not.*{MAX_DEPTH}"),
    "int beyond float range": ({"year": {"$gt": 10**400}}, r"\$gt.*float range"),
    "negative int beyond float range": ({"score": {"$lte": -(10**309)}}, r"\$lte.*float range"),
    "NaN bound": ({"year": {"$gte": float("nan")}}, r"\$gte.*NaN"),
}


@pytest.mark.kinds(*INPUT_CHECK_KINDS)
@pytest.mark.parametrize("case", RUNAWAY_FILTERS, ids=list(RUNAWAY_FILTERS))
def test_runaway_filter(make_store, case):
    spec, message = RUNAWAY_FILTERS[case]
    store, x = shared(make_store, semantic_store)
    before = snapshot(store, x[:2], {"source": "a"})
    with pytest.raises(InvalidFilterError) as info:
        store.search(x[:2], 3, filter=spec)
    assert isinstance(info.value, ValueError) and re.search(message, str(info.value)), str(info.value)
    assert snapshot(store, x[:2], {"source": "a"}) == before
    # At the limit, nesting is fine: an even number of $not is the filter itself.
    depth = MAX_DEPTH - MAX_DEPTH % 2
    assert found_ids(store, nested_not(depth)) == {i for i, m in enumerate(DOCS) if matches(m, {"year": 2020})}


def found_ids(store, spec) -> set[int]:
    return set(store.search(np.zeros(8, np.float32), k=len(DOCS), filter=spec).ids)


def test_malformed_filter_is_rejected_on_an_empty_store(make_store):
    store = make_store(3)
    with pytest.raises(InvalidFilterError):
        store.search([1, 2, 3], 3, filter={"a": {"$bad": 1}})
    assert store.search([1, 2, 3], 3, filter={"a": 1}) == ([], [], [])


# ----------------------------------------------------------------------------- selectivity grid


def filters_at(share: float, seed: int) -> list[dict]:
    """Filters over the rank permutation allowing exactly ``share`` of the N vectors (and two
    correlated ones allowing about as many), in every operator and nested combination."""
    m = max(1, round(share * N))
    rng = np.random.default_rng(seed)
    chosen = rng.choice(N, m, replace=False).tolist()
    rest = sorted(set(range(N)) - set(chosen))
    half = m // 2
    specs = [
        {"rank": {"$lt": m}},
        {"rank": {"$in": chosen}},
        {"rank": {"$nin": rest}},
        {"rank": {"$gte": N - m}},
        {"rank": {"$not": {"$gte": m}}},
        {"$not": {"rank": {"$gt": m - 1}}},
        {"rank": {"$gt": -1, "$lte": m - 1}},
        {"$or": [{"rank": {"$lt": half}}, {"rank": {"$gte": N - (m - half)}}]},
        {"$and": [{"rank": {"$lt": m + 1}}, {"rank": {"$ne": m}}, {"$or": [{"side": "pos"}, {"side": "neg"}]}]},
        {"$and": [{"rank": {"$in": chosen}}, {"$not": {"$and": [{"score": {"$lt": 0}}, {"score": {"$exists": True}}]}}]},
        {"$or": [{"$and": [{"side": "pos"}, {"rank": {"$lt": m}}]}, {"$and": [{"side": {"$ne": "pos"}}, {"rank": {"$in": chosen}}]}]},
        {"side": "pos", "rank": {"$lt": min(N, 2 * m)}},  # correlated with the vectors: ~share
    ]
    if m <= 10:
        specs.append({"$or": [{"rank": r} for r in chosen]})
    return specs


@functools.lru_cache(maxsize=None)
def _built(kind, metric: str):
    """A store of N vectors with rich metadata, built once per kind and metric."""
    x, q = dataset(seed=3)
    meta = rich_metadata(x, seed=3)
    store = kind(x.shape[1], metric)
    store.add(x, meta)
    kind.expect_trained(store, N)
    model = Model(metric)
    model.add(range(N), x, meta)  # the same metadata in every store: each filter is evaluated once
    return store, model, q


@pytest.fixture(scope="module", autouse=True)
def _drop_built() -> Iterator[None]:
    """The stores end with the module: a server kind's collection goes back to its pool, for
    the next module's stores of the same configuration (tests/milvus_support.py)."""
    yield
    _built.cache_clear()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return tmp_path_factory.mktemp("filtered")


@pytest.mark.kinds(*WITH_APPROX_IVF)
@pytest.mark.parametrize("loaded", [False, True], ids=["fresh", "loaded"])
@pytest.mark.parametrize("metric", METRICS)
def test_filtered_search_at_every_selectivity(make_store, metric, loaded, saved):
    if loaded and not make_store.persistent:
        pytest.skip(f"{make_store.name} does not save")
    store, model, q = _built(make_store, metric)
    if loaded:
        path = saved / f"{make_store.name}-{metric}"
        store.save(path)
        store = make_store.load(path)
    exact = make_store.exact
    if exact:
        q = q[:8]  # each query is checked exactly: fewer suffice
    for n, share in enumerate(SELECTIVITIES):
        specs = filters_at(share, seed=n)
        if loaded:  # a rotating third of the shapes: each shape at two selectivities
            specs = specs[n % 3 :: 3]
        for spec in specs:
            count = len(model.matching(spec)[0])
            assert count >= 1
            check_search(store, model, q, 10, spec, exact=exact)
            if share <= 0.01:
                check_search(store, model, q[0], 10, spec, exact=exact)


@pytest.mark.kinds(*WITH_APPROX_IVF)
@pytest.mark.parametrize("metric", METRICS)
def test_filters_on_other_fields(make_store, metric):
    """Filters on strings, floats, bools vs ints, nulls, lists, missing keys."""
    store, model, q = _built(make_store, metric)
    specs = [
        {"source": "s07"},
        {"source": {"$in": [f"s{i:02d}" for i in range(10)]}},
        {"source": {"$gte": "s50", "$lt": "s60"}},
        {"year": 2020},  # ints and floats alike
        {"year": {"$gte": 2012}},
        {"flag": True},
        {"flag": 1},
        {"flag": {"$nin": [True, 1]}},
        {"lang": {"$exists": False}},
        {"lang": {"$ne": "en"}},
        {"note": None},
        {"note": {"$exists": True}, "tags": ["b", "a"]},
        {"date": {"$gte": "2024-06-01", "$lt": "2024-07-01"}},
        {"score": {"$lt": 0.001}},
        {"$or": [{"lang": "fr", "year": {"$lt": 2005}}, {"$and": [{"flag": False}, {"source": {"$in": ["s01", "s02"]}}]}]},
        {"$not": {"$or": [{"lang": {"$in": ["en", "fr", "de"]}}, {"year": {"$lt": 2020}}]}},
        {"side": "neg"},
        {"source": "nope"},
    ]
    exact = make_store.exact
    if exact:
        q = q[:8]
    for spec in specs:
        check_search(store, model, q, 10, spec, exact=exact)
    if make_store.callable_filters:
        check_search(store, model, q[:5], 10, lambda m: m["year"] == 2020 and m.get("lang") == "en", exact=exact)


@pytest.mark.kinds(*WITH_APPROX_IVF)
@pytest.mark.parametrize("metric", METRICS)
def test_filtered_search_at_large_k(make_store, metric):
    store, model, q = _built(make_store, metric)
    exact = make_store.exact
    for share in (0.001, 0.01, 0.25):
        check_search(store, model, q[:5], 60, {"rank": {"$lt": round(share * N)}}, exact=exact,
                     min_recall=0.95 if exact or share < 0.1 else 0.8)


@pytest.mark.kinds("IVF16", "IVF128", "HNSW")
@pytest.mark.needs("starved")  # the kinds with search parameters that can starve (not Milvus-Flat)
@pytest.mark.parametrize("metric", METRICS)
def test_no_holes_with_starved_search_parameters(make_store, metric):
    """With tiny ef_search / nprobe (each kind's ``starved`` overrides) the ANN search finds
    too few allowed vectors: the store must still return min(k, matches) results, all
    matching, each with its true score."""
    store, model, q = _built(make_store, metric)
    assert make_store.starved
    for override in make_store.starved:
        for share in (0.25, 0.5, 1.0):
            for spec in filters_at(share, seed=7)[:4]:
                check_search(store, model, q, 10, spec, exact=False, min_recall=0.0, **override)
        check_search(store, model, q, 50, None, exact=False, min_recall=0.0, **override)
