"""Every bad input of issue 2, item 7: the right exception (a ParagError that is also the
matching builtin), a message naming the argument, and the store exactly as it was. Each
catalogue runs on one FAISS kind and the Milvus kinds, one case of each on every kind (the
checks come before any index-kind code: tests/checks.INPUT_CHECK_KINDS). (FAISS constructor
parameters and search overrides: tests/test_store_errors.py.)"""

from __future__ import annotations

import datetime
import math
import re
import warnings

import numpy as np
import pytest

from parag._validation import MAX_SQUARED_NORM
from parag.errors import (
    DimensionMismatchError,
    DuplicateIdError,
    IdNotFoundError,
    InvalidArgumentError,
    InvalidMetadataError,
    InvalidTypeError,
    NotAStoreError,
    StoreNotFoundError,
)
from tests.checks import (
    D,
    INPUT_CHECK_KINDS,
    N,
    QUERIES,
    assert_unchanged,
    check_raises,
    errors_store,
    load_both_ways,
    snapshot,
)
from tests.conftest import clustered


@pytest.fixture(params=["L2", "cosine"])  # cosine: zero vectors, normalised copies
def store(make_store, request):
    return errors_store(make_store(D, request.param), make_store.expect_trained)


# The catalogues of bad input run on one FAISS kind (and the Milvus ones): the checks come
# before any index-kind code (see tests/checks.INPUT_CHECK_KINDS);
# test_every_kind_refuses_bad_input_alike runs one case of each on every kind.
catalogue = pytest.mark.kinds(*INPUT_CHECK_KINDS)


# ----------------------------------------------------------------------------- add: vectors

BAD_VECTORS = {
    "wrong dimension 1-D": (np.ones(D - 1), DimensionMismatchError, ValueError, rf"vectors.*{D}"),
    "wrong dimension 2-D": (np.ones((3, D + 1)), DimensionMismatchError, ValueError, rf"vectors.*{D}"),
    "3-D": (np.ones((2, 2, D)), InvalidArgumentError, ValueError, r"vectors.*2-D"),
    "0-D": (3.0, InvalidArgumentError, ValueError, r"vectors"),
    "empty 2-D": (np.empty((0, D), np.float32), InvalidArgumentError, ValueError, r"vectors.*empty"),
    "empty list": ([], InvalidArgumentError, ValueError, r"vectors"),
    "empty rows": ([[]], InvalidArgumentError, ValueError, r"vectors"),
    "NaN": (np.vstack([np.ones(D), [1] * (D - 1) + [math.nan]]), InvalidArgumentError, ValueError, r"vectors.*NaN"),
    "inf": (np.vstack([[math.inf] + [1] * (D - 1), np.ones(D)]), InvalidArgumentError, ValueError, r"vectors.*inf"),
    "-inf": ([-math.inf] * D, InvalidArgumentError, ValueError, r"vectors.*inf"),
    "float32 overflow": (np.full(D, 1e39), InvalidArgumentError, ValueError, r"vectors.*float32"),
    # Finite, but their distances overflow float32 (FAISS then answers label -1): review-0025 F2.
    "squared length overflows": (np.full(D, 1e19, np.float32), InvalidArgumentError, ValueError,
                                 r"vectors row 0 has a squared length of inf.*over the limit.*scale"),
    "squared length over the limit": (np.vstack([np.ones(D), [1e19] + [0] * (D - 1)]), InvalidArgumentError,
                                      ValueError, r"vectors row 1 has a squared length of 1e\+38.*scale"),
    "a string": ("0.1 0.2", InvalidTypeError, TypeError, r"vectors"),
    "bytes": (b"\x00" * D, InvalidTypeError, TypeError, r"vectors"),
    "strings": (["1"] * D, InvalidTypeError, TypeError, r"vectors"),
    "mixed strings": ([[1.0] * (D - 1) + ["x"]], InvalidTypeError, TypeError, r"vectors"),
    "None": (None, InvalidTypeError, TypeError, r"vectors"),
    "object array": (np.array([object()] * D), InvalidTypeError, TypeError, r"vectors"),
    "complex": (np.ones(D, complex), InvalidTypeError, TypeError, r"vectors"),
    "bools": (np.ones(D, bool), InvalidTypeError, TypeError, r"vectors"),
    "ragged": ([[1.0] * D, [1.0] * (D - 1)], InvalidArgumentError, ValueError, r"vectors"),
}


