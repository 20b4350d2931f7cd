"""An interrupt (Ctrl-C) as a step of a write returns leaves the store whole: the write
done, or undone.

CPython 3.11 delivers a pending signal only at an eval-breaker check: as a Python function
starts, as a call returns, on a backward jump (never between two assignments with no call
between them). Each test raises KeyboardInterrupt at one such point (``interrupted``: as a
method returns, its work done; with ``after=False``: as it is entered, before it
does anything), then checks that the write changed nothing, or, once committed, is whole;
and that ``save`` writes what ``load`` takes back (``load`` cross-checks every count).
"""

from __future__ import annotations

import pytest

from parag.metadata.store import MetadataStore
from parag.vectorstore import FAISSVectorStore
from parag.vectorstore.kinds import IndexKind
from parag.vectorstore.kinds.hnsw import HNSW
from parag.vectorstore.kinds.ivf import IVFFlat
from tests.interrupts import interrupted
from tests.test_failed_writes import D, KINDS, RNG, make_store, next_id, state


def assert_interrupt_changes_nothing(store: FAISSVectorStore, write, fault, tmp_path) -> None:
    """``write()``, interrupted (with ``fault``), changes nothing, and the store saves and loads."""
    before, expected_id = state(store), next_id(store)
    with fault, pytest.raises(KeyboardInterrupt):
        write()
    assert state(store) == before
    assert next_id(store) == expected_id
    store.save(tmp_path / "saved")
    assert state(FAISSVectorStore.load(tmp_path / "saved")) == before


# ------------------------------------------------------------------ FAISSState.append


@pytest.mark.parametrize("index_type", list(KINDS))
def test_an_add_interrupted_as_the_metadata_append_returns_changes_nothing(index_type, tmp_path):
    # The metadata is the last part appended: its rows are rolled back with the slot map's
    # and the documents', and FAISS's vectors taken out (or made tombstones). (It once kept
    # them: the next add's vectors came back with this add's metadata.)
    store = make_store(index_type, deleted=(3, 5))
    x = RNG.standard_normal((5, D))
    assert_interrupt_changes_nothing(store, lambda: store.add(x, [{"n": -1, "even": True}] * 5),
                                     interrupted(MetadataStore, "append"), tmp_path)


@pytest.mark.parametrize("index_type", list(KINDS))
def test_an_upsert_interrupted_as_the_metadata_append_returns_changes_nothing(index_type, tmp_path):
    # As above; the replaced slots keep their metadata (it once pointed at null while they stayed live).
    store = make_store(index_type)
    x = RNG.standard_normal((3, D))
    assert_interrupt_changes_nothing(store, lambda: store.upsert([0, 1, 1000], x, [{"n": -1, "even": True}] * 3),
                                     interrupted(MetadataStore, "append"), tmp_path)


def test_an_hnsw_add_interrupted_as_before_add_returns_keeps_its_ef_construction(monkeypatch, tmp_path):
    # before_add sets ef_construction for the size the add leaves, on the kind and on the
    # graph: undone with the add.
    import parag.vectorstore.kinds.hnsw as hnsw

    monkeypatch.setattr(hnsw, "EF_CONSTRUCTION_BY_SIZE", ((250, 40),))
    store = make_store("HNSW")
    assert store.params["ef_construction"] == 40
    assert_interrupt_changes_nothing(store, lambda: store.add(RNG.standard_normal((100, D))),
                                     interrupted(HNSW, "before_add"), tmp_path)
    assert int(store.faiss_index.hnsw.efConstruction) == 40


# ------------------------------------------------------------------ IVF retraining


def trained_ivf() -> FAISSVectorStore:
    # nlist not given: trained with 256 lists at 9,984 vectors; an add to 22,000 retrains it.
    store = FAISSVectorStore(D, "IVFFlat")
    store.add(RNG.standard_normal((10_000, D)), [{"n": i, "even": i % 2 == 0} for i in range(10_000)])
    assert store.params["nlist"] == 256
    return store


