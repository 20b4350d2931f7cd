"""Data lifecycle (issue 3): user ids, delete, upsert, update_metadata, get, persistence.

Every search is checked against :class:`tests.lifecycle_model.Model`, an independent numpy
brute force over what the store should hold, for every store kind x metric: exact kinds
(Flat, IVFFlat untrained or probing every list) must be exact, approximate ones must keep recall@10 >= 0.95 at default parameters and never return
fewer than ``min(k, live matches)`` results, a deleted id or a stale vector.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from parag.errors import (
    DimensionMismatchError,
    DuplicateIdError,
    IdNotFoundError,
    InvalidArgumentError,
    InvalidMetadataError,
    InvalidTypeError,
    ParagError,
)
from tests.conformance.kinds import WITH_APPROX_IVF
from tests.lifecycle_model import (
    FILTERS,
    METRICS,
    N,
    Model,
    check_all,
    check_search,
    check_state,
    dataset,
    filled,
    matches,
    snapshot,
)

# ----------------------------------------------------------------------------- delete


# The three 5,000-vector tests below run one metric per kind (rotate_metrics, conftest.py),
# shifted so that every FAISS kind meets every metric across them; their writes and checks
# are the same for every metric, which changes only the scores (checked on every kind x
# metric by test_oracle, test_filters and test_persistence, and after deletes, upserts,
# metadata updates, compaction and round trips by test_lifecycle_survives_save_load).
@pytest.mark.rotate_metrics(*METRICS, shift=0)
def test_delete_then_search(make_store, metric):
    """Deletes, then searches with and without filters at every selectivity, including
    filters whose every match was deleted."""
    store, model, x, q = filled(make_store, metric)
    check_all(store, model, make_store.exact, q, ks=(1, 10))
    rng = np.random.default_rng(1)
    # half of the 100 lowest ranks first, so that filters on rank lose some of their matches
    first = [i for i in range(N) if model.meta[i]["rank"] < 100 and i % 2 == 0]
    order = np.array(first + rng.permutation(sorted(set(range(N)) - set(first))).tolist())
    deleted: set[int] = set()
    # 3% (tombstones everywhere), then 20% more (crosses Flat/IVF's compaction threshold),
    # then one by one: after every write, searches must hold to the oracle.
    for batch in (order[:150], order[150:1150], order[1150:1155]):
        if len(batch) < 10:
            for i in batch.tolist():
                assert store.delete(i) == 1
        else:
            assert store.delete(batch) == len(batch)
        model.delete(batch.tolist())
        deleted |= set(batch.tolist())
        check_all(store, model, make_store.exact, q, deleted, ks=(1, 10, 100) if len(batch) < 10 else (10,))
        assert not any(i in store for i in batch.tolist())
    # A deleted vector as the query: its id never comes back, even at distance 0.
    check_search(store, model, x[order[:20]], 10, exact=make_store.exact, deleted=deleted)
    if make_store.held is not None:
        held = make_store.held(store)
        assert len(store) <= held <= len(store) / (1 - make_store.compact_at) + 1
    gone = order[:30].tolist()
    filters = [
        {"rank": {"$lt": 5}},
        {"rank": {"$lt": 100}},
        {"rank": {"$lt": 500}},
        {"rank": {"$lt": 2500}},
        {"rank": {"$gte": 0}},
        {"side": "neg", "rank": {"$lt": 2000}},
        {"id": {"$in": gone}},  # every match deleted: no results at all
        {"$or": [{"id": {"$in": gone}}, {"rank": {"$in": [1, 3, 5, 7, 9, 11]}}]},
    ]
    for spec in filters:
        check_search(store, model, q, 10, spec, exact=make_store.exact, deleted=deleted)
    assert store.search(q[0], 10, filter={"id": {"$in": gone}}) == ([], [], [])


# ----------------------------------------------------------------------------- upsert


@pytest.mark.rotate_metrics(*METRICS, shift=1)
def test_upsert_and_update_metadata(make_store, metric):
    store, model, x, q = filled(make_store, metric)
    rng = np.random.default_rng(3)
    y, _ = dataset(n=700, n_queries=0, seed=7)
    replaced = rng.choice(N, 200, replace=False).tolist()
    fresh = list(range(N + 1000, N + 1200))  # new ids, some way above the generated ones
    ids = replaced + fresh[:100] + [fresh[100]]  # mixed in one call
    vectors = y[: len(ids)]
    meta = [{"id": i, "v": 2, "rank": -1} for i in ids]
    assert store.upsert(ids, vectors, meta) == ids
    model.upsert(ids, vectors, meta)
    check_state(store, model)

    got = store.get(ids, include_vectors=True)
    assert got.ids == ids and got.metadata == meta
    want = vectors / np.linalg.norm(vectors, axis=1, keepdims=True) if metric == "cosine" else vectors
    np.testing.assert_allclose(got.vectors, want, rtol=1e-6, atol=1e-6)

    exact = make_store.exact
    # The old vectors as queries: a replaced id may come back only with its new score.
    check_search(store, model, x[replaced[:30]], 10, exact=exact)
    # The new vectors as queries: the upserted ids are found.
    check_search(store, model, vectors[:30], 10, exact=exact)
    check_all(store, model, make_store.exact, q)
    for spec in ({"v": 2}, {"v": {"$exists": False}}, {"rank": -1}, {"rank": {"$lt": 30}}):
        check_search(store, model, q, 10, spec, exact=exact)
    # Old metadata no longer matches: none of the replaced ids has its old rank.
    old = {"$or": [{"id": i, "rank": {"$gte": 0}} for i in replaced[:20]]}
    assert store.search(q[0], 10, filter=old).ids == []

    # Upsert the same ids again, metadata None: {} stored, vectors replaced again.
    again = y[len(ids) : 2 * len(ids)]
    store.upsert(ids, again)
    model.upsert(ids, again, [{}] * len(ids))
    check_state(store, model)
    check_search(store, model, again[:20], 10, exact=exact)
    check_search(store, model, q, 10, {"v": 2}, exact=exact)  # nothing matches any more
    # Generated ids continue above every id ever stored.
    assert store.add(y[0]) == [fresh[100] + 1]
    model.add([fresh[100] + 1], y[:1], [{}])
    check_update_metadata(store, model, q, make_store.exact, rng)


def check_update_metadata(store, model, q, exact: bool, rng) -> None:
    """update_metadata: new metadata takes effect in filters, old no longer matches, the
    vectors and the order of ids() stay."""
    ids = rng.choice([i for i in model.ids() if "rank" in model.meta[i]], 300, replace=False).tolist()
    before = store.get(model.ids(), include_vectors=True).vectors
    new_meta = [{"id": i, "source": "updated", "rank": model.meta[i]["rank"]} for i in ids]
    assert store.update_metadata(ids, new_meta) is None
    model.update_metadata(ids, new_meta)
    check_state(store, model)  # ids keep their order
    np.testing.assert_array_equal(store.get(model.ids(), include_vectors=True).vectors, before)
    assert store.get(ids).metadata == new_meta
    old_source = {"source": "s07"}
    for spec in ({"source": "updated"}, old_source, {"lang": {"$exists": False}},
                 {"source": {"$ne": "updated"}, "rank": {"$lt": 1000}}, *FILTERS):
        check_search(store, model, q, 10, spec, exact=exact)
    # A single dict for a single id.
    store.update_metadata(ids[0], {"solo": True})
    model.update_metadata([ids[0]], [{"solo": True}])
    assert store.search(q[0], 5, filter={"solo": True}).ids == [ids[0]]
    check_search(store, model, q, 10, {"solo": {"$exists": False}, "rank": {"$lt": 50}}, exact=exact)


# ----------------------------------------------------------------------------- persistence


@pytest.mark.kinds(*WITH_APPROX_IVF)
@pytest.mark.needs("persistent")
@pytest.mark.parametrize("metric", METRICS)
def test_lifecycle_survives_save_load(make_store, metric, tmp_path):
    store, model, x, q = filled(make_store, metric)
    rng = np.random.default_rng(5)
    y, _ = dataset(n=200, n_queries=0, seed=8)
    order = rng.permutation(N).tolist()
    deleted = set(order[:200])  # 4%: stays as tombstones on every index type
    store.delete(order[:200])
    model.delete(order[:200])
    up = order[200:300] + [N + 50]
    store.upsert(up, y[: len(up)], [{"id": i, "v": 3} for i in up])
    model.upsert(up, y[: len(up)], [{"id": i, "v": 3} for i in up])
    store.update_metadata(order[300:400], [{"id": i, "lang": "xx"} for i in order[300:400]])
    model.update_metadata(order[300:400], [{"id": i, "lang": "xx"} for i in order[300:400]])
    filters = [*FILTERS, {"v": 3}, {"lang": "xx"}, {"rank": {"$lt": 5}}, {"rank": {"$lt": 500}}]

    store.save(tmp_path / "s")
    loaded = make_store.load(tmp_path / "s")
    assert (loaded.index_type, loaded.metric, loaded.params) == (store.index_type, store.metric, store.params)
    assert loaded.is_trained == store.is_trained
    assert make_store.held(loaded) == make_store.held(store)  # tombstones persisted as such
    check_all(loaded, model, make_store.exact, q, deleted, filters)
    assert loaded.search(q, 10, filter={"side": "pos"}) == store.search(q, 10, filter={"side": "pos"})
    got = loaded.get(model.ids()[:50], include_vectors=True)
    ref = store.get(model.ids()[:50], include_vectors=True)
    assert got.metadata == ref.metadata
    np.testing.assert_array_equal(got.vectors, ref.vectors)

    # The loaded store goes on: generated ids continue (never reuse deleted ones), deletes
    # and re-adds of deleted ids work, and a second round trip keeps it all.
    new_ids = loaded.add(y[150:160], [{"id": -1, "late": True}] * 10)
    assert new_ids == list(range(N + 51, N + 61))
    model.add(new_ids, y[150:160], [{"id": -1, "late": True}] * 10)
    back = sorted(deleted)[:10]
    assert loaded.add(y[160:170], [{"id": i, "back": True} for i in back], ids=back) == back
    model.add(back, y[160:170], [{"id": i, "back": True} for i in back])
    deleted -= set(back)
    more = order[400:1000]  # crosses the Flat/IVF compaction threshold
    loaded.delete(more)
    model.delete(more)
    deleted |= set(more)
    filters += [{"late": True}, {"back": True}]
    check_all(loaded, model, make_store.exact, q, deleted, filters)
    loaded.save(tmp_path / "s2")
    again = make_store(8).load(tmp_path / "s2")  # the instance form replaces contents
    assert again.dimension == x.shape[1]
    check_all(again, model, make_store.exact, q, deleted, filters)


# ----------------------------------------------------------------------------- heavy deletes


@pytest.mark.kinds(*WITH_APPROX_IVF)
@pytest.mark.needs("held")  # white box: counts the index's slots
@pytest.mark.rotate_metrics(*METRICS, shift=2)
def test_delete_large_share(make_store, metric):
    """Delete 30%, 45%, 60% then 95% of the vectors: exact on Flat, recall >= 0.95 on HNSW
    and IVF, no deleted id, no holes; compaction happens exactly when the dead share passes
    its threshold; the store keeps working and deleted ids can be added again."""
    store, model, x, q = filled(make_store, metric)
    order = np.random.default_rng(6).permutation(N)
    threshold = make_store.compact_at
    deleted: set[int] = set()
    done = 0
    for share in (0.3, 0.45, 0.6, 0.95):
        held = make_store.held(store)
        doomed = order[done : int(share * N)]
        done = int(share * N)
        assert store.delete(doomed) == len(doomed)
        model.delete(doomed.tolist())
        deleted |= set(doomed.tolist())
        dead = held - len(store)  # tombstones after this delete, had it not compacted
        assert make_store.held(store) == (len(store) if dead > threshold * held else held), share
        check_all(store, model, make_store.exact, q, deleted, [*FILTERS, {"rank": {"$lt": 2000}}, {"side": "neg"}])
    check_search(store, model, q[:3], 300, exact=make_store.exact, deleted=deleted)  # k > live

    # Re-add deleted ids under new vectors, and generated ids still start above them all.
    back = sorted(deleted)[:100]
    y, _ = dataset(n=110, n_queries=0, seed=9)
    assert store.add(y[:100], [{"id": i, "back": 1} for i in back], ids=back) == back
    model.add(back, y[:100], [{"id": i, "back": 1} for i in back])
    deleted -= set(back)
    assert store.add(y[100:110]) == list(range(N, N + 10))
    model.add(range(N, N + 10), y[100:110], [{}] * 10)
    check_all(store, model, make_store.exact, q, deleted, [{"back": 1}, {"side": "pos"}])
    check_search(store, model, y[:20], 10, exact=make_store.exact, deleted=deleted)
    store.compact()
    assert make_store.held(store) == len(store) == len(model.vectors)
    check_all(store, model, make_store.exact, q, deleted, [{"back": 1}])


# ----------------------------------------------------------------------------- ids


def test_generated_ids_never_collide_nor_reuse(make_store):
    store = make_store(2, "L2")  # 2-D, as the next test's: a server kind makes one collection for both
    rng = np.random.default_rng(0)
    v = lambda n: rng.standard_normal((n, 2)).astype(np.float32)  # noqa: E731
    assert store.add(v(2), ids=[5, 100]) == [5, 100]
    assert store.add(v(3)) == [101, 102, 103]
    assert store.add(v(1), ids=np.array([7], np.int32)) == [7]
    assert store.add(v(1), ids=[50]) == [50]  # below the generated ones: fine
    assert store.add(v(1)) == [104]
    store.delete([103, 104])
    assert store.add(v(2)) == [105, 106]  # 103 and 104 are never reused
    store.delete(store.ids())  # everything
    assert len(store) == 0 and store.ids() == []
    assert store.search(v(1)[0], 5) == ([], [], [])
    assert store.add(v(1)) == [107]
    assert store.add(v(1), ids=[103]) == [103]  # a deleted id may be given explicitly
    assert store.ids() == [107, 103]


def test_largest_id_then_id_space_exhausted(make_store):
    store = make_store(2)
    top = make_store.max_id
    if top < np.iinfo(np.int64).max:  # a documented limit (Milvus): refused clearly, nothing written
        with pytest.raises(InvalidArgumentError, match=str(top)):
            store.add([1, 2], ids=[top + 1])
        assert len(store) == 0
    assert store.add([1, 2], ids=[top]) == [top]
    assert top in store and store.get([top]).ids == [top]
    before = snapshot(store, np.ones((1, 2)))
    with pytest.raises(InvalidArgumentError):
        store.add([3, 4])
    assert snapshot(store, np.ones((1, 2))) == before
    assert store.add([3, 4], ids=[0]) == [0]


@pytest.mark.parametrize("metric", METRICS)
def test_bad_input_leaves_store_unchanged(make_store, metric):
    store, model, x, q = small_store(make_store, metric)
    y = np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)
    cases = [
        (DuplicateIdError, lambda: store.add(y[:2], ids=[500, 500])),
        (DuplicateIdError, lambda: store.add(y[:2], ids=[500, 3])),  # 3 is stored
        (DuplicateIdError, lambda: store.add(y[:1], ids=[3])),
        (InvalidArgumentError, lambda: store.add(y[:2], ids=[500, -1])),
        (InvalidArgumentError, lambda: store.add(y[:2], ids=[2**63, 1])),
        (InvalidTypeError, lambda: store.add(y[:2], ids=[500.0, 501.0])),
        (InvalidTypeError, lambda: store.add(y[:2], ids=["a", "b"])),
        (InvalidTypeError, lambda: store.add(y[:1], ids="7")),
        (InvalidTypeError, lambda: store.add(y[:1], ids=True)),
        (InvalidTypeError, lambda: store.add(y[:1], ids=[None])),
        (InvalidArgumentError, lambda: store.add(y[:2], ids=[500])),  # length mismatch
        (InvalidArgumentError, lambda: store.add(y[:1], ids=[[500]])),
        (InvalidMetadataError, lambda: store.add(y[:2], [{"a": 1}])),
        (InvalidMetadataError, lambda: store.add(y[:2], [{"a": 1}, "b"])),
        (InvalidMetadataError, lambda: store.add(y[:1], [{"a": {1, 2}}])),
        (InvalidMetadataError, lambda: store.add(y[:1], [{"a": float("nan")}])),
        (DimensionMismatchError, lambda: store.add(np.ones((2, 9)), ids=[500, 501])),
        (InvalidArgumentError, lambda: store.add([[np.nan] * 8], ids=[500])),
        (IdNotFoundError, lambda: store.delete([1, 2, 9999])),
        (IdNotFoundError, lambda: store.delete(9999)),
        (DuplicateIdError, lambda: store.delete([1, 1])),
        (InvalidArgumentError, lambda: store.delete([-3])),
        (InvalidTypeError, lambda: store.delete(["x"])),
        (IdNotFoundError, lambda: store.get([0, 9999])),
        (IdNotFoundError, lambda: store.update_metadata([0, 9999], [{}, {}])),
        (InvalidMetadataError, lambda: store.update_metadata([0, 1], [{"a": 1}])),  # length mismatch
        (InvalidMetadataError, lambda: store.update_metadata([0, 1], {"a": 1})),
        (InvalidMetadataError, lambda: store.update_metadata([0], [{"a": object()}])),
        (DuplicateIdError, lambda: store.update_metadata([0, 0], [{}, {}])),
        (InvalidArgumentError, lambda: store.upsert([0, 1], y[:3])),  # ids/vectors mismatch
        (InvalidMetadataError, lambda: store.upsert([0, 1], y[:2], [{}])),  # metadata mismatch
        (DuplicateIdError, lambda: store.upsert([0, 0], y[:2])),
        (InvalidArgumentError, lambda: store.upsert([0, -5], y[:2])),
        (DimensionMismatchError, lambda: store.upsert([0, 1], np.ones((2, 3)))),
        (InvalidArgumentError, lambda: store.upsert([0], [[np.inf] * 8])),
    ]
    if store.metric == "cosine":
        cases.append((InvalidArgumentError, lambda: store.upsert([0, 500], [y[0], np.zeros(8)])))
    before = snapshot(store, q, {"g": {"$lt": 2}})
    for error, call in cases:
        with pytest.raises(error) as info:
            call()
        assert isinstance(info.value, ParagError)
        assert snapshot(store, q, {"g": {"$lt": 2}}) == before, f"{call} changed the store"
    # Nothing was consumed: the next generated id is the same as before the failures.
    next_probe = store.add(y[0])
    assert next_probe == [max(model.ever) + 1]


def test_unknown_id_errors_are_key_errors_and_name_the_id(make_store):
    store = make_store(2)
    store.add([[0, 1], [1, 0]])
    for call in (lambda: store.delete([1, 4242]), lambda: store.get([4242]),
                 lambda: store.update_metadata([4242], [{}])):
        with pytest.raises(KeyError) as info:
            call()
        assert isinstance(info.value, IdNotFoundError)
        assert "4242" in str(info.value)
    assert store.ids() == [0, 1]


def test_delete_missing_ok(make_store):
    store = make_store(2)
    store.add([[0, 1], [1, 0], [1, 1]])
    assert store.delete([1, 77, 78], missing_ok=True) == 1
    assert store.delete([77], missing_ok=True) == 0
    assert store.delete([], missing_ok=False) == 0
    assert store.ids() == [0, 2]


# ----------------------------------------------------------------------------- get / in / ids


def small_store(make_store, metric: str = "L2") -> tuple:
    """700 vectors of dimension 8 (enough to train an IVF of 16 lists) with small metadata."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((700, 8)).astype(np.float32)
    meta = [{"g": i % 5, "s": f"v{i % 3}"} for i in range(700)]
    store, model = make_store(8, metric), Model(metric)
    store.add(x, meta)
    model.add(range(700), x, meta)
    return store, model, x, rng.standard_normal((5, 8)).astype(np.float32)