@catalogue
@pytest.mark.parametrize("case", BAD_VECTORS, ids=list(BAD_VECTORS))
def test_add_bad_vectors(store, case):
    vectors, cls, builtin, name = BAD_VECTORS[case]
    before = snapshot(store)
    check_raises(lambda: store.add(vectors), cls, builtin, name)
    assert_unchanged(store, before)


@catalogue
@pytest.mark.parametrize("case", ["NaN", "3-D", "strings", "wrong dimension 2-D"])
def test_upsert_bad_vectors(store, case):
    vectors, cls, builtin, name = BAD_VECTORS[case]
    before = snapshot(store)
    n = np.atleast_2d(np.asarray(vectors, dtype=object)).shape[0] if case != "3-D" else 2
    check_raises(lambda: store.upsert(list(range(n)), vectors), cls, builtin, name)
    assert_unchanged(store, before)


def test_zero_vector_with_cosine(store):
    before = snapshot(store)
    if store.metric != "cosine":  # fine for L2 / IP: stored as it is
        [new] = store.add(np.zeros(D))
        assert len(store) == before[0] + 1 and store.ids() == [*before[1], new]
        assert store.get([new], include_vectors=True).vectors.tolist() == [[0.0] * D]
        return
    check_raises(lambda: store.add(np.vstack([np.ones(D), np.zeros(D)])), InvalidArgumentError, ValueError,
                 r"vectors row 1")
    check_raises(lambda: store.search(np.zeros(D)), InvalidArgumentError, ValueError, r"query")
    assert_unchanged(store, before)


# ----------------------------------------------------------------------------- add: metadata


class Opaque:
    pass


BAD_METADATA = {
    # (number of vectors, metadata, message must match)
    "too few": (3, [{"a": 1}, {"a": 2}], r"metadata has 2 items.*3 vectors"),
    "too many": (2, [{}, {}, {}], r"metadata has 3 items.*2 vectors"),
    "empty list": (2, [], r"metadata has 0 items"),
    "one dict for two vectors": (2, {"a": 1}, r"metadata.*2"),
    "a string": (2, "ab", r"metadata.*list"),
    "an int": (1, 5, r"metadata.*list"),
    "a set of dicts": (1, {frozenset()}, r"metadata"),
    "list of strings": (2, ["a", "b"], r"metadata\[0\].*dict"),
    "list of lists": (2, [[("a", 1)], [("b", 2)]], r"metadata\[0\].*dict"),
    "second not a dict": (2, [{"a": 1}, 3], r"metadata\[1\].*dict"),
    "set value": (2, [{"a": 1}, {"s": {1, 2}}], r"metadata\[1\]"),
    "nested set": (1, [{"a": {"b": [{1}]}}], r"metadata\[0\]"),
    "datetime value": (1, [{"when": datetime.datetime(2024, 1, 2, 3, 4, 5)}], r"metadata\[0\]"),
    "date value": (2, [{}, {"when": datetime.date(2024, 1, 2)}], r"metadata\[1\]"),
    "tuple value": (1, [{"t": (1, 2)}], r"metadata\[0\]"),
    "nested tuple": (2, [{"ok": [1]}, {"l": [1, (2, 3)]}], r"metadata\[1\]"),
    "NaN value": (1, [{"x": math.nan}], r"metadata\[0\]"),
    "inf value": (2, [{"x": 1.0}, {"x": -math.inf}], r"metadata\[1\]"),
    "int key": (1, [{1: "a"}], r"metadata\[0\]"),
    "tuple key": (1, [{(1, 2): "a"}], r"metadata\[0\]"),
    "nested int key": (1, [{"a": {2: "b"}}], r"metadata\[0\]"),
    "bytes value": (1, [{"b": b"raw"}], r"metadata\[0\]"),
    "object value": (1, [{"o": Opaque()}], r"metadata\[0\]"),
    "huge int": (1, [{"n": 2**70}], r"metadata\[0\]"),
}


