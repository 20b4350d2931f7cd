"""Issue 9, records: string ids, documents, get and delete by filter, the completed filter
language, ``include=``, results as records, and saving both id kinds, on every kind of
store; each against the independent model in ``tests/lifecycle_model.py``; every bad input
of the issue a clear ParagError naming the argument, with the store unchanged."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from parag.errors import (
    DuplicateIdError,
    IdNotFoundError,
    InvalidArgumentError,
    InvalidFilterError,
    InvalidTypeError,
    ParagError,
)
from parag.filters import compile_filter
from parag.metadata import MetadataStore, encode_metadata
from parag.vectorstore import GetResult, SearchResult
from tests.checks import INPUT_CHECK_KINDS, shared
from tests.lifecycle_model import Model, check_search, matches, snapshot

D = 8
N = 120
BIG = 2**53


def data(n: int = N, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)


def meta(i: int) -> dict[str, Any]:
    m: dict[str, Any] = {"n": i, "src": f"file-{i % 4}.md", "big": BIG + i % 3 - 1}
    if i % 3:
        m["tags"] = [["faiss", "rag"], ["rag"], ["faiss", 1], ["x", {"k": 1}]][i % 4]
    return m


def document(i: int) -> str | None:
    return None if i % 5 == 0 else f"Chunk {i}: FAISS {'indexes' if i % 2 else 'searches'} vectors."


def filled(make_store: Any, kind: str, metric: str = "L2") -> tuple[Any, Model]:
    """A store of N vectors with ``kind`` ids (``"int"`` or ``"str"``), some deleted."""
    store, model = make_store(D, metric), Model(metric)
    ids = list(range(N)) if kind == "int" else [f"doc-{i}" for i in range(N)]
    x, metas, docs = data(), [meta(i) for i in range(N)], [document(i) for i in range(N)]
    assert store.add(x, metas, ids=ids, documents=docs) == ids
    model.add(ids, x, metas, docs)
    gone = ids[::9]
    store.delete(gone)
    model.delete(gone)
    return store, model


KINDS = ["int", "str"]


# ----------------------------------------------------------------------------- ids


@pytest.mark.parametrize("kind", KINDS)
def test_ids_of_either_kind_work_everywhere(make_store, kind):
    store, model = filled(make_store, kind)
    assert store.ids() == model.ids() and len(store) == len(model.ids())
    key = (lambda i: i) if kind == "int" else (lambda i: f"doc-{i}")
    assert key(1) in store and key(0) not in store and key(10**6) not in store
    assert (1 if kind == "str" else "doc-1") not in store  # the other kind is never stored
    got = store.get([key(5), key(1), key(5)])
    assert got.ids == [key(5), key(1), key(5)]
    assert got.metadata == [model.meta[key(i)] for i in (5, 1, 5)]
    assert got.documents == [model.documents[key(i)] for i in (5, 1, 5)]
    store.update_metadata([key(2)], [{"edited": True}])
    model.update_metadata([key(2)], [{"edited": True}])
    x = data(2, seed=1)
    assert store.upsert([key(3), key(500)], x, [{"u": 1}, {"u": 2}], documents=["new 3", None]) == [key(3), key(500)]
    model.upsert([key(3), key(500)], x, [{"u": 1}, {"u": 2}], ["new 3", None])
    assert store.ids() == model.ids()
    q = data(5, seed=2)
    check_search(store, model, q, 7, exact=make_store.exact)
    check_search(store, model, q, 7, {"$document": {"$contains": "new"}}, exact=make_store.exact)
    assert store.delete([key(3), key(10**6)], missing_ok=True) == 1


def test_a_string_store_generates_uuid_hex_ids(make_store):
    store = make_store(D)
    assert store.add(data(1), ids=["first"]) == ["first"]
    new = store.add(data(3, seed=1))
    assert len(set(new)) == 3 and all(len(i) == 32 and int(i, 16) >= 0 for i in new)
    assert store.ids() == ["first", *new]


def test_the_first_ids_fix_the_kind(make_store):
    store = make_store(D)
    assert store.add(data(2), ids=["a", "b"]) == ["a", "b"]  # an empty store takes strings
    with pytest.raises(InvalidTypeError, match="ids must be strs"):
        store.add(data(1), ids=[7])
    store.delete(["a", "b"])
    with pytest.raises(InvalidTypeError, match="ids must be strs"):
        store.upsert([7], data(1))  # still a string store, though empty
    ints = make_store(D)
    assert ints.add(data(1)) == [0]  # generated ids: an int store
    ints.delete([0])
    with pytest.raises(InvalidTypeError, match="ids must be ints"):
        ints.add(data(1), ids=["a"])


# ----------------------------------------------------------------------------- results


def test_search_unpacks_to_three_and_carries_documents(make_store):
    store, model = shared(make_store, filled, "str")
    result = store.search(data(1, seed=3)[0], k=4)
    assert isinstance(result, SearchResult) and len(result) == 3
    dist, ids, metadata = result
    assert result.documents == [model.documents[i] for i in ids]
    assert metadata == [model.meta[i] for i in ids]
    assert result.records() == [
        {"id": i, "score": d, "document": model.documents[i], "metadata": model.meta[i]}
        for i, d in zip(ids, dist)
    ]
    batch = store.search(data(2, seed=4), k=3)
    assert batch.documents == [[model.documents[i] for i in row] for row in batch.ids]
    assert [[r["id"] for r in rows] for rows in batch.records()] == batch.ids


@pytest.mark.parametrize(
    "include, has_meta, has_docs",
    [((), False, False), (["metadata"], True, False), (("documents",), False, True), (["metadata", "documents"], True, True)],
)
def test_include_chooses_what_comes_back(make_store, include, has_meta, has_docs):
    store, model = shared(make_store, filled, "int")
    q = data(2, seed=5)
    full = store.search(q, k=5)
    result = store.search(q, k=5, include=include)
    assert (result.distances, result.ids) == (full.distances, full.ids)
    assert result.metadata == (full.metadata if has_meta else None)
    assert result.documents == (full.documents if has_docs else None)
    got = store.get([1, 2], include=include)
    assert got.metadata == ([model.meta[1], model.meta[2]] if has_meta else None)
    assert got.documents == ([model.documents[1], model.documents[2]] if has_docs else None)
    rows = store.search(q[0], k=2, include=include).records()
    assert all((r["metadata"] is not None) == has_meta for r in rows)


def test_get_result_unpacks_to_three_and_gives_records(make_store):
    store, model = shared(make_store, filled, "str")
    got = store.get(["doc-1", "doc-2"], include_vectors=True)
    assert isinstance(got, GetResult) and len(got) == 3
    ids, metadata, vectors = got
    assert vectors.shape == (2, D)
    rows = got.records()
    assert [r["id"] for r in rows] == ids and rows[0]["document"] == model.documents["doc-1"]
    np.testing.assert_array_equal(rows[1]["vector"], vectors[1])


def test_results_keep_documents_through_the_named_tuple_api():
    """``_replace`` and ``_make`` (the named tuple's own API) keep ``documents`` usable, and
    two results with other documents are not equal (a plain tuple compares by its parts)."""
    hits = SearchResult([0.5], ["a"], [{"p": 1}], ["text"])
    replaced = hits._replace(metadata=None)
    assert replaced == SearchResult([0.5], ["a"], None, ["text"]) and replaced.documents == ["text"]
    assert hits._replace(documents=["other"]).records()[0]["document"] == "other"
    made = SearchResult._make([[0.5], ["a"], [{"p": 1}]])
    assert made.documents is None and made.records()[0]["document"] is None and "documents=None" in repr(made)
    assert hits != SearchResult([0.5], ["a"], [{"p": 1}], ["changed"])
    assert hits == ([0.5], ["a"], [{"p": 1}]) and ([0.5], ["a"], [{"p": 1}]) == hits
    rows = GetResult(["a"], [{"p": 1}], None, ["text"])
    assert rows._replace(ids=["b"]).records() == [{"id": "b", "document": "text", "metadata": {"p": 1}}]
    assert GetResult._make([["a"], None, None]).records() == [{"id": "a", "document": None, "metadata": None}]


# ----------------------------------------------------------------------------- get / delete by filter

FILTERS = [
    {"src": "file-1.md"},
    {"tags": {"$contains": "faiss"}},
    {"tags": {"$contains": 1}},
    {"tags": {"$all": ["faiss", "rag"]}},
    {"tags": {"$any": ["x", "rag"]}},
    {"tags": {"$contains": {"k": 1}}},
    {"tags": {"$not": {"$contains": "rag"}}},
    {"src": {"$contains": "file"}},  # not a list: never matches
    {"$document": {"$contains": "indexes"}},
    {"$document": {"$not_contains": "indexes"}},  # also the vectors without a document
    {"$document": {"$contains": "FAISS", "$not_contains": "Chunk 1"}},
    {"$or": [{"$document": {"$contains": "searches"}}, {"n": {"$lt": 10}}]},
    {"$and": [{"src": "file-2.md"}, lambda m: m["n"] % 3 == 0]},
    {"$or": [lambda m: m["n"] > 100, {"tags": {"$contains": "x"}}]},
    {"big": {"$gt": BIG}},
    {"big": {"$gte": BIG}},
    {"big": {"$lt": BIG}},
    {"big": {"$lte": float(BIG)}},
    {"big": BIG + 1},
    {"big": {"$in": [BIG - 1, BIG + 1]}},
]


def spec_id(spec: Any) -> str:
    """A filter's repr without its lambdas' addresses: every pytest-xdist worker must
    collect the same test ids."""
    return re.sub(" at 0x[0-9a-f]+>", ">", repr(spec))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("spec", FILTERS, ids=spec_id)
def test_get_and_search_by_filter_match_the_model(make_store, kind, spec):
    store, model = shared(make_store, filled, kind)
    if not make_store.callable_filters and "lambda" in repr(spec):
        with pytest.raises(InvalidFilterError, match="callable"):
            store.get(filter=spec)
        return
    want = model.where(spec)
    got = store.get(filter=spec)
    assert got.ids == want
    assert got.metadata == [model.meta[i] for i in want]
    assert got.documents == [model.documents[i] for i in want]
    assert store.get(filter=spec, limit=3, offset=2).ids == model.where(spec, 3, 2)
    check_search(store, model, data(3, seed=6), 10, spec, exact=make_store.exact)


def test_exact_integers_in_ranges(make_store):
    """float64 holds 2**53 and 2**53 + 1 as one number: parag's filters do not."""
    store = make_store(2)
    store.add(np.eye(2), [{"x": BIG + 1}, {"x": float(BIG)}])
    assert store.get(filter={"x": {"$gt": BIG}}).ids == [0]
    assert store.get(filter={"x": {"$lte": BIG}}).ids == [1]
    assert store.get(filter={"x": BIG}).ids == [1]
    assert store.get(filter={"x": {"$gt": 2**80}}).ids == []
    assert store.get(filter={"x": {"$gte": BIG + 1}}).ids == [0]
    assert store.get(filter={"x": {"$lt": 2**64}}).ids == [0, 1]


@pytest.mark.parametrize("kind", KINDS)
def test_get_pages_and_ids_with_filter(make_store, kind):
    store, model = shared(make_store, filled, kind)
    assert store.get().ids == model.ids()
    pages = [store.get(limit=25, offset=o).ids for o in range(0, N, 25)]
    assert sum(pages, []) == model.ids()
    assert store.get(limit=0).ids == [] and store.get(offset=N).ids == []
    ids = model.ids()[:20]
    spec = {"src": "file-1.md"}
    assert store.get(ids, filter=spec).ids == [i for i in ids if model.meta[i]["src"] == "file-1.md"]
    assert store.get(filter={"src": "nowhere"}, include_vectors=True).vectors.shape == (0, D)


@pytest.mark.needs("persistent")
@pytest.mark.parametrize("kind", KINDS)
def test_delete_by_filter_matches_the_model(make_store, kind, tmp_path):
    store, model = filled(make_store, kind, "cosine")
    for spec in ({"src": "file-3.md"}, {"$document": {"$contains": "searches"}}, {"tags": {"$any": ["faiss"]}}):
        doomed = model.where(spec)
        assert store.delete(filter=spec) == len(doomed) > 0
        model.delete(doomed)
        assert store.ids() == model.ids()
        assert store.get(filter=spec).ids == []
        check_search(store, model, data(3, seed=7), 10, exact=make_store.exact, min_recall=0.9)
    assert store.delete(filter={"src": "file-3.md"}) == 0
    store.save(tmp_path / "s")
    assert make_store.load(tmp_path / "s").get().records() == store.get().records()


def test_filter_columns_are_built_only_for_the_keys_filters_name():
    meta = MetadataStore()
    meta.append(encode_metadata([{"a": 1, "text": "long " * 100}, {"a": 2}], 2))
    assert compile_filter({"a": {"$gt": 1}})(meta).tolist() == [False, True]
    assert meta.columns([]).get("a") is not None
    assert meta.columns([]).get("text") is None  # never named: never built
    meta.append(encode_metadata([{"a": 3, "text": "more"}], 1))  # built columns follow writes
    assert compile_filter({"a": 3})(meta).tolist() == [False, False, True]
    assert meta.columns([]).get("text") is None


def test_model_matches_callable_branches():
    """The model's own semantics for callables in $and / $or (what the store is held to)."""
    m = {"n": 1}
    assert matches(m, {"$or": [{"n": 2}, lambda d: d["n"] == 1]})
    assert not matches(m, {"$and": [{"n": 1}, lambda d: False]})


# ----------------------------------------------------------------------------- save / load


@pytest.mark.needs("persistent")
@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_with_documents(make_store, kind, tmp_path):
    store, model = filled(make_store, kind, "IP")
    store.save(tmp_path / "s")
    loaded = make_store.load(tmp_path / "s")
    q = data(4, seed=8)
    assert snapshot(loaded, q, {"$document": {"$contains": "indexes"}}) == snapshot(
        store, q, {"$document": {"$contains": "indexes"}}
    )
    more = loaded.add(data(1, seed=9), documents=["after load"])
    if kind == "int":
        assert more == [N]  # generated ids continue above every id ever held
    else:
        assert len(more[0]) == 32
    assert loaded.get(more).documents == ["after load"]


# ----------------------------------------------------------------------------- bad input


BAD_CALLS = [
    # (store kind, call, error type, words the message must hold)
    ("str", lambda s: s.add(data(2), ids=["a", 1]), InvalidTypeError, ["ids", "mix ints and strings"]),
    ("int", lambda s: s.get([1, "doc-1"]), InvalidTypeError, ["ids", "mix"]),
    ("str", lambda s: s.add(data(1), ids=[5000]), InvalidTypeError, ["ids must be strs", "int"]),
    ("int", lambda s: s.upsert(["x"], data(1)), InvalidTypeError, ["ids must be ints", "str"]),
    ("int", lambda s: s.delete(["x"]), InvalidTypeError, ["ids must be ints"]),
    ("str", lambda s: s.get([1]), InvalidTypeError, ["ids must be strs"]),
    ("str", lambda s: s.update_metadata([1], [{}]), InvalidTypeError, ["ids must be strs"]),
    ("str", lambda s: s.add(data(2), ids=["p", "q"], documents=["ok", 3]), InvalidTypeError, ["documents[1]", "str"]),
    ("int", lambda s: s.add(data(2), documents=[b"bytes", None]), InvalidTypeError, ["documents[0]"]),
    ("str", lambda s: s.add(data(2), ids=["p", "q"], documents=["one"]), InvalidArgumentError, ["documents has 1", "2 vectors"]),
    ("str", lambda s: s.upsert(["p"], data(1), documents="x" * 3 + "\ud800"), InvalidArgumentError, ["documents[0]", "surrogate"]),
    ("str", lambda s: s.add(data(1), ids=[""]), InvalidArgumentError, ["ids[0]", "empty"]),
    ("str", lambda s: s.add(data(1), ids=["x" * 513]), InvalidArgumentError, ["ids[0]", "at most 512"]),
    ("str", lambda s: s.add(data(2), ids=["p", "p"]), DuplicateIdError, ["ids", "duplicates"]),
    ("str", lambda s: s.add(data(1), ids=["doc-1"]), DuplicateIdError, ["doc-1"]),
    ("int", lambda s: s.delete(), InvalidArgumentError, ["ids", "filter", "neither"]),
    ("str", lambda s: s.delete(["doc-1"], filter={"n": 1}), InvalidArgumentError, ["ids", "filter", "both"]),
    ("str", lambda s: s.delete(["doc-1", "nope"]), IdNotFoundError, ["nope"]),
    ("int", lambda s: s.get(filter={"n": 1}, limit=-1), InvalidArgumentError, ["limit", "-1"]),
    ("int", lambda s: s.get(limit=2.5), InvalidTypeError, ["limit"]),
    ("int", lambda s: s.get(offset=-3), InvalidArgumentError, ["offset"]),
    ("int", lambda s: s.get(include=["vectors"]), InvalidArgumentError, ["include", "'vectors'"]),
    ("int", lambda s: s.search(data(1)[0], include="metadata"), InvalidTypeError, ["include"]),
    ("int", lambda s: s.delete(filter={"tags": {"$all": []}}), InvalidFilterError, ["$all", "non-empty"]),
    ("int", lambda s: s.delete(filter={"tags": {"$any": "faiss"}}), InvalidFilterError, ["$any", "list"]),
    ("int", lambda s: s.get(filter={"$document": {"$contains": 3}}), InvalidFilterError, ["$document", "string"]),
    ("int", lambda s: s.delete(filter={"$document": {"$regex": "x"}}), InvalidFilterError, ["$regex", "$not_contains"]),
    ("str", lambda s: s.delete(filter={"$or": [{"n": 1}, lambda m: m["missing"]]}), InvalidFilterError, ["raised"]),
]


# One FAISS kind (and the Milvus ones): the arguments are checked before any index-kind code
# (tests/checks.INPUT_CHECK_KINDS); the other tests here run every kind.
@pytest.mark.kinds(*INPUT_CHECK_KINDS)
@pytest.mark.parametrize("kind, call, error, words", BAD_CALLS, ids=lambda v: v if isinstance(v, str) else None)
def test_bad_input_is_named_and_changes_nothing(make_store, kind, call, error, words):
    store, _ = shared(make_store, filled, kind)
    q = data(3, seed=10)
    before = snapshot(store, q, {"src": "file-1.md"})
    if not make_store.callable_filters and words == ["raised"]:  # a callable: refused as such
        words = ["callable"]
    with pytest.raises(error) as info:
        call(store)
    assert isinstance(info.value, ParagError)
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    assert snapshot(store, q, {"src": "file-1.md"}) == before
