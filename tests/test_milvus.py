"""MilvusVectorStore beyond the conformance suite: the server's bad inputs (unreachable, wrong
token, a collection of another configuration or id kind), filters that try to inject, string
ids with quotes and backslashes, documents with ``like``'s wildcards, filters evaluated by parag
(no exact server expression), callables and ``rerank`` refused, save/load (not offered; tune:
tests/test_milvus_tune.py), parameter ranges (the FAISS store's; the server's maxima), and parag.migrate /
`parag migrate` both ways. Runs on the session's real Milvus server (tests/milvus_server.py);
skipped where it cannot start."""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest

import parag
from parag.errors import (
    CollectionMismatchError,
    DuplicateIdError,
    InvalidArgumentError,
    InvalidFilterError,
    InvalidMetadataError,
    InvalidTypeError,
    ParagError,
    ServerAuthenticationError,
    ServerConnectionError,
    UnsupportedOperationError,
)
from parag.vectorstore import FAISSVectorStore
from tests.conftest import clustered, oracle
from tests.milvus_server import free_port
from tests.milvus_support import POOL

pytest.importorskip("pymilvus")
from parag.vectorstore import MilvusVectorStore  # noqa: E402
from parag.vectorstore.milvus_collection import BATCH_ROWS  # noqa: E402


def test_unreachable_server_is_a_connection_error():
    start = time.monotonic()
    with pytest.raises(ServerConnectionError) as caught:
        MilvusVectorStore(4, uri=f"http://127.0.0.1:{free_port()}", timeout=1, collection="x")
    assert isinstance(caught.value, ConnectionError) and isinstance(caught.value, ParagError)
    assert "127.0.0.1" in str(caught.value) and time.monotonic() - start < 20


def test_milvus_lite_files_and_addresses_without_a_scheme_are_refused(tmp_path):
    with pytest.raises(UnsupportedOperationError, match="Milvus Lite"):
        MilvusVectorStore(4, uri=str(tmp_path / "milvus.db"), collection="x")
    with pytest.raises(InvalidArgumentError, match="scheme"):
        MilvusVectorStore(4, uri="127.0.0.1:19530", collection="x")
    assert not list(tmp_path.iterdir())  # no file made


def test_a_client_that_is_not_a_milvus_client_is_refused():
    for client in (object(), "http://127.0.0.1:19530"):
        with pytest.raises(InvalidTypeError, match=f"client must be a pymilvus.MilvusClient.*got {type(client).__name__}"):
            MilvusVectorStore(4, collection="x", client=client)


def test_wrong_token_is_refused(milvus):
    with pytest.raises(ServerAuthenticationError, match="token"):
        MilvusVectorStore(4, uri=milvus.uri, token="root:wrong", collection="never_made")
    assert not POOL.client.has_collection("never_made")  # nothing created


def test_collection_of_another_configuration_is_refused(milvus):
    store = POOL.store(8, "HNSW", "cosine", M=16)  # the configuration of the migration test's (a pooled collection)
    store.add(np.ones((2, 8)))
    name = store.collection
    for dimension, index_type, metric, params in [(9, "HNSW", "cosine", {"M": 16}), (8, "HNSW", "L2", {"M": 16}),
                                                  (8, "Flat", "cosine", {}), (8, "HNSW", "cosine", {"M": 8})]:
        with pytest.raises(CollectionMismatchError, match=name):
            MilvusVectorStore(dimension, index_type, metric, uri=milvus.uri, token=milvus.token, collection=name, **params)
    with pytest.raises(CollectionMismatchError, match="id_type 'int' \\(asked 'str'\\)"):
        MilvusVectorStore(8, "HNSW", "cosine", uri=milvus.uri, token=milvus.token, collection=name, id_type="str", M=16)
    again = MilvusVectorStore.open(name, uri=milvus.uri, token=milvus.token)
    assert (again.dimension, again.index_type, again.metric, again.params["M"]) == (8, "HNSW", "cosine", 16)
    assert again.ids() == [0, 1] and again.add(np.ones(8)) == [2]  # generated ids go on


