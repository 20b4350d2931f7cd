"""Every bad input of issue 2, item 7: the right exception (a ParagError that is also the
matching builtin), a message naming the argument, and the store exactly as it was."""

from __future__ import annotations

import datetime
import math
import re
import warnings

import numpy as np
import pytest

from parag import errors
from parag.errors import (
    CorruptStoreError,
    DimensionMismatchError,
    DuplicateIdError,
    IdNotFoundError,
    InvalidArgumentError,
    InvalidMetadataError,
    InvalidTypeError,
    NotAStoreError,
    ParagError,
    StoreNotFoundError,
)
from parag.vectorstore import FAISSVectorStore
from tests.conftest import clustered

D = 8
N = 200
QUERIES = clustered(6, D, seed=99)

# (index_type, metric, params): untrained IVF (default nlist 256) and trained IVF (nlist 4
# trains at 156 vectors) behave differently inside.
CONFIGS = [
    ("Flat", "L2", {}),
    ("IVFFlat", "IP", {}),
    ("IVFFlat", "cosine", {"nlist": 4, "nprobe": 2}),
    ("HNSW", "cosine", {}),
    ("HNSW", "L2", {"M": 8}),
]


@pytest.fixture(params=CONFIGS, ids=lambda c: f"{c[0]}-{c[1]}")
def store(request):
    index_type, metric, params = request.param
    s = FAISSVectorStore(D, index_type, metric, **params)
    x = clustered(N, D, seed=1)
    assert s.add(x, [{"i": i, "tags": ["a", str(i)]} for i in range(N)]) == list(range(N))
    s.delete([3, N - 1])  # tombstones (and the highest id gone: next id is still N)
    assert s.is_trained == (params.get("nlist") == 4 or index_type != "IVFFlat")
    return s


def snapshot(s: FAISSVectorStore):
    ids = s.ids()
    return (
        len(s), ids, s.search(QUERIES, k=7), s.search(QUERIES[0], k=N + 5),
        s.get(ids).metadata, s.params, s.is_trained, repr(s),
    )


def assert_unchanged(s: FAISSVectorStore, before) -> None:
    assert snapshot(s) == before
    # No id was consumed by the failed call.
    assert s.add(np.full(D, 0.5), {"new": True}) == [N]


def check_raises(call, cls, builtin, name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the error itself, not a numpy warning on the way
        with pytest.raises(cls) as info:
            call()
    e = info.value
    assert isinstance(e, ParagError) and isinstance(e, builtin), type(e).__mro__
    assert re.search(name, str(e)), f"message {str(e)!r} does not name {name!r}"
    return e


def test_error_hierarchy():
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, ParagError)
        if cls is not ParagError:
            assert any(b in cls.__mro__ for b in (ValueError, TypeError, KeyError, FileNotFoundError, OSError, RuntimeError,
                                                   PermissionError, ImportError)), name
    assert issubclass(InvalidTypeError, TypeError) and issubclass(InvalidTypeError, ValueError)
    assert issubclass(DimensionMismatchError, ValueError)
    assert issubclass(InvalidMetadataError, ValueError)
    assert issubclass(IdNotFoundError, KeyError)
    assert issubclass(StoreNotFoundError, FileNotFoundError)
    assert issubclass(NotAStoreError, ValueError) and issubclass(CorruptStoreError, ValueError)


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


@pytest.mark.parametrize("case", BAD_VECTORS, ids=list(BAD_VECTORS))
def test_add_bad_vectors(store, case):
    vectors, cls, builtin, name = BAD_VECTORS[case]
    before = snapshot(store)
    check_raises(lambda: store.add(vectors), cls, builtin, name)
    assert_unchanged(store, before)


@pytest.mark.parametrize("case", ["NaN", "3-D", "strings", "wrong dimension 2-D"])
def test_upsert_bad_vectors(store, case):
    vectors, cls, builtin, name = BAD_VECTORS[case]
    before = snapshot(store)
    n = np.atleast_2d(np.asarray(vectors, dtype=object)).shape[0] if case != "3-D" else 2
    check_raises(lambda: store.upsert(list(range(n)), vectors), cls, builtin, name)
    assert_unchanged(store, before)


def test_zero_vector_with_cosine(store):
    before = snapshot(store)
    if store.metric != "cosine":
        store.add(np.zeros(D))  # fine for L2 / IP
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


@pytest.mark.parametrize("case", BAD_METADATA, ids=list(BAD_METADATA))
def test_add_bad_metadata(store, case):
    n, metadata, name = BAD_METADATA[case]
    before = snapshot(store)
    vectors = np.ones((n, D), np.float32) if n > 1 else np.ones(D, np.float32)
    check_raises(lambda: store.add(vectors, metadata), InvalidMetadataError, ValueError, name)
    check_raises(lambda: store.add(np.ones((n, D)), metadata), InvalidMetadataError, ValueError, r"metadata")
    assert_unchanged(store, before)


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
}


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