@catalogue
@pytest.mark.parametrize("case", BAD_METADATA, ids=list(BAD_METADATA))
def test_add_bad_metadata(store, case):
    n, metadata, name = BAD_METADATA[case]
    before = snapshot(store)
    vectors = np.ones((n, D), np.float32) if n > 1 else np.ones(D, np.float32)
    check_raises(lambda: store.add(vectors, metadata), InvalidMetadataError, ValueError, name)
    check_raises(lambda: store.add(np.ones((n, D)), metadata), InvalidMetadataError, ValueError, r"metadata")
    assert_unchanged(store, before)


@catalogue
@pytest.mark.parametrize("case", ["set value", "tuple value", "int key", "second not a dict", "too many"])
def test_update_metadata_and_upsert_bad_metadata(store, case):
    n, metadata, name = BAD_METADATA[case]
    before = snapshot(store)
    ids = list(range(n))
    check_raises(lambda: store.update_metadata(ids, metadata), InvalidMetadataError, ValueError, name)
    check_raises(lambda: store.upsert(ids, np.ones((n, D)), metadata), InvalidMetadataError, ValueError, name)
    assert_unchanged(store, before)


# ----------------------------------------------------------------------------- add: ids

BAD_IDS = {
    "duplicate in call": ([N + 1, N + 1], DuplicateIdError, ValueError, r"ids"),
    "already stored": ([5, N + 1], DuplicateIdError, ValueError, r"ids.*\b5\b"),
    "negative": ([-1, N + 1], InvalidArgumentError, ValueError, r"ids.*negative"),
    "count mismatch": ([N + 1], InvalidArgumentError, ValueError, r"ids has 1"),
    "strings": (["a", "b"], InvalidTypeError, TypeError, r"ids"),
    "floats": ([1.5, 2.5], InvalidTypeError, TypeError, r"ids"),
    "beyond uint64": ([2**64, N + 1], InvalidArgumentError, ValueError, r"ids must fit in int64, got 18446744073709551616"),
    "beyond int64": ([2**63, N + 1], InvalidArgumentError, ValueError, r"ids must fit in int64"),
}


@catalogue
@pytest.mark.parametrize("case", BAD_IDS, ids=list(BAD_IDS))
def test_add_bad_ids(store, case):
    ids, cls, builtin, name = BAD_IDS[case]
    before = snapshot(store)
    check_raises(lambda: store.add(np.ones((2, D)), [{}, {}], ids=ids), cls, builtin, name)
    assert_unchanged(store, before)


# ----------------------------------------------------------------------------- search

BAD_QUERIES = {
    name: (vectors, cls, builtin, pattern.replace("vectors", "query"))
    for name, (vectors, cls, builtin, pattern) in BAD_VECTORS.items()
}


@catalogue
@pytest.mark.parametrize("case", BAD_QUERIES, ids=list(BAD_QUERIES))
def test_search_bad_query(store, case):
    query, cls, builtin, name = BAD_QUERIES[case]
    before = snapshot(store)
    check_raises(lambda: store.search(query, k=3), cls, builtin, name)
    assert_unchanged(store, before)


BAD_K = {
    "0": (0, InvalidArgumentError, ValueError),
    "-1": (-1, InvalidArgumentError, ValueError),
    "np -3": (np.int64(-3), InvalidArgumentError, ValueError),
    "float": (2.5, InvalidTypeError, TypeError),
    "integral float": (3.0, InvalidTypeError, TypeError),
    "string": ("3", InvalidTypeError, TypeError),
    "None": (None, InvalidTypeError, TypeError),
    "True": (True, InvalidTypeError, TypeError),
    "False": (False, InvalidTypeError, TypeError),
    "list": ([3], InvalidTypeError, TypeError),
}


