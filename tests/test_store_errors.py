"""FAISS-specific bad inputs of issue 2, item 7 (constructor parameters, per-search
overrides, a corrupt index file): the right exception (a ParagError that is also the
matching builtin), a message naming the argument, and the store exactly as it was. What
every backend must reject is in tests/conformance/test_errors.py."""

from __future__ import annotations

import re

import numpy as np
import pytest

from parag import errors
from parag.errors import (
    CorruptStoreError,
    DimensionMismatchError,
    IdNotFoundError,
    InvalidArgumentError,
    InvalidMetadataError,
    InvalidTypeError,
    NotAStoreError,
    ParagError,
    StoreNotFoundError,
)
from parag.vectorstore import FAISSVectorStore
from tests.checks import D, QUERIES, assert_unchanged, check_raises, errors_store, load_both_ways, snapshot
from tests.conftest import clustered

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
    s = errors_store(FAISSVectorStore(D, index_type, metric, **params))
    assert s.is_trained == (params.get("nlist") == 4 or index_type != "IVFFlat")
    return s


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


# ----------------------------------------------------------------------------- search overrides


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




@pytest.mark.parametrize("write", ["add", "upsert"])
def test_a_large_batch_with_a_nan_is_reported_before_its_bad_metadata(write):
    """A batch of BACKGROUND_CHECK_MIN values or more is checked for NaN on a second thread
    while its metadata is encoded: its error still comes first, and nothing is added."""
    from parag._validation import BACKGROUND_CHECK_MIN

    n = -(-BACKGROUND_CHECK_MIN // 16)
    x = np.ones((n, 16), np.float32)
    x[n - 3, 5] = np.nan
    store = FAISSVectorStore(16)
    store.add(np.ones(16))
    for metadata in (None, [{"t": (1,)}] * n):  # fine, and not JSON (a tuple)
        args = (x, metadata) if write == "add" else (np.arange(1, n + 1), x, metadata)
        with pytest.raises(InvalidArgumentError, match=rf"vectors contain NaN.* 1 row\(s\), first at row {n - 3}"):
            getattr(store, write)(*args)
        assert len(store) == 1 and store.ids() == [0]
    x[n - 3, 5] = 1
    with pytest.raises(InvalidMetadataError, match=r"metadata\[0\]"):
        store.add(x, [{"t": (1,)}] * n)
    assert store.add(x)[-1] == n and len(store) == n + 1


def test_an_interrupt_during_a_large_batchs_check_goes_on_unchecked():
    """A KeyboardInterrupt in the block of a background NaN check is not replaced by the
    check's error (nor waited for); an ordinary error still is."""
    from parag._validation import BACKGROUND_CHECK_MIN, values_check

    x = np.ones((-(-BACKGROUND_CHECK_MIN // 16), 16), np.float32)
    x[-1, 5] = np.nan
    with pytest.raises(KeyboardInterrupt):
        with values_check(x, "vectors"):
            raise KeyboardInterrupt
    with pytest.raises(InvalidArgumentError, match="vectors contain NaN"):
        with values_check(x, "vectors"):
            raise ValueError("the block's own error")


@pytest.mark.parametrize("index_type", ["Flat", "HNSW"])
def test_a_loaded_vector_whose_distances_overflow_is_never_read_as_the_last_slot(tmp_path, index_type):
    """Review-0025 F2, defence in depth: a store saved with a vector parag now refuses (an
    older parag accepted it, or a crafted file) makes FAISS answer label -1; a search must
    say so, never map -1 to the last slot (its id, k times, or a deleted vector's)."""
    x = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], np.float32)
    store = FAISSVectorStore(3, index_type)
    store.add(x, [{"i": i} for i in range(3)])
    store.save(tmp_path / "s")
    index_file = next(p for p in (tmp_path / "s").iterdir() if p.name.startswith("index."))
    data = index_file.read_bytes()
    assert data.count(x[1].tobytes()) == 1
    index_file.write_bytes(data.replace(x[1].tobytes(), np.array([1e20, 1e20, 0], np.float32).tobytes()))
    crafted = FAISSVectorStore.load(tmp_path / "s", verify=False)  # (the checksum would catch this one)
    assert crafted.search(x[0], k=2).ids == [0, 2]  # the finite distances: exact
    for call in (lambda: crafted.search(x[0], k=3), lambda: crafted.search(x[:2], k=3),
                 lambda: crafted.search(x[0], k=2, filter={"i": {"$in": [0, 1]}})):
        check_raises(call, CorruptStoreError, ValueError, r"overflow float32.*rebuild it")