@pytest.mark.parametrize("metric", METRICS)
def test_get_returns_stored_vectors_and_metadata_in_order(make_store, metric):
    store, model, x, q = small_store(make_store, metric)
    store.delete(list(range(0, 700, 7)))  # tombstones, then compaction on Flat/IVF
    model.delete(list(range(0, 700, 7)))
    store.upsert([1, 800], x[[10, 20]] * 2, [{"g": 9}, {"g": 10}])
    model.upsert([1, 800], x[[10, 20]] * 2, [{"g": 9}, {"g": 10}])
    asked = [800, 5, 1, 699, 5, 2]  # any order, repeats allowed
    got = store.get(asked, include_vectors=True)
    assert got.ids == asked
    assert got.metadata == [model.meta[i] for i in asked]
    want = np.stack([model.vectors[i] for i in asked])
    if metric == "cosine":
        want = want / np.linalg.norm(want, axis=1, keepdims=True)
    assert got.vectors.dtype == np.float32 and got.vectors.shape == (6, 8)
    np.testing.assert_allclose(got.vectors, want, rtol=1e-6, atol=1e-6)
    assert store.get(asked).vectors is None
    assert store.get(np.array(asked)).metadata == got.metadata
    assert store.get(5).ids == [5]
    # Returned metadata is a copy.
    got.metadata[0]["g"] = "changed"
    assert store.get([800]).metadata == [{"g": 10}]
    assert 800 in store and np.int64(5) in store and 7 not in store and 9999 not in store
    assert "5" not in store and 5.0 not in store and None not in store
    assert store.ids() == model.ids()