@catalogue
@pytest.mark.parametrize("case", BAD_K, ids=list(BAD_K))
def test_search_bad_k(store, case):
    k, cls, builtin = BAD_K[case]
    before = snapshot(store)
    check_raises(lambda: store.search(QUERIES[0], k=k), cls, builtin, r"\bk\b")
    check_raises(lambda: store.search(QUERIES, k=k), cls, builtin, r"\bk\b")
    assert_unchanged(store, before)


def test_every_kind_refuses_bad_input_alike(store):
    """One case of each catalogue above on every kind: the same error, the store unchanged."""
    before = snapshot(store)
    for case in ("NaN", "wrong dimension 2-D", "strings"):
        vectors, cls, builtin, name = BAD_VECTORS[case]
        check_raises(lambda: store.add(vectors), cls, builtin, name)
        check_raises(lambda: store.upsert([0, 1], vectors), cls, builtin, name)
    for case in ("set value", "too many"):
        n, metadata, name = BAD_METADATA[case]
        check_raises(lambda: store.add(np.ones((n, D)), metadata), InvalidMetadataError, ValueError, name)
        check_raises(lambda: store.update_metadata(list(range(n)), metadata), InvalidMetadataError, ValueError, name)
    for case in ("already stored", "negative"):
        ids, cls, builtin, name = BAD_IDS[case]
        check_raises(lambda: store.add(np.ones((2, D)), [{}, {}], ids=ids), cls, builtin, name)
    query, cls, builtin, name = BAD_QUERIES["inf"]
    check_raises(lambda: store.search(query, k=3), cls, builtin, name)
    for case in ("0", "float"):
        k, cls, builtin = BAD_K[case]
        check_raises(lambda: store.search(QUERIES, k=k), cls, builtin, r"\bk\b")
    assert_unchanged(store, before)


def test_search_numpy_int_k_is_fine(store):
    assert len(store.search(QUERIES[0], k=np.int32(4)).ids) == 4


# ----------------------------------------------------------------------------- lifecycle calls


def test_unknown_ids(store):
    before = snapshot(store)
    check_raises(lambda: store.delete([10, 3]), IdNotFoundError, KeyError, r"\b3\b")  # 3 was deleted
    check_raises(lambda: store.delete([N + 50]), IdNotFoundError, KeyError, rf"{N + 50}")
    check_raises(lambda: store.get([0, N + 50]), IdNotFoundError, KeyError, rf"{N + 50}")
    check_raises(lambda: store.update_metadata([0, N + 50], [{}, {}]), IdNotFoundError, KeyError, rf"{N + 50}")
    check_raises(lambda: store.delete(["x"]), InvalidTypeError, TypeError, r"ids")
    check_raises(lambda: store.delete([[1, 2]]), InvalidArgumentError, ValueError, r"ids")
    assert_unchanged(store, before)


# ----------------------------------------------------------------------------- load / save


@pytest.mark.needs("persistent")
def test_load_missing_directory(store, tmp_path):
    before = snapshot(store)
    missing = tmp_path / "does" / "not" / "exist"
    load_both_ways(store, missing, StoreNotFoundError, FileNotFoundError, re.escape(str(missing)))
    assert not missing.exists()
    assert_unchanged(store, before)


@pytest.mark.needs("persistent")
def test_load_non_store_directory(store, tmp_path):
    before = snapshot(store)
    empty = tmp_path / "empty"
    empty.mkdir()
    load_both_ways(store, empty, NotAStoreError, ValueError, re.escape(str(empty)))
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("hello")
    (other / "index.faiss").write_bytes(b"\x00" * 64)
    load_both_ways(store, other, NotAStoreError, ValueError, re.escape(str(other)))
    a_file = tmp_path / "file.bin"
    a_file.write_bytes(b"data")
    load_both_ways(store, a_file, NotAStoreError, ValueError, re.escape(str(a_file)))
    foreign_manifest = tmp_path / "foreign"
    foreign_manifest.mkdir()
    (foreign_manifest / "manifest.json").write_text('{"format": "something-else", "files": {}}')
    load_both_ways(store, foreign_manifest, NotAStoreError, ValueError, r"manifest")
    assert sorted(p.name for p in other.iterdir()) == ["index.faiss", "notes.txt"]
    assert_unchanged(store, before)


