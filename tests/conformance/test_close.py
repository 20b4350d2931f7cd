"""close(), ``closed`` and ``with``, the same on every backend: a closed store refuses every
use with StoreClosedError (a ValueError), closing twice does nothing, and a ``with`` block
closes its store at its end, also when the block raises."""

from __future__ import annotations

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
