"""The Milvus server of a test session, and the pool of collections its stores reuse.

Creating, indexing and loading a collection costs ~3 s on the test server, so stores of the
same configuration share collections. A store makes its collection on its first write (its
ids decide the key's type), through ``milvus_schema.create_collection``; during the session
that function is :meth:`CollectionPool.create`, which renames a collection of the same
configuration and id kind that no live store uses, emptied (a delete of every row), to the
new name, and creates one only where none is free. Renaming is a real server operation on
a collection made by the real ``create_collection``: the store's code paths are the same.
A store's collection goes back to the pool when the store is garbage collected.
"""

from __future__ import annotations

import gc
import weakref
from collections import defaultdict
from typing import Any

import pytest

from tests.milvus_server import Server, ServerUnavailable, milvus_server


class CollectionPool:
    def __init__(self) -> None:
        self.server: Server | None = None
        self._free: dict[tuple, list[str]] = defaultdict(list)
        self._returned: list[str] = []
        self._made = 0
        self._create: Any = None
        self.client: Any = None  # one connection for every store of the session

    def store(self, dimension: int, index_type: str, metric: str, **params: Any) -> Any:
        """An empty store on a fresh collection name (its collection comes from the pool)."""
        from parag.vectorstore import MilvusVectorStore

        if self.server is None:
            raise RuntimeError("no Milvus server: take the milvus_server fixture first")
        name = f"pool_{self._made}"
        self._made += 1
        store = MilvusVectorStore(dimension, index_type, metric, uri=self.server.uri, client=self.client,
                                  collection=name, **params)
        weakref.finalize(store, self._returned.append, name)
        return store

    def create(self, client: Any, name: str, config: dict[str, Any], kind: Any, consistency: str) -> None:
        """``create_collection``, reusing a free collection of the same configuration."""
        key = _key(config, kind)
        self._take_back(client)
        if not self._free[key]:
            gc.collect()  # stores of finished tests (pymilvus keeps reference cycles)
            self._take_back(client)
        if not self._free[key]:
            self._create(client, name, config, kind, consistency)
            return
        old = self._free[key].pop()
        client.delete(old, filter='id != ""' if kind.name == "str" else "id >= 0")
        client.query(old, filter="seq < 0", output_fields=["id"], consistency_level="Strong")
        client.rename_collection(old, name)

    def _take_back(self, client: Any) -> None:
        from parag.vectorstore.milvus_schema import SEARCH_PROPERTY, read_config

        while self._returned:
            name = self._returned.pop()
            if not client.has_collection(name):
                continue
            if SEARCH_PROPERTY in client.describe_collection(name).get("properties", {}):
                client.drop_collection(name)  # tuned: a new collection has no such property
            else:
                self._free[_key(read_config(client, name), None)].append(name)


def _key(config: dict[str, Any], kind: Any) -> tuple:
    kind = kind or config["id_kind"]
    params = {n: v for n, v in config["params"].items() if n not in ("ef_search", "nprobe")}
    return config["dimension"], config["index_type"], config["metric"], tuple(sorted(params.items())), kind.name


POOL = CollectionPool()


@pytest.fixture(scope="session")
def milvus_server_session():
    """The session's server; every test that takes it is skipped where it cannot start."""
    try:
        import pymilvus  # noqa: F401
    except ImportError:
        pytest.skip("pymilvus is not installed (pip install 'parag[milvus,milvus-server]')")
    import parag.vectorstore.milvus_schema as schema

    try:
        with milvus_server() as server:
            from pymilvus import MilvusClient

            POOL.server, POOL._create = server, schema.create_collection
            POOL.client = MilvusClient(uri=server.uri, token=server.token)
            schema.create_collection = POOL.create
            try:
                yield server
            finally:
                schema.create_collection = POOL._create
                POOL.client.close()
    except ServerUnavailable as e:
        pytest.skip(f"no Milvus server: {e}")
    finally:
        POOL.server = None


@pytest.fixture
def milvus(milvus_server_session: Server) -> Server:
    """The session's server (a test's stores come from :data:`POOL`)."""
    return milvus_server_session