def test_an_add_interrupted_as_the_retraining_returns_keeps_nlist(tmp_path):
    # IVFFlat.after_add sets the new nlist/nprobe on the kind and builds the new index: both
    # are undone. (The parameters once stayed: the store said 512 lists while its index had
    # 256, and load refused what save wrote.)
    store = trained_ivf()
    assert_interrupt_changes_nothing(store, lambda: store.add(RNG.standard_normal((12_000, D))),
                                     interrupted(IVFFlat, "after_add"), tmp_path)


def test_an_add_interrupted_once_it_has_committed_a_retrained_index_is_whole(tmp_path):
    # The slot map, next id and retrained index are committed together: an interrupt at the
    # first call after (closing the old index's files) leaves the add whole. (The index was
    # once installed by a call of its own, after the slot map: an interrupt there kept the old
    # index under the new nlist, and load refused what save wrote.)
    store = trained_ivf()
    with interrupted(IndexKind, "close_files", after=False), pytest.raises(KeyboardInterrupt):
        store.add(RNG.standard_normal((12_000, D)))
    assert len(store) == 22_000
    assert store.params["nlist"] == store.faiss_index.nlist
    after = state(store)
    store.save(tmp_path / "saved")
    assert state(FAISSVectorStore.load(tmp_path / "saved")) == after


# ------------------------------------------------------------------ FAISSState.kill


@pytest.mark.parametrize("index_type", list(KINDS))
def test_a_delete_interrupted_as_the_metadata_kill_returns_changes_nothing(index_type, tmp_path):
    # The metadata is the last part to mark the slots deleted: rolled back with the slot map
    # and documents. (It once was not: the ids stayed live with null metadata, and load
    # refused what save wrote.)
    store = make_store(index_type, deleted=(3, 5))
    assert_interrupt_changes_nothing(store, lambda: store.delete([0, 1, 7]),
                                     interrupted(MetadataStore, "kill"), tmp_path)


@pytest.mark.parametrize("index_type", list(KINDS))
def test_a_filtered_delete_interrupted_as_the_metadata_kill_returns_changes_nothing(index_type, tmp_path):
    store = make_store(index_type)
    assert_interrupt_changes_nothing(store, lambda: store.delete(filter={"n": {"$lt": 4}}),
                                     interrupted(MetadataStore, "kill"), tmp_path)


# ------------------------------------------------------------------ compact, tune


@pytest.mark.parametrize("index_type", list(KINDS))
def test_a_compaction_interrupted_once_the_metadata_is_compacted_changes_nothing(index_type, tmp_path):
    # The metadata compacts in place, last: an interrupt as it returns, before the new index,
    # slot map and documents are installed, must not leave the rows renumbered under the old
    # slots. (It once did: searches raised IndexError or returned another vector's metadata.)
    store = make_store(index_type, deleted=(3, 5))
    assert_interrupt_changes_nothing(store, store.compact, interrupted(MetadataStore, "keep"), tmp_path)


def test_a_compaction_interrupted_as_the_new_index_takes_its_defaults_changes_nothing(monkeypatch, tmp_path):
    # apply_defaults on the new, smaller index moves the kind's size-following ef_search
    # before anything is installed: undone with the rest, or the old graph would be searched
    # under the new ef_search (by every search with a selector: tombstones, filters).
    import parag.vectorstore.kinds.hnsw as hnsw

    monkeypatch.setattr(hnsw, "EF_SEARCH_BY_SIZE", ((120, 16),))  # 64 above 120 vectors
    monkeypatch.setattr(hnsw, "EF_SEARCH_LARGEST", 64)
    store = make_store("HNSW", deleted=tuple(range(0, 180, 2)))  # 90 of 200: below compact_at
    assert store.params["ef_search"] == 64
    assert_interrupt_changes_nothing(store, store.compact, interrupted(HNSW, "apply_defaults"), tmp_path)


def test_a_tune_interrupted_before_its_value_reaches_the_index_is_undone(tmp_path):
    # The tuned ef_search is set on the kind (params, auto), then applied to the index: an
    # interrupt between is undone, or params would say the tuned value while unfiltered
    # searches ran at the old one.
    store = make_store("HNSW")
    with interrupted(HNSW, "apply_defaults", after=False), pytest.raises(KeyboardInterrupt):
        store.tune(target_recall=0.5)
    assert store.params["ef_search"] == store.faiss_index.hnsw.efSearch