# ----------------------------------------------------------------------------- threads


@pytest.mark.kinds("Flat", "HNSW", "IVF128")
def test_concurrent_filtered_search_with_writes(make_store):
    """Searching threads with filters while one thread deletes and upserts: no exception,
    results always match the filter and never hold an id deleted before the search began."""
    store, model, x, q = filled(make_store, "L2")
    y, _ = dataset(n=600, n_queries=0, seed=12)
    deleted: set[int] = set()
    deleted_lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []
    specs = [{"side": "pos"}, {"rank": {"$lt": 200}}, {"lang": {"$in": ["en", "de"]}, "year": {"$gte": 2010}},
             {"$not": {"flag": True}}, {"rank": {"$gte": 0}}]
    searches = [0]

    def writer() -> None:
        rng = np.random.default_rng(13)
        live = list(range(N))
        try:
            for step in range(30):
                rng.shuffle(live)
                doomed, live = live[:60], live[60:]
                store.delete(doomed)
                with deleted_lock:
                    deleted.update(doomed)
                up = live[:20]
                store.upsert(up, y[step * 20 : step * 20 + 20],
                             [{"id": i, "rank": 10_000 + i, "side": "pos"} for i in up])
                time.sleep(0.002)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)
        finally:
            stop.set()

    def reader(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                spec = specs[int(rng.integers(len(specs)))]
                qi = int(rng.integers(len(q)))
                with deleted_lock:
                    gone = set(deleted)
                dist, ids, meta = store.search(q[qi], 10, filter=spec)
                assert len(ids) == 10 == len(meta) == len(dist)
                assert not set(ids) & gone, set(ids) & gone
                for i, m in zip(ids, meta):
                    assert m["id"] == i and matches(m, spec), (i, m, spec)
                searches[0] += 1
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(3)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[0]
    assert searches[0] > 0
    assert len(store) == N - len(deleted)


# ----------------------------------------------------------------------------- real data


