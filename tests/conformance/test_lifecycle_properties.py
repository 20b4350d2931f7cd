"""Property tests (issues 3 and 9): random interleavings of add / delete / upsert /
update_metadata / compact / save+load / get and delete by filter, with int or string ids and
documents, on every kind of store, each followed by a random filtered search, equal a
pure-Python model and the numpy oracle. Failing calls (duplicate or unknown ids) must raise
the documented error and change nothing.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parag.errors import DuplicateIdError, IdNotFoundError
from tests.lifecycle_model import Model, check_search, matches
from tests.strategies import DOCS, FILTERS, METADATA

D = 4
SEEDS = st.integers(0, 40)  # a small pool: equal vectors (ties) happen
IDS = st.integers(0, 50)  # a string store uses str_id(i) for each


def str_id(i: int) -> str:
    return f"doc-{i}"


def vec(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(D).astype(np.float32)


# ----------------------------------------------------------------------------- strategies

OPS = st.one_of(
    st.tuples(st.just("add"), st.lists(st.tuples(SEEDS, METADATA, DOCS), min_size=1, max_size=10),
              st.one_of(st.none(), st.lists(IDS, min_size=1, max_size=10))),
    st.tuples(st.just("delete"), st.lists(IDS, max_size=6), st.booleans()),
    st.tuples(st.just("upsert"), st.lists(st.tuples(IDS, SEEDS, METADATA, DOCS), min_size=1, max_size=5)),
    st.tuples(st.just("update_metadata"), st.lists(st.tuples(IDS, METADATA), min_size=1, max_size=5)),
    st.tuples(st.just("compact")),
    st.tuples(st.just("save_load")),
    st.tuples(st.just("delete_where"), FILTERS),
    st.tuples(st.just("get_where"), FILTERS, st.one_of(st.none(), st.integers(0, 5)), st.integers(0, 3)),
)


# ----------------------------------------------------------------------------- the test


def apply(store: Any, model: Model, op: tuple, tmp: Path, persistent: bool, key=int) -> Any:
    """Apply ``op`` to the store and the model; check errors the model predicts. A
    save_load of a store that does not save (``persistent`` False) does nothing. ``key``
    turns the op's int ids into the store's ids (``str_id`` for a string store)."""
    kind = op[0]
    if kind == "add":
        items, ids = op[1], op[2]
        if ids is not None:
            ids = [key(i) for i in ids[: len(items)]]
            items = items[: len(ids)]
        x = np.stack([vec(s) for s, _, _ in items])
        meta = [m for _, m, _ in items]
        docs = [d for _, _, d in items]
        if ids is not None and (len(set(ids)) < len(ids) or set(ids) & set(model.vectors)):
            with pytest.raises(DuplicateIdError):
                store.add(x, meta, ids=ids, documents=docs)
            return store
        got = store.add(x, meta, ids=ids, documents=docs)
        if ids is not None:
            assert got == ids
        elif key is int:
            assert got == list(range(model.next_id, model.next_id + len(items)))
        else:  # a string store's generated ids: new uuid4 hex strings
            assert len(set(got)) == len(got) and not set(got) & model.ever and all(len(i) == 32 for i in got)
        model.add(got, x, [m or {} for m in meta], docs)
    elif kind == "delete":
        ids, missing_ok = [key(i) for i in op[1]], op[2]
        unknown = set(ids) - set(model.vectors)
        if len(set(ids)) < len(ids):
            with pytest.raises(DuplicateIdError):
                store.delete(ids, missing_ok=missing_ok)
        elif unknown and not missing_ok:
            with pytest.raises(IdNotFoundError) as info:
                store.delete(ids)
            assert any(str(i) in str(info.value) for i in unknown)
        else:
            known = [i for i in ids if i in model.vectors]
            assert store.delete(ids, missing_ok=missing_ok) == len(known)
            model.delete(known)
    elif kind == "upsert":
        ids = [key(i) for i, _, _, _ in op[1]]
        x = np.stack([vec(s) for _, s, _, _ in op[1]])
        meta = [m for _, _, m, _ in op[1]]
        docs = [d for _, _, _, d in op[1]]
        if len(set(ids)) < len(ids):
            with pytest.raises(DuplicateIdError):
                store.upsert(ids, x, meta, documents=docs)
            return store
        assert store.upsert(ids, x, meta, documents=docs) == ids
        model.upsert(ids, x, [m or {} for m in meta], docs)
    elif kind == "update_metadata":
        ids = [key(i) for i, _ in op[1]]
        meta = [m for _, m in op[1]]
        if len(set(ids)) < len(ids):
            with pytest.raises(DuplicateIdError):
                store.update_metadata(ids, meta)
        elif set(ids) - set(model.vectors):
            with pytest.raises(IdNotFoundError):
                store.update_metadata(ids, meta)
        else:
            store.update_metadata(ids, meta)
            model.update_metadata(ids, [m or {} for m in meta])
    elif kind == "compact":
        store.compact()
    elif kind == "save_load" and persistent:
        store.save(tmp / "s")
        store = type(store).load(tmp / "s")
    elif kind == "delete_where":
        doomed = model.where(op[1])
        assert store.delete(filter=op[1]) == len(doomed)
        model.delete(doomed)
    elif kind == "get_where":
        spec, limit, offset = op[1:]
        want = model.where(spec, limit, offset)
        got = store.get(filter=spec, limit=limit, offset=offset)
        assert got.ids == want
        assert got.metadata == [model.meta[i] for i in want]
        assert got.documents == [model.documents[i] for i in want]
    return store


def check_contents(store: Any, model: Model, key=int) -> None:
    ids = model.ids()
    assert len(store) == len(ids)
    assert store.ids() == ids
    for i in range(52):
        assert (key(i) in store) == (key(i) in model.vectors)
    if ids:
        got = store.get(ids, include_vectors=True)
        assert got.metadata == [model.meta[i] for i in ids]
        assert got.documents == [model.documents[i] for i in ids]
        want = np.stack([model.vectors[i] for i in ids])
        if model.metric == "cosine":
            want = want / np.linalg.norm(want, axis=1, keepdims=True)
        np.testing.assert_allclose(got.vectors, want, rtol=1e-5, atol=1e-6)


LIFECYCLES = st.lists(OPS, min_size=1, max_size=14)
SEARCHES = st.lists(st.tuples(SEEDS, st.integers(1, 12), st.one_of(st.none(), FILTERS)), min_size=1, max_size=14)


# IVF1 trains once it holds 39 vectors (tombstones included) and then probes its only list:
# exact before and after training, through deletes and compaction. HNSW goes through the
# same interleavings (tombstones, compaction at half dead, round trips): never a hole, a
# deleted id, a non-matching hit or a wrong score.
@pytest.mark.kinds("Flat", "IVF1", "HNSW")
@pytest.mark.parametrize("metric", ["L2", "IP", "cosine"])
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                  HealthCheck.function_scoped_fixture])
@given(ops=LIFECYCLES, searches=SEARCHES)
def test_random_lifecycle_matches_model(make_store, metric, ops, searches):
    run_lifecycle(make_store(D, metric), ops, searches, exact=make_store.exact, persistent=make_store.persistent)


@pytest.mark.kinds("Flat", "IVF1", "HNSW")
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                  HealthCheck.function_scoped_fixture])
@given(ops=LIFECYCLES, searches=SEARCHES)
def test_random_lifecycle_string_ids_matches_model(make_store, ops, searches):
    """The same interleavings on a string store: its first add gives string ids (an add
    without ids on an empty store would make it an int store)."""
    store = make_store(D, "cosine")
    store.add(vec(0), {"g": 1}, ids=[str_id(99)], documents="seed beta")
    store.delete([str_id(99)])
    run_lifecycle(store, ops, searches, make_store.exact, make_store.persistent, key=str_id)


def run_lifecycle(store: Any, ops: list, searches: list, exact: bool, persistent: bool, key=int) -> None:
    metric = store.metric
    model = Model(metric)
    model.ever = {key(99)} if key is not int else set()
    kw = {"exact": exact, "min_recall": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        for n, op in enumerate(ops):
            store = apply(store, model, op, Path(tmp), persistent, key)
            check_contents(store, model, key)
            seed, k, spec = searches[n % len(searches)]
            check_search(store, model, vec(seed + 100), k, spec, **kw)
        for seed, k, spec in searches:
            check_search(store, model, np.stack([vec(seed + 100), vec(seed + 200)]), k, spec, **kw)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=FILTERS, metas=st.lists(METADATA, min_size=1, max_size=30))
def test_random_filters_match_model(make_store, spec, metas):
    """The filter language on its own: the set a filter selects equals the model's."""
    store = make_store(D)
    docs = [["alpha beta", None, "Gamma ray"][i % 3] for i in range(len(metas))]
    store.add(np.stack([vec(i) for i in range(len(metas))]), metas, documents=docs)
    metas = [m or {} for m in metas]
    want = {i for i, m in enumerate(metas) if matches(m, spec, docs[i])}
    assert set(store.search(vec(99), len(metas), filter=spec).ids) == want