@pytest.mark.parametrize("case", BAD_K, ids=list(BAD_K))
def test_search_bad_k(store, case):
    k, cls, builtin = BAD_K[case]
    before = snapshot(store)
    check_raises(lambda: store.search(QUERIES[0], k=k), cls, builtin, r"\bk\b")
    check_raises(lambda: store.search(QUERIES, k=k), cls, builtin, r"\bk\b")
    assert_unchanged(store, before)


def test_search_numpy_int_k_is_fine(store):
    assert len(store.search(QUERIES[0], k=np.int32(4)).ids) == 4


def test_search_overrides_for_the_wrong_index_or_out_of_range(store):
    before = snapshot(store)
    takes = {"Flat": set(), "IVFFlat": {"nprobe"}, "HNSW": {"ef_search"}}[store.index_type]
    for name in ("nprobe", "ef_search"):
        if name not in takes:  # e.g. ef_search passed to a Flat store
            e = check_raises(lambda: store.search(QUERIES[0], k=3, **{name: 16}), InvalidArgumentError,
                             ValueError, name)
            assert store.index_type in str(e)
            continue
        for bad, cls, builtin in [(0, InvalidArgumentError, ValueError), (-4, InvalidArgumentError, ValueError),
                                  (2.5, InvalidTypeError, TypeError), ("8", InvalidTypeError, TypeError),
                                  (True, InvalidTypeError, TypeError), (1 << 40, InvalidArgumentError, ValueError)]:
            check_raises(lambda: store.search(QUERIES, k=3, **{name: bad}), cls, builtin, name)
    with pytest.raises(TypeError):
        store.search(QUERIES[0], k=3, efSearch=16)  # FAISS's spelling is not a keyword
    assert_unchanged(store, before)


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


# ----------------------------------------------------------------------------- constructor

BAD_CONSTRUCTOR = {
    "dimension 0": (dict(dimension=0), InvalidArgumentError, ValueError, r"dimension"),
    "dimension -3": (dict(dimension=-3), InvalidArgumentError, ValueError, r"dimension"),
    "dimension float": (dict(dimension=8.0), InvalidTypeError, TypeError, r"dimension"),
    "dimension str": (dict(dimension="8"), InvalidTypeError, TypeError, r"dimension"),
    "dimension None": (dict(dimension=None), InvalidTypeError, TypeError, r"dimension"),
    "dimension bool": (dict(dimension=True), InvalidTypeError, TypeError, r"dimension"),
    "index_type unknown": (dict(dimension=8, index_type="IVFPQ"), InvalidArgumentError, ValueError,
                           r"index_type.*Flat.*HNSW.*IVFFlat"),
    "index_type empty": (dict(dimension=8, index_type=""), InvalidArgumentError, ValueError, r"index_type"),
    "index_type None": (dict(dimension=8, index_type=None), InvalidArgumentError, ValueError, r"index_type"),
    "index_type int": (dict(dimension=8, index_type=1), InvalidArgumentError, ValueError, r"index_type"),
    "metric unknown": (dict(dimension=8, metric="euclidean"), InvalidArgumentError, ValueError,
                       r"metric.*IP.*L2.*cosine"),
    "metric cos": (dict(dimension=8, metric="cos"), InvalidArgumentError, ValueError, r"metric"),
    "metric int": (dict(dimension=8, metric=0), InvalidArgumentError, ValueError, r"metric"),
    "FlatIP with L2": (dict(dimension=8, index_type="FlatIP", metric="L2"), InvalidArgumentError, ValueError,
                       r"metric"),
    "param for Flat": (dict(dimension=8, index_type="Flat", nlist=16), InvalidArgumentError, ValueError,
                       r"nlist.*valid"),
    "IVF param for HNSW": (dict(dimension=8, index_type="HNSW", nprobe=4), InvalidArgumentError, ValueError,
                           r"nprobe.*M.*ef_construction.*ef_search"),
    "FAISS spelling": (dict(dimension=8, index_type="HNSW", efSearch=64), InvalidArgumentError, ValueError,
                       r"efSearch.*ef_search"),
    "HNSW param for IVF": (dict(dimension=8, index_type="IVFFlat", M=16), InvalidArgumentError, ValueError,
                           r"'M'.*nlist.*nprobe"),
    "nlist 0": (dict(dimension=8, index_type="IVFFlat", nlist=0), InvalidArgumentError, ValueError, r"nlist"),
    "nlist -1": (dict(dimension=8, index_type="IVFFlat", nlist=-1), InvalidArgumentError, ValueError, r"nlist"),
    "nlist huge": (dict(dimension=8, index_type="IVFFlat", nlist=1 << 30), InvalidArgumentError, ValueError,
                   r"nlist"),
    "nprobe 0": (dict(dimension=8, index_type="IVFFlat", nprobe=0), InvalidArgumentError, ValueError, r"nprobe"),
    "nprobe > nlist": (dict(dimension=8, index_type="IVFFlat", nlist=16, nprobe=32), InvalidArgumentError,
                       ValueError, r"nprobe.*nlist"),
    "M 1": (dict(dimension=8, index_type="HNSW", M=1), InvalidArgumentError, ValueError, r"\bM\b"),
    "M 1000": (dict(dimension=8, index_type="HNSW", M=1000), InvalidArgumentError, ValueError, r"\bM\b"),
    "ef_search 0": (dict(dimension=8, index_type="HNSW", ef_search=0), InvalidArgumentError, ValueError,
                    r"ef_search"),
    "ef_construction 0": (dict(dimension=8, index_type="HNSW", ef_construction=0), InvalidArgumentError,
                          ValueError, r"ef_construction"),
    "nlist float": (dict(dimension=8, index_type="IVFFlat", nlist=16.0), InvalidTypeError, TypeError, r"nlist"),
    "M str": (dict(dimension=8, index_type="HNSW", M="16"), InvalidTypeError, TypeError, r"\bM\b"),
    "ef_search bool": (dict(dimension=8, index_type="HNSW", ef_search=True), InvalidTypeError, TypeError,
                       r"ef_search"),
}


