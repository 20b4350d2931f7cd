"""close(), ``closed`` and ``with``, the same on every backend: a closed store refuses every
use with StoreClosedError (a ValueError), closing twice does nothing, a ``with`` block
closes its store at its end, also when the block raises, and close waits for a search under
way, which then finishes."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from parag.errors import IdNotFoundError, StoreClosedError

D = 8
X = np.eye(D, dtype=np.float32)

USES = {
    "len": len,
    "in": lambda s: 0 in s,
    "ids": lambda s: s.ids(),
    "get": lambda s: s.get([0]),
    "search": lambda s: s.search(X[0], k=2),
    "add": lambda s: s.add(X[0]),
    "upsert": lambda s: s.upsert([0], X[0]),
    "delete": lambda s: s.delete([0]),
    "update_metadata": lambda s: s.update_metadata([0], {"a": 1}),
    "dimension": lambda s: s.dimension,
    "params": lambda s: s.params,
}


def test_a_closed_store_refuses_every_use(make_store):
    with pytest.raises(IdNotFoundError), make_store(D) as store:
        assert not store.closed
        assert store.add(X, ids=list(range(D))) == list(range(D))
        assert store.search(X[3], k=1).ids == [3]
        store.get([D])  # unknown: the block ends with an error, and closes the store all the same
    assert store.closed and "closed" in repr(store)
    for name, use in USES.items():
        with pytest.raises(StoreClosedError, match="closed") as raised:
            use(store)
        assert isinstance(raised.value, ValueError), name
    store.close()  # again: nothing to do
    assert store.closed


def test_close_waits_for_a_search_under_way(make_store):
    """A search held midway (``make_store.gated``) while another thread closes the store:
    close waits for it, the search finishes with its answer, and later uses raise
    StoreClosedError. Every wait is bounded; none is used to order the threads."""
    store = make_store(D)
    store.add(X, ids=list(range(D)))
    inside, release = threading.Event(), threading.Event()

    def gate() -> None:
        if not inside.is_set():  # the first call holds the search; later ones pass
            inside.set()
            assert release.wait(60), "the test never released the search"

    search_kwargs = make_store.gated(store, gate)
    outcome: dict[str, object] = {}

    def search() -> None:
        try:
            outcome["ids"] = store.search(X[3], k=1, **search_kwargs).ids
        except Exception as e:  # noqa: BLE001 - checked below
            outcome["error"] = e

    searcher = threading.Thread(target=search, daemon=True)
    closer = threading.Thread(target=store.close, daemon=True)
    searcher.start()
    try:
        assert inside.wait(60), "the search never reached its gate"
        closer.start()
        closer.join(0.5)
        assert closer.is_alive(), "close returned while a search was under way"
    finally:
        release.set()
    searcher.join(60)
    closer.join(60)
    assert not searcher.is_alive() and not closer.is_alive(), "a thread is stuck"
    assert outcome == {"ids": [3]}
    assert store.closed
    with pytest.raises(StoreClosedError):
        store.search(X[3], k=1)