def test_parameter_ranges_are_the_faiss_stores_and_the_servers_limit_is_named():
    import parag.vectorstore.milvus_schema as schema
    from parag.vectorstore.kinds import KINDS

    for index_type, table in schema.PARAMS.items():
        faiss_ranges = {p.name: (p.low, p.high) for p in KINDS[index_type].params_table if p.name in table}
        assert {n: (low, high) for n, (_, low, high, _) in table.items()} == faiss_ranges
    for index_type, params, refused in [("HNSW", {"M": 512}, r"M must be an int in \[2, 256\], got 512"),
                                        ("HNSW", {"ef_search": 2**16 + 1}, "ef_search must be an int in")]:
        for store_class in (FAISSVectorStore, MilvusVectorStore):  # checked before connecting
            with pytest.raises(InvalidArgumentError, match=refused):
                store_class(4, index_type, **params)
    FAISSVectorStore(4, "IVFFlat", nlist=2**16 + 1)
    with pytest.raises(InvalidArgumentError, match="nlist must be at most 65536 on Milvus .*server's limit.*1048576"):
        MilvusVectorStore(4, "IVFFlat", nlist=2**16 + 1)


def test_search_parameters_above_the_servers_maxima_search_at_them(milvus):
    x, q = clustered(200, 8, seed=5), clustered(3, 8, seed=6)
    hnsw, ivf = POOL.store(8, "HNSW", "cosine", M=16, ef_search=2**16), POOL.store(8, "IVFFlat", "L2", nlist=16)
    for store, wide, widest in [(hnsw, {"ef_search": 40_000}, {"ef_search": 32_768}),
                                (ivf, {"nprobe": 100_000}, {"nprobe": 16})]:
        store.add(x)
        assert store.search(q, k=5, **wide).ids == store.search(q, k=5, **widest).ids
    assert hnsw.params["ef_search"] == 2**16 and len(hnsw.search(q[0], k=5).ids) == 5


def test_filters_are_escaped_and_callables_refused(milvus):
    store = POOL.store(2, "Flat", "L2")
    tricky = ['x" or 1==1 or "', "back\\slash", "quote'single", "new\nline", "é ü 中文", '\\" or id >= 0 or "']
    store.add(np.arange(2 * (len(tricky) + 2)).reshape(-1, 2), [{"s": t} for t in tricky] + [{"s": "plain"}, {}])
    for i, t in enumerate(tricky):
        assert store.search([0, 0], k=20, filter={"s": t}).ids == [i], t
        assert store.search([0, 0], k=20, filter={"s": {"$in": [t]}}).ids == [i], t
        assert sorted(store.search([0, 0], k=20, filter={"s": {"$ne": t}}).ids) == [j for j in range(8) if j != i]
    assert store.search([0, 0], k=20, filter={'we"ird key': 1}).ids == []
    for bad in [lambda m: True, {"$or": [{"s": "plain"}, lambda m: True]}]:
        with pytest.raises(InvalidFilterError, match="callable"):
            store.search([0, 0], k=3, filter=bad)
    # No exact expression on the server: evaluated by parag, exactly.
    assert store.search([0, 0], k=20, filter={"s": None}).ids == []
    assert store.get(filter={"s": {"$in": [None, "plain"]}}).ids == [6]
    assert len(store) == 8


def test_string_ids_with_quotes_and_backslashes(milvus):
    store = POOL.store(8, "Flat", "L2")  # test_records' string-id configuration (a pooled collection)
    ids = ['a"b', "c\\d", "e'f", '\\" or id != "', "é中", "x" * 512]
    assert store.add(np.arange(48).reshape(6, 8), ids=ids, documents=[f"doc {i}" for i in ids]) == ids
    assert store.ids() == ids and all(i in store for i in ids) and '"' not in store
    assert store.get(ids[::-1]).documents == [f"doc {i}" for i in ids[::-1]]
    with pytest.raises(DuplicateIdError):
        store.add(np.ones((1, 8)), ids=['a"b'])
    assert store.delete(['\\" or id != "']) == 1 and len(store) == 5
    store.upsert(["c\\d"], [[9] * 8], [{"u": 1}])
    assert store.ids()[-1] == "c\\d" and store.get(["c\\d"]).metadata == [{"u": 1}]
    with pytest.raises(InvalidArgumentError, match="at most 512"):
        store.add(np.ones((1, 8)), ids=["y" * 513])
    assert len(store) == 5