@pytest.mark.parametrize("case", BAD_CONSTRUCTOR, ids=list(BAD_CONSTRUCTOR))
def test_constructor_bad_arguments(case):
    kwargs, cls, builtin, name = BAD_CONSTRUCTOR[case]
    check_raises(lambda: FAISSVectorStore(**kwargs), cls, builtin, name)


def test_constructor_accepts_valid_spellings():
    for index_type in ("flat", "FLAT", "FlatL2", "flatip", "ivfflat", "IVFFLAT", "hnsw", "Hnsw"):
        FAISSVectorStore(4, index_type)
    for metric in ("l2", "L2", "ip", "IP", "cosine", "COSINE"):
        FAISSVectorStore(4, "Flat", metric)
    s = FAISSVectorStore(np.int64(4), "hnsw", "Cosine", M=np.int32(8), ef_search=10, ef_construction=20)
    assert (s.dimension, s.index_type, s.metric) == (4, "HNSW", "cosine")
    assert s.params == {"M": 8, "ef_construction": 20, "ef_search": 10}


# ----------------------------------------------------------------------------- load / save


def load_both_ways(store, path, cls, builtin, name):
    check_raises(lambda: FAISSVectorStore.load(path), cls, builtin, name)
    check_raises(lambda: store.load(path), cls, builtin, name)
    check_raises(lambda: store.load(str(path)), cls, builtin, name)


def test_load_missing_directory(store, tmp_path):
    before = snapshot(store)
    missing = tmp_path / "does" / "not" / "exist"
    load_both_ways(store, missing, StoreNotFoundError, FileNotFoundError, re.escape(str(missing)))
    assert not missing.exists()
    assert_unchanged(store, before)


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


def test_load_corrupt_store(store, tmp_path):
    saved = FAISSVectorStore(D, "Flat")
    saved.add(clustered(20, D, seed=5))
    path = tmp_path / "s"
    saved.save(path)
    before = snapshot(store)
    index_file = next(p for p in path.iterdir() if p.name.startswith("index."))
    index_file.write_bytes(index_file.read_bytes()[:-10])  # truncated
    load_both_ways(store, path, CorruptStoreError, ValueError, r"index")
    (path / "manifest.json").write_text("{not json")
    load_both_ways(store, path, CorruptStoreError, ValueError, r"manifest")
    assert_unchanged(store, before)


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
def test_huge_finite_values_are_valid_and_raise_no_numpy_warning(metric):
    # float32 holds 3e38: a valid vector, even though its float32 sum overflows.
    s = FAISSVectorStore(D, "Flat", metric)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert s.add(np.full(D, 3e38, np.float32)) == [0]
        assert s.add(np.full((2, D), -3e38)) == [1, 2]
    assert len(s) == 3


@pytest.mark.parametrize("path", [123, None, ["dir"]])
def test_save_and_load_reject_a_path_that_is_not_a_path(path):
    store = FAISSVectorStore(4)
    store.add(np.ones((2, 4)))
    for call in (lambda: store.save(path), lambda: FAISSVectorStore.load(path), lambda: store.load(path)):
        with pytest.raises(InvalidTypeError, match="path must be a str or os.PathLike"):
            call()
    assert store.ids() == [0, 1]
