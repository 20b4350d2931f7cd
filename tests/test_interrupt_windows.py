"""Reproducers: an interrupt (Ctrl-C) between two steps of a write leaves the store inconsistent.

CPython 3.11 delivers a pending signal only at an eval-breaker check: as a Python function
starts, as a call returns, on a backward jump. Each test raises KeyboardInterrupt at one such
point (``interrupted_after``: as a method returns, its work done; ``interrupted_at_entry``: as
it is entered, before it does anything) and checks that the store is still whole, then that
the write either changed nothing or completed, and that ``save`` writes what ``load`` takes.

Every test here FAILS on the code audited (main at 3bf9020): see /work/team/review-interrupts.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pytest

from parag.metadata.store import MetadataStore
from parag.vectorstore import FAISSVectorStore
from parag.vectorstore._faiss_state import FAISSState
from parag.vectorstore.kinds.hnsw import HNSW
from parag.vectorstore.kinds.ivf import IVFFlat
from tests.test_failed_writes import D, KINDS, RNG, make_store, next_id, state


@contextlib.contextmanager
def interrupted_after(owner: object, name: str, call: int = 1) -> Iterator[None]:
    """Call number ``call`` of ``owner.name`` does its work, then KeyboardInterrupt is raised
    as it returns (where CPython delivers a Ctrl-C that came during the call); other calls work."""
    real, calls = getattr(owner, name), []

    def then_interrupted(*args, **kwargs):
        result = real(*args, **kwargs)
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return result

    setattr(owner, name, then_interrupted)
    try:
        yield
    finally:
        setattr(owner, name, real)


@contextlib.contextmanager
def interrupted_at_entry(owner: object, name: str, call: int = 1) -> Iterator[None]:
    """Call number ``call`` of ``owner.name`` raises KeyboardInterrupt as it is entered (the
    RESUME check of its first bytecode), having done nothing; other calls work."""
    real, calls = getattr(owner, name), []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    setattr(owner, name, interrupted)
    try:
        yield
    finally:
        setattr(owner, name, real)


@contextlib.contextmanager
def interrupted_as_the_rollback_scope_exits() -> Iterator[None]:
    """KeyboardInterrupt as ``FAISSState._rolled_back_on_error``'s ``__exit__`` returns, its
    block having completed (the CALL of ``__exit__`` at the end of the ``with``). Once the
    method is gone (a fix that rolls back in append's own ``except``), nothing is interrupted."""
    real = getattr(FAISSState, "_rolled_back_on_error", None)
    if real is None:
        yield
        return

    @contextlib.contextmanager
    def then_interrupted(self, *args):
        with real(self, *args):
            yield
        raise KeyboardInterrupt

    FAISSState._rolled_back_on_error = then_interrupted
    try:
        yield
    finally:
        FAISSState._rolled_back_on_error = real


def problems(store: FAISSVectorStore) -> list[str]:
    """What is out of step in the store's state: every part must hold one entry per slot,
    and the metadata must be ``null`` exactly on the dead slots (what ``load`` checks)."""
    s = store._state
    n = s.slots.n_slots
    found = [f"{part} holds {size} slots, the slot map {n}"
             for part, size in (("index", s.index.ntotal), ("metadata", len(s.meta)), ("documents", len(s.docs)))
             if size != n]
    if len(s.meta) == n and not np.array_equal(s.meta.null_rows(), ~s.slots.live_mask()):
        live_null = np.flatnonzero(s.meta.null_rows() & s.slots.live_mask()).tolist()
        found.append(f"live slots {live_null[:10]} have null (deleted) metadata")
    return found


def assert_interrupt_changes_nothing(store: FAISSVectorStore, write, fault, tmp_path, n_added: int | None = None) -> None:
    """``write()`` is interrupted (with ``fault``); the store is then whole and as it was
    (checked in that order: a store out of step may crash FAISS when read), and saves and loads.
    ``n_added``: the fault may find nothing to interrupt (once the code is fixed); the write,
    not interrupted, must then have added that many vectors."""
    before, expected_id = state(store), next_id(store)
    interrupted = False
    with fault:
        try:
            write()
        except KeyboardInterrupt:
            interrupted = True
    assert interrupted or n_added is not None, "the write was not interrupted"
    assert problems(store) == []
    after = state(store)
    if interrupted:
        assert after == before
        assert next_id(store) == expected_id
    else:
        assert len(store) == before[0] + n_added and next_id(store) == expected_id + n_added
    store.save(tmp_path / "saved")
    assert state(FAISSVectorStore.load(tmp_path / "saved")) == after


# ------------------------------------------------------------------ FAISSState.append


@pytest.mark.parametrize("index_type", list(KINDS))
def test_an_add_interrupted_as_the_metadata_append_returns_changes_nothing(index_type, tmp_path):
    # _faiss_state.py:258: the metadata append is the last step inside _rolled_back_on_error,
    # whose rollback covers the slot map and documents only: its rows stay, while the slots
    # and documents are rolled back and FAISS's vectors are taken out (or made tombstones).
    store = make_store(index_type, deleted=(3, 5))
    x = RNG.standard_normal((5, D))
    assert_interrupt_changes_nothing(store, lambda: store.add(x, [{"n": -1, "even": True}] * 5),
                                     interrupted_after(MetadataStore, "append"), tmp_path)


@pytest.mark.parametrize("index_type", list(KINDS))
def test_an_upsert_interrupted_as_the_metadata_append_returns_changes_nothing(index_type, tmp_path):
    # As above; the replaced slots' metadata is also left pointing at null while they stay live.
    store = make_store(index_type)
    x = RNG.standard_normal((3, D))
    assert_interrupt_changes_nothing(store, lambda: store.upsert([0, 1, 1000], x, [{"n": -1, "even": True}] * 3),
                                     interrupted_after(MetadataStore, "append"), tmp_path)


@pytest.mark.parametrize("index_type", list(KINDS))
def test_an_add_interrupted_as_its_bookkeeping_scope_exits_changes_nothing(index_type, tmp_path):
    # _faiss_state.py:251-262: the ``with _rolled_back_on_error`` ends inside append's try: an
    # interrupt as its __exit__ returns runs the except clause with the slots, documents and
    # metadata all appended, and _forget_from then takes FAISS's vectors out (Flat) or adds
    # tombstones beyond them (HNSW, trained IVF): index and slot map out of step.
    store = make_store(index_type, deleted=(3, 5))
    x = RNG.standard_normal((5, D))
    assert_interrupt_changes_nothing(store, lambda: store.add(x, [{"n": -1, "even": True}] * 5),
                                     interrupted_as_the_rollback_scope_exits(), tmp_path, n_added=5)


def test_an_hnsw_add_interrupted_as_before_add_returns_keeps_its_ef_construction(monkeypatch, tmp_path):
    # _faiss_state.py:245: before_add (which sets ef_construction for the size the add leaves,
    # on the kind and on the graph) runs before the try whose except sets it back.
    import parag.vectorstore.kinds.hnsw as hnsw

    monkeypatch.setattr(hnsw, "EF_CONSTRUCTION_BY_SIZE", ((250, 40),))
    store = make_store("HNSW")
    assert store.params["ef_construction"] == 40
    assert_interrupt_changes_nothing(store, lambda: store.add(RNG.standard_normal((100, D))),
                                     interrupted_after(HNSW, "before_add"), tmp_path)
    assert int(store.faiss_index.hnsw.efConstruction) == 40


# ------------------------------------------------------------------ IVF retraining


def trained_ivf() -> FAISSVectorStore:
    # nlist not given: trained with 256 lists at 9,984 vectors; an add to 22,000 retrains it.
    store = FAISSVectorStore(D, "IVFFlat")
    store.add(RNG.standard_normal((10_000, D)), [{"n": i, "even": i % 2 == 0} for i in range(10_000)])
    assert store.params["nlist"] == 256
    return store


def test_an_add_interrupted_as_the_retraining_returns_keeps_nlist(tmp_path):
    # kinds/ivf.py:108-115 + _faiss_state.py:250: IVFFlat.after_add sets the new nlist/nprobe
    # on the kind before it builds the new index, and undoes that only if the build raises.
    # An interrupt as it returns reaches append's except, which discards the new index but
    # not the new parameters: the store says 512 lists while its index has 256, and save
    # writes a manifest that load refuses ("it has 256 lists, the manifest says 512").
    store = trained_ivf()
    assert_interrupt_changes_nothing(store, lambda: store.add(RNG.standard_normal((12_000, D))),
                                     interrupted_after(IVFFlat, "after_add"), tmp_path)


def test_an_add_interrupted_as_it_installs_the_retrained_index_is_whole(tmp_path):
    # _faiss_state.py:263-264: the slot map and next id are committed, then _use_index installs
    # the retrained index: an interrupt as _use_index is entered keeps the old index (all the
    # vectors are in it) under the new nlist/nprobe, and the saved store cannot be loaded.
    # (A fix that installs the index in the commit statement no longer calls _use_index here:
    # nothing is interrupted, and the add must be whole all the same.)
    store = trained_ivf()
    with interrupted_at_entry(FAISSState, "_use_index"), contextlib.suppress(KeyboardInterrupt):
        store.add(RNG.standard_normal((12_000, D)))
    assert problems(store) == []
    assert len(store) == 22_000  # the add committed: it must then be whole
    assert store.params["nlist"] == store.faiss_index.nlist
    after = state(store)
    store.save(tmp_path / "saved")
    assert state(FAISSVectorStore.load(tmp_path / "saved")) == after


# ------------------------------------------------------------------ FAISSState.kill


@pytest.mark.parametrize("index_type", list(KINDS))
def test_a_delete_interrupted_as_the_metadata_kill_returns_changes_nothing(index_type, tmp_path):
    # _faiss_state.py:310: the metadata kill is the last step inside _rolled_back_on_error,
    # which rolls back the slot map and documents but not the metadata: the ids stay live with
    # null metadata (get and search return None for it, filters skip them), and save writes
    # a metadata file that load refuses (null on live slots).
    store = make_store(index_type, deleted=(3, 5))
    assert_interrupt_changes_nothing(store, lambda: store.delete([0, 1, 7]),
                                     interrupted_after(MetadataStore, "kill"), tmp_path)


@pytest.mark.parametrize("index_type", list(KINDS))
def test_a_filtered_delete_interrupted_as_the_metadata_kill_returns_changes_nothing(index_type, tmp_path):
    store = make_store(index_type)
    assert_interrupt_changes_nothing(store, lambda: store.delete(filter={"n": {"$lt": 4}}),
                                     interrupted_after(MetadataStore, "kill"), tmp_path)


# ------------------------------------------------------------------ compact, tune


def test_a_compaction_interrupted_as_the_new_index_takes_its_defaults_changes_nothing(monkeypatch, tmp_path):
    # _faiss_state.py:323 (added by 3bf9020): apply_defaults on the new, smaller index moves
    # the kind's size-following ef_search before anything is installed, outside the try whose
    # except rolls back: an interrupt as it returns leaves the old graph under the new
    # ef_search (used by every search with a selector: tombstones, filters).
    import parag.vectorstore.kinds.hnsw as hnsw

    monkeypatch.setattr(hnsw, "EF_SEARCH_BY_SIZE", ((120, 16),))  # 64 above 120 vectors
    monkeypatch.setattr(hnsw, "EF_SEARCH_LARGEST", 64)
    store = make_store("HNSW", deleted=tuple(range(0, 180, 2)))  # 90 of 200: below compact_at
    assert store.params["ef_search"] == 64
    assert_interrupt_changes_nothing(store, store.compact, interrupted_after(HNSW, "apply_defaults"), tmp_path)


def test_a_tune_interrupted_before_its_value_reaches_the_index_is_whole_or_undone(tmp_path):
    # kinds/base.py:143-145 (via FAISSState.set_search_default): the new ef_search is set on
    # the kind (params, auto) and then applied to the index: an interrupt as apply_defaults is
    # entered leaves params saying the tuned value while unfiltered searches still run at the
    # old one (and a saved and loaded store searches differently from this one).
    store = make_store("HNSW")
    with interrupted_at_entry(HNSW, "apply_defaults"), pytest.raises(KeyboardInterrupt):
        store.tune(target_recall=0.5)
    assert store.params["ef_search"] == store.faiss_index.hnsw.efSearch