def test_documents_with_like_wildcards_are_matched_exactly(milvus):
    store = POOL.store(2, "Flat", "L2")  # the translation is the same whatever the index
    docs = ["100% sure", "1000 sure", "a_b", "axb", 'quote " and \\ back', None, ""]
    store.add(np.arange(14).reshape(7, 2), documents=docs)
    for text, want in [("0%", [0]), ("_", [2]), ("a_b", [2]), ('" and \\', [4]), ("", [0, 1, 2, 3, 4, 6])]:
        assert store.get(filter={"$document": {"$contains": text}}).ids == want, text
        assert sorted(store.search([0, 0], k=10, filter={"$document": {"$contains": text}}).ids) == want
    assert store.get(filter={"$document": {"$not_contains": "sure"}}).ids == [2, 3, 4, 5, 6]
    with pytest.raises(InvalidArgumentError, match="65535 bytes"):
        store.add(np.ones(2), documents="é" * 40_000)
    assert len(store) == 7


def test_rerank_does_not_apply(milvus):
    store = POOL.store(2, "Flat", "L2")
    store.add(np.eye(2))
    with pytest.raises(InvalidArgumentError, match="rerank"):
        store.search([1, 0], k=1, rerank=4)


def test_duplicate_add_is_refused_and_nothing_written(milvus):
    store = POOL.store(2, "HNSW", "cosine", M=16)  # test_oracle's configuration (a pooled collection)
    store.add([[1, 0], [0, 1], [1, 1]], ids=[5, 6, 7])
    with pytest.raises(DuplicateIdError, match="7"):
        store.add(np.ones((2, 2)), ids=[8, 7])
    assert store.ids() == [5, 6, 7] and 8 not in store


def test_an_add_that_fails_part_way_leaves_no_id_to_be_generated_again(milvus, monkeypatch):
    # Writes are not transactions (docs/milvus.md): a failure after the first batch leaves it
    # stored. The ids it took must not be generated again, or Milvus keeps two rows per id.
    store = POOL.store(4, "Flat", "L2")
    first = store.add(np.ones((2, 4)))
    real, calls = POOL.client.insert, []

    def second_batch_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise ConnectionError("injected: the connection dropped")
        return real(*args, **kwargs)

    monkeypatch.setattr(POOL.client, "insert", second_batch_fails)
    with pytest.raises(ConnectionError, match="injected"):
        store.add(np.zeros((BATCH_ROWS + 10, 4)))
    monkeypatch.undo()
    stored = store.ids()
    assert stored == first + list(range(2, 2 + BATCH_ROWS))  # the first batch is there
    new = store.add(np.ones((3, 4)))
    assert not set(new) & set(stored)
    assert sorted(store.ids()) == sorted(set(store.ids())) and len(store) == len(stored) + 3


def test_save_and_load_are_not_offered(milvus, tmp_path):
    store = POOL.store(3, "Flat", "L2")
    for call in (lambda: store.save(tmp_path / "s"), lambda: MilvusVectorStore.load(tmp_path / "s"),
                 lambda: store.load(tmp_path / "s")):
        with pytest.raises(UnsupportedOperationError, match="migrate"):
            call()
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("metric", ["L2", "IP", "cosine"])
def test_scores_equal_faiss(milvus, metric):
    x, q = clustered(300, 16, seed=3), clustered(5, 16, seed=4)
    faiss_store = FAISSVectorStore(16, "Flat", metric)
    milvus_store = POOL.store(16, "Flat", metric)
    faiss_store.add(x)
    parag.migrate(faiss_store, milvus_store, batch_size=128, progress=False)
    a, b = faiss_store.search(q, k=10), milvus_store.search(q, k=10)
    np.testing.assert_allclose(a.distances, b.distances, atol=1e-4, rtol=1e-5)
    _, truth = oracle(x, q, 10, metric)
    assert b.ids == truth.tolist()


