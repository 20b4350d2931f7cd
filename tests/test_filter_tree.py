"""The filter language as data (issue 8, item 6): :func:`parag.filters.parse` gives the
documented tree, immutable; :func:`parag.filters.evaluate` over metadata columns agrees with
the independent model of ``tests/lifecycle_model.py``; runaway nesting and numbers beyond
float range are InvalidFilterErrors (issue 10). The language through a store, on every
kind: tests/conformance/test_filters.py."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parag.errors import InvalidFilterError, ParagError
from parag.filters import MAX_DEPTH, And, Compare, Exists, In, Not, Or, Predicate, evaluate, parse
from parag.metadata import MetadataStore, encode_metadata
from parag.vectorstore import FAISSVectorStore
from tests.lifecycle_model import matches
from tests.strategies import FILTERS, METADATA

TREES = [
    ({"a": 1}, Compare("a", "$eq", 1)),
    ({"a": {"$eq": [1, 2]}}, Compare("a", "$eq", [1, 2])),
    ({"a": {"$ne": None}}, Not(Compare("a", "$eq", None))),
    ({"a": {"$gte": 2, "$lt": "z"}}, And((Compare("a", "$gte", 2), Compare("a", "$lt", "z")))),
    ({"a": {"$in": [1, "x"]}}, In("a", (1, "x"))),
    ({"a": {"$nin": []}}, Not(In("a", ()))),
    ({"a": {"$exists": True}}, Exists("a")),
    ({"a": {"$exists": False}}, Not(Exists("a"))),
    ({"a": {"$not": {"$gt": 5}}}, Not(Compare("a", "$gt", 5))),
    ({"a": 1, "b": 2}, And((Compare("a", "$eq", 1), Compare("b", "$eq", 2)))),
    ({"$or": [{"a": 1}, {"$not": {"b": 2}}]}, Or((Compare("a", "$eq", 1), Not(Compare("b", "$eq", 2))))),
    ({"$and": [{"a": 1}]}, Compare("a", "$eq", 1)),
    ({}, And(())),
]


@pytest.mark.parametrize("spec, tree", TREES, ids=[repr(s) for s, _ in TREES])
def test_parse_gives_the_documented_tree(spec, tree):
    assert parse(spec) == tree


def test_trees_are_immutable_and_the_filter_untouched():
    spec = {"$or": [{"a": {"$in": [1, 2]}}, {"b": 1}]}
    tree = parse(spec)
    with pytest.raises(dataclasses.FrozenInstanceError):
        tree.parts = ()  # type: ignore[misc]
    assert isinstance(tree.parts, tuple) and isinstance(tree.parts[0].values, tuple)
    assert spec == {"$or": [{"a": {"$in": [1, 2]}}, {"b": 1}]}
    listed = {"tags": {"$in": [["x"], {"k": [1]}]}}
    tree = parse(listed)
    listed["tags"]["$in"][0].append("y")
    listed["tags"]["$in"][1]["k"].append(2)
    assert tree == In("tags", (["x"], {"k": [1]}))  # the tree kept its own copy
    fn = len
    assert parse(fn) == Predicate(fn)


def meta_of(dicts: list) -> MetadataStore:
    meta = MetadataStore()
    meta.append(encode_metadata(dicts, len(dicts)))
    return meta


@settings(max_examples=200, deadline=None)
@given(spec=FILTERS, metas=st.lists(METADATA, min_size=1, max_size=30))
def test_evaluate_agrees_with_the_model(spec, metas):
    dicts = [m or {} for m in metas]
    mask = evaluate(parse(spec), meta_of(dicts))
    assert mask.dtype == bool and mask.shape == (len(dicts),)
    assert mask.tolist() == [matches(m, spec) for m in dicts]


def test_evaluate_after_updates_and_deletes():
    meta = meta_of([{"a": 1}, {"a": 2}, {"b": 1}])
    tree = parse({"$or": [{"a": {"$gte": 2}}, {"b": {"$exists": True}}]})
    assert evaluate(tree, meta).tolist() == [False, True, True]
    meta.set([0], encode_metadata([{"a": 5}], 1))
    meta.kill([2])
    assert evaluate(tree, meta).tolist() == [True, True, False]
    assert evaluate(parse({"a": {"$ne": 5}}), meta).tolist() == [False, True, True]  # a deleted slot lacks "a"


def test_a_hand_built_tree_evaluates_and_a_foreign_object_is_refused():
    meta = meta_of([{"a": 1}, {"a": 2}])
    assert evaluate(Or((Compare("a", "$lt", 2), Exists("zz"))), meta).tolist() == [True, False]
    with pytest.raises(InvalidFilterError, match="not a filter node"):
        evaluate({"a": 1}, meta)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- issue 10


def nested_not(depth: int) -> dict:
    spec: dict = {"a": 1}
    for _ in range(depth):
        spec = {"$not": spec}
    return spec


def nested_field_not(depth: int) -> dict:
    cond: dict = {"$eq": 1}
    for _ in range(depth):
        cond = {"$not": cond}
    return {"a": cond}


def nested_or(depth: int) -> dict:
    spec: dict = {"a": 1}
    for _ in range(depth):
        spec = {"$or": [spec, {"b": 2}]}
    return spec


@pytest.mark.parametrize("build", [nested_not, nested_field_not, nested_or])
def test_nesting_is_limited_by_max_depth(build):
    meta = meta_of([{"a": 1, "b": 0}, {"a": 0, "b": 0}])
    want = [True, False] if MAX_DEPTH % 2 == 0 or build is nested_or else [False, True]
    assert evaluate(parse(build(MAX_DEPTH)), meta).tolist() == want  # the limit itself is fine
    for depth in (MAX_DEPTH + 1, 10_000, sys.getrecursionlimit() * 3):
        with pytest.raises(InvalidFilterError) as info:
            parse(build(depth))
        assert isinstance(info.value, ParagError) and isinstance(info.value, ValueError)
        assert str(MAX_DEPTH) in str(info.value) and len(str(info.value)) < 300


@pytest.mark.parametrize("op", ["$gt", "$gte", "$lt", "$lte"])
@pytest.mark.parametrize("bound", [10**400, -(10**309)])
def test_range_bounds_beyond_float_range(op, bound):
    with pytest.raises(InvalidFilterError, match=rf"\{op}.*float range") as info:
        parse({"x": {op: bound}})
    assert isinstance(info.value, ValueError)
    # Within range: fine, and exact against the model.
    meta = meta_of([{"x": 1.5e308}, {"x": -1}, {"x": "s"}])
    assert evaluate(parse({"x": {op: 10**308}}), meta).tolist() == [
        matches({"x": v}, {"x": {op: 10**308}}) for v in (1.5e308, -1, "s")]


def test_nan_bound_and_huge_equality_values():
    with pytest.raises(InvalidFilterError, match="NaN"):
        parse({"x": {"$lt": float("nan")}})
    meta = meta_of([{"x": 1}, {}])
    # Equality with an int no metadata can hold (JSON metadata ints are 64-bit) matches nothing.
    assert evaluate(parse({"x": {"$in": [10**400, 1]}}), meta).tolist() == [True, False]
    assert evaluate(parse({"x": {"$ne": 10**400}}), meta).tolist() == [True, True]


def test_deeply_nested_values_are_invalid_filters():
    value: list = []
    for _ in range(5_000):
        value = [value]
    with pytest.raises(InvalidFilterError, match=r"\$eq"):
        parse({"x": value})
    assert np.array_equal(evaluate(parse({"x": [[[1]]]}), meta_of([{"x": [[[1]]]}, {"x": [[1]]}])), [True, False])


# Numbers inside lists and dicts, as a JSON source hands them over: 1 or 1.0, 0 or -0.0.
NESTED_NUMBERS = st.recursive(
    st.sampled_from([0, -0.0, 1, 1.0, 2.5, True, None, "x", 2**53, 2**53 + 1]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["k", "j"]), inner, max_size=2),
    max_leaves=5,
)


def _twin(value):
    """``value`` with each number in the other type (1 <-> 1.0, 0 <-> -0.0): a value it equals."""
    if isinstance(value, list):
        return [_twin(v) for v in value]
    if isinstance(value, dict):
        return {k: _twin(v) for k, v in value.items()}
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= 2**53:
        return -0.0 if value == 0 else float(value)
    return value


@settings(max_examples=100, deadline=None)
@given(values=st.lists(NESTED_NUMBERS, min_size=1, max_size=8), data=st.data(),
       op=st.sampled_from(["$eq", "$ne", "$in", "$nin", "$contains", "$all", "$any"]))
def test_numbers_inside_lists_and_dicts_compare_by_value(values, data, op):
    """README: numbers compare by value (1 == 1.0, True is not 1), containers as whole values,
    list elements the same way: ``[1]`` matches ``[1.0]`` and ``{"x": -0.0}`` matches ``{"x": 0}``."""
    picked = data.draw(st.sampled_from(values) | NESTED_NUMBERS)
    if op in ("$contains", "$all", "$any") and isinstance(picked, list) and picked:
        picked = data.draw(st.sampled_from(picked))  # an element of a stored list
    operand = _twin(picked)
    spec = {"v": {op: [operand] if op in ("$in", "$nin", "$all", "$any") else operand}}
    dicts = [{"v": v} for v in values]
    assert evaluate(parse(spec), meta_of(dicts)).tolist() == [matches(m, spec) for m in dicts]


def test_nested_numbers_through_a_store():
    store = FAISSVectorStore(dimension=2)
    store.add(np.eye(2), [{"v": [1], "d": {"x": 1}}, {"v": [1.0, 2], "d": {"x": -0.0}}])
    store.add(np.eye(2), [{"v": [[1], "a"]}, {"v": [[1.0]], "d": {"x": [True]}}])
    assert store.get(filter={"v": [1.0]}).ids == [0]
    assert store.get(filter={"d": {"x": 1.0}}).ids == [0]
    assert store.get(filter={"d": {"x": 0}}).ids == [1]
    assert store.get(filter={"d": {"x": [1]}}).ids == []  # True is not 1, inside a list too
    assert store.get(filter={"v": {"$ne": [1.0]}}).ids == [1, 2, 3]
    assert store.get(filter={"v": {"$contains": [1]}}).ids == [2, 3]


# ----------------------------------------------------------------------------- review-0100 F2

_CALLS: list[tuple[int, int]] = []  # (recorder, slot) of every call of a Recorder


class Recorder:
    """A callable filter that logs each record (its ``"i"``) it is called on."""

    def __init__(self, test) -> None:
        self.test = test

    def __call__(self, meta: dict) -> bool:
        _CALLS.append((id(self), meta["i"]))
        return self.test(meta)

    def __repr__(self) -> str:
        return f"Recorder({self.test.__name__})"


def has_two_tags(meta: dict) -> bool:
    return len(meta.get("t") or "") > 1


def g_is_one(meta: dict) -> bool:
    return meta.get("g") == 1


PREDICATES = st.builds(Recorder, st.sampled_from([has_two_tags, g_is_one]))
# FILTERS with callables as branches of $and / $or (also under $not, and next to other keys).
FILTERS_WITH_CALLABLES = st.recursive(
    FILTERS | PREDICATES,
    lambda inner: st.one_of(
        st.builds(lambda xs: {"$and": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"$or": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda x: {"$not": x if isinstance(x, dict) else {"$and": [x]}}, inner),
        st.builds(lambda d, xs: {**d, "$or": xs}, FILTERS, st.lists(inner, min_size=1, max_size=2)),
    ),
    max_leaves=6,
)


def _calls(run) -> tuple[object, list]:
    _CALLS.clear()
    result = run()
    return result, sorted(_CALLS)


@settings(max_examples=200, deadline=None)
@given(spec=FILTERS_WITH_CALLABLES, metas=st.lists(METADATA, min_size=1, max_size=20))
def test_and_or_short_circuit_like_python(spec, metas):
    """$and / $or evaluate their parts left to right and stop as Python's and / or (and
    MongoDB's $and) do: every callable is called on exactly the records the plain-Python
    oracle calls it on, and the mask is the oracle's."""
    dicts = [{**(m or {}), "i": i} for i, m in enumerate(metas)]
    mask, calls = _calls(lambda: evaluate(parse(spec), meta_of(dicts)).tolist())
    want, want_calls = _calls(lambda: [matches(m, spec) for m in dicts])
    assert mask == want
    assert calls == want_calls


def test_readme_and_callable_example_skips_records_the_first_branch_excluded():
    """README: ``{"$and": [{"source": "a"}, lambda meta: len(meta["tags"]) > 2]}``, where only
    source "a" records have tags; the callable runs on those only, also after a delete."""
    store = FAISSVectorStore(dimension=4)
    meta = [{"source": "a", "tags": ["x", "y", "z"]}, {"source": "b"}, {"source": "a", "tags": ["x"]}, {"source": "b"}]
    store.add(np.eye(4, dtype="float32"), metadata=meta)
    seen: list[dict] = []
    spec = {"$and": [{"source": "a"}, lambda meta: seen.append(meta) or len(meta["tags"]) > 2]}
    assert store.search(np.zeros(4, "float32"), k=4, filter=spec).ids == [0]
    assert store.get(filter=spec).ids == [0]
    assert all(m["source"] == "a" for m in seen) and len(seen) == 4
    store.delete([2])
    seen.clear()
    assert store.get(filter={"$or": [{"source": "b"}, spec]}).ids == [0, 1, 3]
    assert seen == [meta[0]]  # not the deleted record, nor those the first branch matched
    assert store.delete(filter=spec) == 1 and store.ids() == [1, 3]
