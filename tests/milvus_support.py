"""The Milvus server of a test session, and the pool of collections its stores reuse.

Creating, indexing and loading a collection costs ~3 s on the test server, so stores of the
same configuration share collections: :meth:`CollectionPool.store` hands out one that no
live store uses, emptied (by a delete of every row) when it was used before. A collection
goes back to the pool when its store is garbage collected.
"""

from __future__ import annotations

import weakref
from collections import defaultdict
from typing import Any

import pytest

from tests.milvus_server import Server, ServerUnavailable, milvus_server


class CollectionPool:
    def __init__(self) -> None:
        self.server: Server | None = None
        self._free: dict[tuple, list[str]] = defaultdict(list)
        self._made = 0

    def store(self, dimension: int, index_type: str, metric: str, **params: Any) -> Any:
        from parag.vectorstore import MilvusVectorStore

        if self.server is None:
            raise RuntimeError("no Milvus server: take the milvus_server fixture first")
        key = (dimension, index_type, metric, tuple(sorted(params.items())))
        if self._free[key]:
            name = self._free[key].pop()
            self._empty(name)
        else:
            name = f"pool_{self._made}"
            self._made += 1
        store = MilvusVectorStore(dimension, index_type, metric, uri=self.server.uri, token=self.server.token,
                                  collection=name, **params)
        weakref.finalize(store, self._free[key].append, name)
        return store

    def _empty(self, name: str) -> None:
        from pymilvus import MilvusClient

        assert self.server is not None
        client = MilvusClient(uri=self.server.uri, token=self.server.token)
        try:
            client.delete(name, filter="id >= 0")
            client.query(name, filter="id < 0", output_fields=["id"], consistency_level="Strong")
        finally:
            client.close()


POOL = CollectionPool()


@pytest.fixture(scope="session")
def milvus_server_session():
    """The session's server; every test that takes it is skipped where it cannot start."""
    try:
        import pymilvus  # noqa: F401
    except ImportError:
        pytest.skip("pymilvus is not installed (pip install 'parag[milvus,milvus-server]')")
    try:
        with milvus_server() as server:
            POOL.server = server
            yield server
    except ServerUnavailable as e:
        pytest.skip(f"no Milvus server: {e}")
    finally:
        POOL.server = None


@pytest.fixture
def milvus(milvus_server_session: Server) -> Server:
    """The session's server (a test's stores come from :data:`POOL`)."""
    return milvus_server_session
