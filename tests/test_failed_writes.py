"""A write that fails inside FAISS or while encoding leaves the store exactly as it was.

Faults are injected into real FAISS: the ``add`` or ``train`` of the FAISS index class a
store uses is replaced, for one call, by one that does part of the work (or none) and then
raises, as FAISS does when it runs out of memory. After the failed call, ``len``, ``ids()``,
``get``, searches (filtered too) and the next generated id are what they were, and the store
keeps working.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import faiss
import numpy as np
import pytest

from parag._slots import SlotMap
from parag.documents import DocumentStore
from parag.errors import InvalidMetadataError
from parag.metadata.columns import Columns
from parag.vectorstore import FAISSVectorStore
from tests.checks import exact_over

D = 8
RNG = np.random.default_rng(0)
QUERIES = RNG.standard_normal((5, D)).astype(np.float32)
# index_type, params, the FAISS class the store's index is once it holds 200 vectors
KINDS = {
    "Flat": ({}, faiss.IndexFlat),
    "HNSW": ({"M": 8}, faiss.IndexHNSWFlat),
    "IVFFlat": ({"nlist": 4}, faiss.IndexIVFFlat),  # trained (4 x 39 <= 200 vectors)
}


def make_store(index_type: str, n: int = 200, deleted: tuple[int, ...] = (),
               x: np.ndarray | None = None) -> FAISSVectorStore:
    params, _ = KINDS[index_type]
    store = FAISSVectorStore(D, index_type, **params)
    store.add(RNG.standard_normal((n, D)) if x is None else x, [{"n": i, "even": i % 2 == 0} for i in range(n)],
              documents=[f"document {i}" for i in range(n)])
    if deleted:
        store.delete(list(deleted))  # tombstones: searches go through a selector
    return store


def state(store: FAISSVectorStore) -> tuple:
    """Everything a user can observe, except the next generated id (see next_id)."""
    ids = store.ids()
    got = store.get(ids, include_vectors=True)
    return (len(store), ids, store.params, got.metadata, got.documents, got.vectors.tobytes(), store.is_trained,
            store.search(QUERIES, k=7), store.search(QUERIES, k=7, filter={"even": True}),
            [i in store for i in (0, 1, 3, 7, 200, 201, 999)])  # the ids the failing writes touch


def next_id(store: FAISSVectorStore) -> int:
    """The id the next ``add`` generates (found on a copy, so the store is not changed)."""
    import copy

    return copy.deepcopy(store).add(np.zeros(D))[0]


@contextlib.contextmanager
def failing(cls: type, method: str, error: BaseException, keep: int = 0) -> Iterator[None]:
    """``cls.method`` does its work on the first ``keep`` rows, then raises ``error``."""
    real = getattr(cls, method)

    def broken(self, x, *args, **kwargs):
        if keep:
            real(self, x[:keep], *args, **kwargs)
        raise error

    setattr(cls, method, broken)
    try:
        yield
    finally:
        setattr(cls, method, real)


def assert_fails_cleanly(store: FAISSVectorStore, write, error: type[BaseException],
                         fault: contextlib.AbstractContextManager = contextlib.nullcontext()) -> None:
    """``write()`` raises ``error`` (with ``fault`` injected) and changes nothing."""
    before, expected_id = state(store), next_id(store)
    with fault, pytest.raises(error):
        write()
    assert state(store) == before
    assert next_id(store) == expected_id
    # and it still works: a write, then searches that find what it wrote under its ids
    x = RNG.standard_normal((3, D)).astype(np.float32)
    new = store.add(x, [{"n": -1, "even": True}] * 3)
    assert new == list(range(expected_id, expected_id + 3)) and len(store) == before[0] + 3
    assert np.allclose(store.get(new, include_vectors=True).vectors, x)
    assert [ids[0] for ids in store.search(x, k=1).ids] == new
    assert all(len(ids) == 7 for ids in store.search(QUERIES, k=7, filter={"even": True}).ids)


@pytest.mark.parametrize("deleted", [(), (3, 5)], ids=["no tombstones", "tombstones"])
@pytest.mark.parametrize("keep", [0, 2], ids=["nothing added", "part added"])
@pytest.mark.parametrize("index_type", list(KINDS))
def test_a_faiss_add_that_raises_changes_nothing(index_type, keep, deleted):
    store = make_store(index_type, deleted=deleted)
    assert_fails_cleanly(store, lambda: store.add(RNG.standard_normal((5, D)), [{"n": 0}] * 5), MemoryError,
                         failing(KINDS[index_type][1], "add", MemoryError("injected"), keep))


@pytest.mark.parametrize("index_type", list(KINDS))
def test_a_faiss_add_that_raises_during_an_upsert_changes_nothing(index_type):
    store = make_store(index_type)
    assert_fails_cleanly(store, lambda: store.upsert([0, 1, 1000], RNG.standard_normal((3, D))), RuntimeError,
                         failing(KINDS[index_type][1], "add", RuntimeError("injected"), keep=1))


def test_a_failed_add_that_would_have_grown_the_graph_keeps_its_ef_construction(monkeypatch):
    # ef_construction follows the size an add leaves (kinds/hnsw.py); moved from 150k vectors
    # to 250 here: the add that fails would have raised it, and must not have.
    import parag.vectorstore.kinds.hnsw as hnsw

    monkeypatch.setattr(hnsw, "EF_CONSTRUCTION_BY_SIZE", ((250, 40),))
    store = make_store("HNSW")
    assert store.params["ef_construction"] == 40
    assert_fails_cleanly(store, lambda: store.add(RNG.standard_normal((100, D))), MemoryError,
                         failing(faiss.IndexHNSWFlat, "add", MemoryError("injected"), keep=10))
    assert int(store.faiss_index.hnsw.efConstruction) == 40


def test_training_that_runs_out_of_memory_changes_nothing():
    store = FAISSVectorStore(D, "IVFFlat", nlist=4)  # trains at 156 live vectors
    store.add(RNG.standard_normal((100, D)), [{"n": i, "even": i % 2 == 0} for i in range(100)])
    assert not store.is_trained
    assert_fails_cleanly(store, lambda: store.add(RNG.standard_normal((100, D))), MemoryError,
                         failing(faiss.IndexIVFFlat, "train", MemoryError("injected")))
    store.add(RNG.standard_normal((100, D)))
    assert store.is_trained and len(store) == 203


def test_retraining_that_runs_out_of_memory_changes_nothing():
    # nlist not given: trained with 256 lists at 9,984 vectors, retrained once the store has
    # grown to call for twice as many (here at 22,000): the add that triggers it fails whole.
    store = FAISSVectorStore(D, "IVFFlat")
    store.add(RNG.standard_normal((10_000, D)), [{"n": i, "even": i % 2 == 0} for i in range(10_000)])
    params = store.params
    assert_fails_cleanly(store, lambda: store.add(RNG.standard_normal((12_000, D))), MemoryError,
                         failing(faiss.IndexIVFFlat, "train", MemoryError("injected")))
    assert store.params == params
    store.add(RNG.standard_normal((12_000, D)))
    assert store.params["nlist"] > 2 * params["nlist"]


@pytest.mark.parametrize("index_type", list(KINDS))
def test_metadata_that_fails_to_encode_changes_nothing(index_type):
    store = make_store(index_type)
    bad = [{"n": 1}, {"n": 2**70}, {"n": 3}]  # the second does not fit JSON's 64-bit ints
    assert_fails_cleanly(store, lambda: store.add(RNG.standard_normal((3, D)), bad), InvalidMetadataError)
    assert_fails_cleanly(store, lambda: store.upsert([0, 1, 2], RNG.standard_normal((3, D)), bad), InvalidMetadataError)
    assert_fails_cleanly(store, lambda: store.update_metadata([0, 1, 2], bad), InvalidMetadataError)


@pytest.mark.parametrize("index_type", list(KINDS))
def test_a_compaction_that_fails_changes_nothing(index_type):
    store = make_store(index_type, deleted=(3, 5))
    cls = KINDS[index_type][1]
    assert_fails_cleanly(store, store.compact, MemoryError, failing(cls, "add", MemoryError("injected")))


@pytest.mark.parametrize("index_type", list(KINDS))
def test_a_delete_whose_compaction_fails_is_still_done(index_type):
    # Crossing the deleted share rebuilds the index; when that fails, the delete itself is
    # still complete and consistent (the deleted vectors stay as tombstones), and it says so.
    store = make_store(index_type, deleted=(3, 5))
    cls = KINDS[index_type][1]
    doomed = store.ids()[: len(store) * 6 // 10]
    with failing(cls, "add", MemoryError("injected")), pytest.warns(RuntimeWarning, match="compact"):
        assert store.delete(doomed) == len(doomed)
    live = [i for i in range(200) if i not in (3, 5) and i not in doomed]
    assert store.ids() == live and len(store) == len(live)
    assert not set(np.ravel(store.search(QUERIES, k=7).ids)) & set(doomed)
    store.compact()
    assert store.ids() == live


@contextlib.contextmanager
def failing_call(owner: object, name: str, call: int, keep: int = 0) -> Iterator[None]:
    """Call number ``call`` of ``owner.name`` does its work on the first ``keep`` items of
    its last argument, then raises MemoryError; the other calls work."""
    real, calls = getattr(owner, name), []

    def broken(*args):
        calls.append(1)
        if len(calls) != call:
            return real(*args)
        if keep:
            real(*args[:-1], args[-1][:keep])
        raise MemoryError("injected")

    setattr(owner, name, broken)
    try:
        yield
    finally:
        setattr(owner, name, real)


@pytest.mark.parametrize("fault", ["offsets", "columns"])
@pytest.mark.parametrize("index_type", list(KINDS))
def test_a_metadata_append_that_runs_out_of_memory_changes_nothing(index_type, fault, tmp_path):
    # The metadata is appended after FAISS took the vectors: its buffer, offsets and filter
    # columns (built by the filtered search in state()) are all cut back, FAISS's add undone.
    import parag.metadata.store as store_module

    def fault_injected() -> contextlib.AbstractContextManager:
        if fault == "offsets":  # the row starts have grown, the row ends cannot
            return failing_call(store_module, "_extend", call=2)
        return failing_call(Columns, "append", call=1, keep=2)  # two slots' values are in

    store = make_store(index_type, deleted=(3, 5))
    before = state(store)
    with fault_injected(), pytest.raises(MemoryError):
        store.add(RNG.standard_normal((5, D)), [{"n": -i, "even": True} for i in range(5)])
    store.save(tmp_path / "saved")
    assert state(FAISSVectorStore.load(tmp_path / "saved")) == before
    assert_fails_cleanly(store, lambda: store.add(RNG.standard_normal((5, D)), [{"n": 0}] * 5), MemoryError,
                         fault_injected())
    assert_fails_cleanly(store, lambda: store.upsert([0, 1, 999], RNG.standard_normal((3, D))), MemoryError,
                         fault_injected())


# The bookkeeping after FAISS's add, step by step: (owner, method) of each step that may run
# out of memory. The step does part of its work (two items), then raises MemoryError.
STEPS = {
    "slots kill": (SlotMap, "kill"),  # (the kills: upserts only)
    "documents kill": (DocumentStore, "kill"),
    "metadata kill": (Columns, "put"),  # (the filter columns of the replaced slots)
    "slots append": (SlotMap, "append"),
    "documents append": (DocumentStore, "append"),
}


def assert_holds(store: FAISSVectorStore, vectors: dict[int, np.ndarray]) -> None:
    """The store holds exactly ``vectors`` (id -> vector, as the test added them), and a
    Flat store's search is numpy brute force's over them."""
    assert store.ids() == list(vectors)
    assert np.array_equal(store.get(list(vectors), include_vectors=True).vectors, np.stack(list(vectors.values())))
    if store.index_type == "Flat":
        exact_over(store.search(QUERIES, k=7), vectors, QUERIES, 7, store.metric)


def store_and_vectors(index_type: str) -> tuple[FAISSVectorStore, dict[int, np.ndarray]]:
    """A store (ids 3 and 5 deleted) and what it holds: id -> vector, as the test added them."""
    x = RNG.standard_normal((200, D)).astype(np.float32)
    return make_store(index_type, x=x, deleted=(3, 5)), {i: x[i] for i in range(200) if i not in (3, 5)}


def assert_each_fails_cleanly(store: FAISSVectorStore, vectors: dict[int, np.ndarray], writes: list,
                              fault, tmp_path) -> None:
    """Each of ``writes`` raises MemoryError with ``fault()`` injected and changes nothing:
    the store holds ``vectors`` and saves and loads as it was."""
    before = state(store)
    for write in writes:
        with fault(), pytest.raises(MemoryError):
            write()
        assert state(store) == before
        assert_holds(store, vectors)
    store.save(tmp_path / "saved")
    assert state(FAISSVectorStore.load(tmp_path / "saved")) == before


@pytest.mark.parametrize("step", list(STEPS))
@pytest.mark.parametrize("index_type", list(KINDS))
def test_bookkeeping_that_runs_out_of_memory_after_faiss_added_changes_nothing(index_type, step, tmp_path):
    # FAISS took the vectors; then slots, documents or metadata fail part way: all of it,
    # FAISS's add included, is undone (a Flat or IVF index removes the vectors again, an
    # HNSW graph keeps them as tombstones no search or count sees).
    store, vectors = store_and_vectors(index_type)
    owner, name = STEPS[step]
    new = RNG.standard_normal((4, D))
    writes = [lambda: store.upsert([0, 1, 7, 999], new, [{"n": -1, "even": True}] * 4, list("abcd"))]
    if "kill" not in step:
        writes.append(lambda: store.add(new, [{"n": -1, "even": True}] * 4, documents=list("abcd")))
    assert_each_fails_cleanly(store, vectors, writes, lambda: failing_call(owner, name, call=1, keep=2), tmp_path)
    assert_fails_cleanly(store, writes[0], MemoryError, failing_call(owner, name, call=1, keep=2))


@pytest.mark.parametrize("then", ["ints", "strings"])
@pytest.mark.parametrize("index_type", list(KINDS))
def test_a_first_write_that_fails_leaves_the_id_kind_open(index_type, then, tmp_path):
    # An empty store takes the kind of the first ids it is given: a first add of string ids
    # that fails after FAISS took the vectors fixes the kind neither to strings nor, through
    # the tombstones an HNSW graph keeps of them, to ints.
    store = FAISSVectorStore(D, index_type, **KINDS[index_type][0])
    with failing_call(SlotMap, "append", call=1), pytest.raises(MemoryError):
        store.add(RNG.standard_normal((2, D)), ids=["a", "b"])
    assert len(store) == 0 and store.ids() == []
    x = RNG.standard_normal((2, D)).astype(np.float32)
    if then == "ints":
        assert store.add(x) == [0, 1]
        assert_holds(store, {0: x[0], 1: x[1]})
    else:
        assert store.add(x, ids=["a", "b"]) == ["a", "b"]
        assert store.ids() == ["a", "b"] and "a" in store and 0 not in store
        assert np.array_equal(store.get(["b", "a"], include_vectors=True).vectors, x[::-1])
        assert store.search(x[1], k=1).ids == ["b"]
        store.save(tmp_path / "s")
        assert FAISSVectorStore.load(tmp_path / "s").get(["a"], include_vectors=True).vectors.tolist() == [x[0].tolist()]


def test_dropping_replaced_metadata_that_runs_out_of_memory_keeps_the_write(tmp_path):
    # An upsert leaves its replaced rows' bytes unused; once they outgrow half the buffer
    # they are dropped (a rewrite). That is housekeeping after a complete write: when it
    # runs out of memory the write stands, it says so, and a later write drops the bytes.
    import parag.metadata.store as store_module

    store = FAISSVectorStore(D)
    x = RNG.standard_normal((200, D)).astype(np.float32)
    store.add(x, [{"pad": "x" * 6000}] * 200)  # 1.2 MB of metadata
    y = RNG.standard_normal((200, D)).astype(np.float32)
    with failing_call(store_module.MetadataStore, "_rewrite", call=1), pytest.warns(RuntimeWarning, match="metadata"):
        store.upsert(list(range(200)), y, [{"n": i} for i in range(200)])
    assert_holds(store, dict(enumerate(y)))
    assert store.get(list(range(200))).metadata == [{"n": i} for i in range(200)]
    store.save(tmp_path / "saved")
    assert FAISSVectorStore.load(tmp_path / "saved").get([0, 199]).metadata == [{"n": 0}, {"n": 199}]


@contextlib.contextmanager
def pointing_fails() -> Iterator[None]:
    """MetadataStore._point (how a write points slots at new rows, or marks them deleted)
    points two slots, then raises MemoryError holding a numpy view of the offsets, as its own
    locals are when it runs out of memory: the traceback keeps them alive while the write is undone."""
    from parag.metadata.store import MetadataStore

    real = MetadataStore._point

    def broken(self, slots, starts, ends):
        def first_two(offsets):
            return offsets[:2] if isinstance(offsets, np.ndarray) else offsets

        real(self, slots[:2], first_two(starts), first_two(ends))
        view = np.frombuffer(self._starts, np.int64)  # noqa: F841 - alive in the traceback
        raise MemoryError("injected")

    MetadataStore._point = broken
    try:
        yield
    finally:
        MetadataStore._point = real


@pytest.mark.parametrize("index_type", list(KINDS))
def test_marking_replaced_metadata_that_runs_out_of_memory_changes_nothing(index_type):
    store = make_store(index_type, deleted=(3, 5))
    assert_fails_cleanly(store, lambda: store.upsert([0, 1, 7, 999], RNG.standard_normal((4, D))), MemoryError,
                         pointing_fails())


@pytest.mark.parametrize("fault", ["columns", "rows"])
@pytest.mark.parametrize("index_type", list(KINDS))
def test_a_compaction_whose_metadata_runs_out_of_memory_changes_nothing(index_type, fault):
    # The index is rebuilt, the slot map and documents made anew: then the metadata's filter
    # columns are renumbered and its rows rewritten. Either failing undoes the whole compaction.
    from parag.metadata.store import MetadataStore

    store = make_store(index_type, deleted=(3, 5))
    owner, name = (Columns, "keep") if fault == "columns" else (MetadataStore, "_rewrite")
    assert_fails_cleanly(store, store.compact, MemoryError, failing_call(owner, name, call=1))
    x = RNG.standard_normal((200, D)).astype(np.float32)
    store = make_store(index_type, x=x, deleted=(3, 5))
    doomed = list(range(0, 200, 2))  # past every kind's compact_at: the delete compacts
    with failing_call(owner, name, call=1), pytest.warns(RuntimeWarning, match="compact"):
        assert store.delete(doomed) == len(doomed)
    assert_holds(store, {i: x[i] for i in range(1, 200, 2) if i not in (3, 5)})
    assert store.search(QUERIES, k=3, filter={"even": True}).ids == [[]] * len(QUERIES)


# The steps of a delete, each failing part way (two slots done).
KILL_FAULTS = {
    "slots": lambda: failing_call(SlotMap, "kill", call=1, keep=2),
    "documents": lambda: failing_call(DocumentStore, "kill", call=1, keep=2),
    "metadata offsets": pointing_fails,
    "metadata columns": lambda: failing_call(Columns, "put", call=1, keep=2),
}


@pytest.mark.parametrize("fault", list(KILL_FAULTS))
@pytest.mark.parametrize("index_type", list(KINDS))
def test_a_delete_that_runs_out_of_memory_part_way_changes_nothing(index_type, fault, tmp_path):
    store, vectors = store_and_vectors(index_type)
    deletes = [lambda: store.delete([0, 1, 7]), lambda: store.delete(filter={"n": {"$lt": 10}})]
    assert_each_fails_cleanly(store, vectors, deletes, KILL_FAULTS[fault], tmp_path)
    assert store.delete([0, 1, 7]) == 3
    assert_holds(store, {i: v for i, v in vectors.items() if i not in (0, 1, 7)})


@pytest.mark.parametrize("index_type", list(KINDS))
def test_an_update_of_metadata_that_runs_out_of_memory_part_way_changes_nothing(index_type):
    store = make_store(index_type, deleted=(3, 5))
    update = lambda: store.update_metadata([0, 1, 7], [{"n": -1, "even": True}] * 3)  # noqa: E731
    assert_fails_cleanly(store, update, MemoryError, failing_call(Columns, "put", call=1, keep=1))
    assert_fails_cleanly(store, update, MemoryError, pointing_fails())