def test_migrate_both_ways_idempotent(milvus, tmp_path):
    from tests.cli_support import invoke

    x = clustered(500, 8, seed=5)
    source = FAISSVectorStore(8, "HNSW", "cosine", M=16)
    source.add(x, [{"n": i, "even": i % 2 == 0} for i in range(500)])
    source.delete([0, 499])
    dest = POOL.store(8, "HNSW", "cosine", M=16)
    assert parag.migrate(source, dest, batch_size=100, progress=False) == 498
    assert parag.migrate(source, dest, batch_size=1000, progress=False) == 498  # rerun: nothing doubled
    assert len(dest) == 498 and dest.ids() == source.ids()
    assert dest.get([7, 8]).metadata == [{"n": 7, "even": False}, {"n": 8, "even": True}]
    back = FAISSVectorStore(8, "HNSW", "cosine", M=16)
    parag.migrate(dest, back, progress=False)
    got, want = back.get(source.ids(), include_vectors=True), source.get(source.ids(), include_vectors=True)
    assert got.metadata == want.metadata and np.allclose(got.vectors, want.vectors, atol=1e-6)
    # The command line: a directory into a collection and back.
    source.save(tmp_path / "src")
    url = f"{milvus.uri}#cli_copy"
    invoke("migrate", tmp_path / "src", url, "--token", milvus.token, "--json")
    invoke("migrate", url, tmp_path / "dst", "--token", milvus.token, "--json")
    assert FAISSVectorStore.load(tmp_path / "dst").ids() == source.ids()
    # `parag tune` on the collection (498 rows: searched exhaustively, nothing to tune), and on
    # a larger one, whose value it keeps in the collection; --dry-run is for directories.
    assert "nothing to tune" in invoke("tune", url, "--token", milvus.token).stdout
    big = POOL.store(8, "HNSW", "L2", M=16)
    big.add(clustered(1100, 8, seed=6))
    tuned = json.loads(invoke("tune", f"{milvus.uri}#{big.collection}", "--token", milvus.token, "--json").stdout)
    assert tuned["param"] == "ef_search" and tuned["saved"] and tuned["reached"]
    with MilvusVectorStore.open(big.collection, uri=milvus.uri, token=milvus.token) as reopened:
        assert reopened.params["ef_search"] == tuned["value"]
    assert "--dry-run is for store directories" in invoke("tune", url, "--dry-run", code=2).output
    MilvusVectorStore.open("cli_copy", uri=milvus.uri, token=milvus.token).drop()


def test_metadata_over_milvus_json_limit_is_refused_before_anything_is_written(milvus):
    store = POOL.store(2, "Flat", "L2")
    x = np.random.default_rng(0).standard_normal((4097, 2)).astype(np.float32)
    big = {"blob": "é" * 33_000}  # 66,011 bytes of UTF-8 JSON: the server's limit counts bytes
    metadata = [{"i": i} for i in range(4096)] + [big]  # the big one in the second batch
    with pytest.raises(InvalidMetadataError, match=r"metadata\[4096\] is 66011 bytes.*65536"):
        store.add(x, metadata)
    assert len(store) == 0
    store.add(x[:2], [{"i": 0}, {"i": 1}])
    for call in (lambda: store.upsert([0, 1], x[:2], [{"i": 0}, big]),
                 lambda: store.update_metadata([1], [big])):
        with pytest.raises(InvalidMetadataError, match=r"metadata\[\d\] is 66011 bytes"):
            call()
    assert store.get([0, 1]).metadata == [{"i": 0}, {"i": 1}]
    store.update_metadata([1], [{"blob": "x" * 65_525}])  # 65,536 bytes: the most it takes
    assert len(store.get([1]).metadata[0]["blob"]) == 65_525


def test_odd_ids_and_dimensions_as_the_faiss_store_takes_them(milvus):
    store = POOL.store(np.int64(2), "Flat", "L2")  # a numpy int dimension, as FAISSVectorStore takes
    assert store.dimension == 2 and type(store.dimension) is int
    store.add(np.eye(2, dtype=np.float32), ids=["a", "b"])
    assert "\ud800" not in store and "a" in store  # not an id (not valid Unicode): False, as in FAISS


@pytest.mark.parametrize(("index_type", "wrong", "takes"), [("HNSW", "nprobe", "['ef_search']"),
                                                          ("IVFFlat", "ef_search", "['nprobe']"),
                                                          ("Flat", "ef_search", "none")])
def test_a_search_parameter_that_does_not_apply_names_those_that_do(milvus, index_type, wrong, takes):
    store = POOL.store(2, index_type, "L2")  # (checked before any request: no collection needed)
    with pytest.raises(InvalidArgumentError, match=rf"{wrong} does not apply.*search parameters it takes: {re.escape(takes)}$"):
        store.search(np.ones(2, np.float32), 1, **{wrong: 8})