@pytest.mark.needs("persistent")
def test_save_into_foreign_directory(store, tmp_path):
    before = snapshot(store)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    check_raises(lambda: store.save(foreign), NotAStoreError, ValueError, re.escape(str(foreign)))
    assert [p.name for p in foreign.iterdir()] == ["thesis.tex"]
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    check_raises(lambda: store.save(a_file), NotAStoreError, ValueError, re.escape(str(a_file)))
    assert a_file.read_text() == "x"
    assert_unchanged(store, before)


@pytest.mark.parametrize("metric", ["L2", "IP"])
def test_vectors_up_to_the_squared_length_limit_are_searched_exactly(make_store, metric):
    """Review-0025 F2: vectors whose distances overflow float32 made FAISS answer label -1,
    read as the last slot (the id '', a deleted vector, one id k times). Up to
    MAX_SQUARED_NORM every distance is finite: the results are the oracle's; beyond it, every
    entry refuses the vector or query and the store is unchanged."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, D))
    x *= np.sqrt(MAX_SQUARED_NORM) * 0.999 / np.linalg.norm(x, axis=1, keepdims=True)  # every row at the limit
    x = x.astype(np.float32)
    s = make_store(D, metric)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy overflow warning either
        ids = s.add(x, [{"i": i} for i in range(len(x))])
    s.delete(ids[-1:])  # the last slot: what a label -1 used as an index reads
    live, live_ids = x[:-1].astype(np.float64), np.asarray(ids[:-1])
    for query, where in [(x[0], None), (-x[1], None), (x[:3], None), (x[2], {"i": {"$lt": 6}}), (x[2], {"i": {"$gte": 6}})]:
        result = s.search(query, k=5, filter=where)
        batch = (result.distances, result.ids) if query.ndim == 2 else ([result.distances], [result.ids])
        for q, got, got_ids in zip(np.atleast_2d(query).astype(np.float64), *batch):
            allowed = np.arange(len(live)) if where is None else np.flatnonzero(
                (np.arange(len(live)) < 6) == ("$lt" in where["i"]))
            scores = ((live[allowed] - q) ** 2).sum(1) if metric == "L2" else live[allowed] @ q
            order = allowed[np.argsort(scores if metric == "L2" else -scores, kind="stable")][:5]
            assert len(set(got_ids)) == 5 and set(got_ids) <= set(live_ids[allowed].tolist())
            truth = {int(i): v for i, v in zip(live_ids[allowed], scores)}
            np.testing.assert_allclose(np.asarray(got, float), [truth[i] for i in got_ids], rtol=1e-4,
                                       atol=1e-5 * MAX_SQUARED_NORM)
            if make_store.exact:
                assert got_ids == live_ids[order].tolist()
    before = snapshot(s)
    over = (x[:2].astype(np.float64) * 1.01).astype(np.float32)  # a squared length of ~1.02x the limit
    for call in (lambda: s.add(over), lambda: s.upsert(ids[:2], over), lambda: s.search(over[1]),
                 lambda: s.search(over), lambda: s.search(over[1], filter={"i": 3}),
                 lambda: s.search(np.array([1e20] * 2 + [0] * (D - 2), np.float32))):  # the review's query
        check_raises(call, InvalidArgumentError, ValueError, r"(vectors|query|queries) row [01] has a squared length")
    assert snapshot(s) == before


@pytest.mark.needs("persistent")
@pytest.mark.parametrize("path", [123, None, ["dir"]])
def test_save_and_load_reject_a_path_that_is_not_a_path(make_store, path):
    store = make_store(4)
    store.add(np.ones((2, 4)))
    for call in (lambda: store.save(path), lambda: make_store.load(path), lambda: store.load(path)):
        with pytest.raises(InvalidTypeError, match="path must be a str or os.PathLike"):
            call()
    assert store.ids() == [0, 1]
