"""Compressed storage (float16, sq8, pq) with exact re-ranking, against the numpy oracle:
scores are the exact metric, recall comes back with ``rerank``, and every operation (delete,
upsert, filters, training, get, tune, save/load/mmap) works on the float32 copy."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import faiss
import numpy as np
import pytest

from parag import FAISSVectorStore
from parag.errors import CorruptStoreError, InvalidArgumentError, ReadOnlyStoreError
from parag.vectorstore.kinds.storage import TRAIN_AT, default_pq_m
from tests.checks import assert_exact, data
from tests.conftest import oracle, recall_at_k
from tests.crafting import data_file, manifest_of, reseal

D = 16
N = TRAIN_AT["pq"] + 16  # enough to train every storage
COMBOS = [
    ("Flat", "float16"), ("Flat", "sq8"),
    ("IVFFlat", "float16"), ("IVFFlat", "sq8"), ("IVFFlat", "pq"),
    ("HNSW", "float16"), ("HNSW", "sq8"), ("HNSW", "pq"),
]
PARAMS = {"Flat": {}, "IVFFlat": {"nlist": 16}, "HNSW": {"M": 16}}
BASE, QUERIES = data(N, D, 20, seed=3)


def build(index_type: str, storage: str, metric: str = "L2", n: int = N, **params: int) -> FAISSVectorStore:
    pq = {"pq_m": 8} if storage == "pq" else {}  # 2 dimensions per code byte, as 384 / 48 is 8
    store = FAISSVectorStore(D, index_type, metric, storage=storage, **{**PARAMS[index_type], **pq, **params})
    store.add(BASE[:n], [{"row": i, "g": i % 100} for i in range(n)])
    return store


def built(index_type: str, storage: str, metric: str = "L2") -> FAISSVectorStore:
    """A trained store, built once per module (tests that change it change a copy)."""
    return _built(index_type, storage, metric)  # one cache key whether metric is given or not


@functools.cache
def _built(index_type: str, storage: str, metric: str) -> FAISSVectorStore:
    return build(index_type, storage, metric)


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("metric", ["L2", "IP", "cosine"])
@pytest.mark.parametrize(("index_type", "storage"), COMBOS)
def test_scores_are_exact_and_rerank_brings_recall_back(index_type: str, storage: str, metric: str) -> None:
    if (index_type, storage, metric) in (("HNSW", "pq", "IP"), ("HNSW", "pq", "cosine")):
        with pytest.raises(InvalidArgumentError, match=r"supports metric \['L2'\] only"):
            build(index_type, storage, metric)
        return
    store = built(index_type, storage, metric)
    assert store.is_trained and store.storage == storage
    base, queries = (unit(BASE), unit(QUERIES)) if metric == "cosine" else (BASE, QUERIES)
    full = {i: base[i] for i in range(N)}
    dist, ids, _ = store.search(queries, k=10)
    for q in range(len(queries)):  # every score is the exact metric of its id (1e-4)
        exact = {i: float(s) for i, s in zip(*_all_scores(full, queries[q], metric))}
        np.testing.assert_allclose(dist[q], [exact[i] for i in ids[q]], rtol=1e-4, atol=1e-4)
        assert dist[q] == sorted(dist[q], reverse=metric != "L2")
    wide = {"nprobe": 16} if index_type == "IVFFlat" else {"ef_search": 512} if index_type == "HNSW" else {}
    _, truth = oracle(base, queries, 10, metric)
    _, ids, _ = store.search(queries, k=10, rerank=50, **wide)
    assert recall_at_k(ids, truth, 10) >= 0.98


def _all_scores(full: dict[int, np.ndarray], q: np.ndarray, metric: str) -> tuple[list[int], np.ndarray]:
    ids = list(full)
    x = np.stack([full[i] for i in ids]).astype(np.float64)
    s = ((x - q) ** 2).sum(1) if metric == "L2" else x @ q
    return ids, s


@pytest.mark.parametrize(("index_type", "storage"), [("HNSW", "sq8"), ("IVFFlat", "pq"), ("Flat", "sq8")])
def test_exact_until_trained(index_type: str, storage: str) -> None:
    n = 300
    store = build(index_type, storage, n=n)
    assert not store.is_trained
    assert_exact(store.search(QUERIES, k=10), BASE[:n], range(n), QUERIES, 10, "L2")


@pytest.mark.parametrize(("index_type", "storage"), COMBOS)
def test_delete_upsert_filter_get_on_the_float32_copy(index_type: str, storage: str) -> None:
    store = copy.copy(built(index_type, storage))
    rng = np.random.default_rng(1)
    dead = rng.choice(N, N // 5, replace=False)  # past every kind's compaction threshold but HNSW's
    store.delete(dead)
    new = rng.standard_normal((5, D)).astype(np.float32) * 3
    store.upsert([0, 1, 2, 10**6, 10**6 + 1], new, [{"row": -1, "g": 1000}] * 5)
    assert np.array_equal(store.get([0, 10**6], include_vectors=True).vectors, new[[0, 3]])
    live = sorted(set(range(3, N)) - set(dead.tolist()))
    assert np.array_equal(store.get(live[:50], include_vectors=True).vectors, BASE[live[:50]])
    # A 1% filter: exact search over the allowed float32 vectors.
    allowed = [i for i in live if i % 100 == 7]
    assert_exact(store.search(QUERIES, k=10, filter={"g": 7}), BASE[allowed], allowed, QUERIES, 10, "L2")
    dist, ids, _ = store.search(QUERIES, k=10, rerank=50, **({"ef_search": 256} if index_type == "HNSW" else {}))
    vectors = {**{i: BASE[i] for i in live}, **{i: v for i, v in zip([0, 1, 2, 10**6, 10**6 + 1], new)}}
    for q in range(len(QUERIES)):
        assert not set(ids[q]) & set(dead.tolist())
        np.testing.assert_allclose(dist[q], [((vectors[i] - QUERIES[q]) ** 2).sum() for i in ids[q]], rtol=1e-4, atol=1e-4)
    store.compact()
    assert np.array_equal(store.get(live[-5:], include_vectors=True).vectors, BASE[live[-5:]])


@pytest.mark.parametrize(("index_type", "storage"), COMBOS)
def test_save_load_and_mmap_round_trip(tmp_path: Path, index_type: str, storage: str) -> None:
    store = copy.copy(built(index_type, storage))
    store.delete([3, 4])
    store.save(tmp_path / "s")
    before = store.search(QUERIES, k=10)
    for mmap in (False, True):
        loaded = FAISSVectorStore.load(tmp_path / "s", mmap=mmap)
        assert (loaded.params, loaded.storage, loaded.is_trained) == (store.params, storage, True)
        assert loaded.search(QUERIES, k=10) == before
        assert loaded.search(QUERIES, k=5, rerank=7) == store.search(QUERIES, k=5, rerank=7)
        assert np.array_equal(loaded.get([5, 6], include_vectors=True).vectors, BASE[[5, 6]])
    with pytest.raises(ReadOnlyStoreError):
        loaded.add(BASE[:1])


def test_tune_works_on_compressed_storage() -> None:
    store = copy.copy(built("HNSW", "sq8"))
    result = store.tune(target_recall=0.9)
    assert result.param == "ef_search" and result.reached and store.params["ef_search"] == result.value


def test_storage_errors_name_what_is_supported() -> None:
    with pytest.raises(InvalidArgumentError, match=r"Flat supports \['float32', 'float16', 'sq8'\]"):
        FAISSVectorStore(D, "Flat", storage="pq")
    with pytest.raises(InvalidArgumentError, match="storage must be one of"):
        FAISSVectorStore(D, "HNSW", storage="int4")
    with pytest.raises(InvalidArgumentError, match="must divide the dimension"):
        FAISSVectorStore(D, "HNSW", storage="pq", pq_m=5)
    with pytest.raises(InvalidArgumentError, match="pq_m does not apply"):
        FAISSVectorStore(D, "HNSW", storage="sq8", pq_m=4)
    with pytest.raises(InvalidArgumentError, match="rerank does not apply"):
        FAISSVectorStore(D, "HNSW", rerank=4)
    store = FAISSVectorStore(D, "HNSW")
    store.add(BASE[:20])
    with pytest.raises(InvalidArgumentError, match="rerank does not apply"):
        store.search(QUERIES[0], rerank=2)
    with pytest.raises(InvalidArgumentError, match="rerank must be an int"):
        FAISSVectorStore(D, "HNSW", storage="sq8").search(QUERIES[0], rerank=0)


def test_default_pq_m_and_params() -> None:
    assert default_pq_m(384) == 48 and default_pq_m(16) == 2
    store = FAISSVectorStore(384, "IVFFlat", storage="pq")
    assert store.params == {"nlist": 256, "nprobe": 64, "storage": "pq", "pq_m": 48, "rerank": 10}
    assert FAISSVectorStore(D, "HNSW", storage="float32").params == FAISSVectorStore(D, "HNSW").params
    assert "storage='sq8'" in repr(FAISSVectorStore(D, "Flat", storage="sq8"))


def test_a_compressed_index_that_disagrees_with_the_manifest_is_refused(tmp_path: Path) -> None:
    store = built("HNSW", "sq8")
    store.save(tmp_path / "s")
    # The same vectors with fp16 codes: a valid FAISS file of the wrong storage.
    other = built("HNSW", "float16")
    reseal(tmp_path / "s", files={"index": faiss.serialize_index(other.faiss_index.base).tobytes()})
    with pytest.raises(CorruptStoreError, match="scalar quantiser is not the sq8 one"):
        FAISSVectorStore.load(tmp_path / "s")
    data = bytearray(faiss.serialize_index(store.faiss_index.base).tobytes())
    reseal(tmp_path / "s", files={"index": bytes(data[:-100])})
    with pytest.raises(CorruptStoreError, match="not a valid FAISS index"):
        FAISSVectorStore.load(tmp_path / "s")
    assert data_file(tmp_path / "s", "index").exists()


def test_tune_chooses_rerank_too() -> None:
    store = copy.copy(built("HNSW", "sq8"))
    result = store.tune(QUERIES, target_recall=0.97, k=10)
    assert result.param == "ef_search" and result.reached
    assert (store.params["ef_search"], store.params["rerank"]) == (result.value, result.rerank)
    assert {s.rerank for s in result.settings} <= {1, 2, 4, 8, 16} and result.rerank in {s.rerank for s in result.settings}
    _, truth = oracle(BASE, QUERIES, 10, "L2")
    assert recall_at_k(store.search(QUERIES, k=10).ids, truth, 10) >= 0.97 - 0.01
    flat = copy.copy(built("Flat", "sq8"))
    result = flat.tune(QUERIES, target_recall=1.0, k=10)
    assert result.param == "rerank" and result.value == result.rerank == flat.params["rerank"]
    assert recall_at_k(flat.search(QUERIES, k=10).ids, truth, 10) == result.recall


@pytest.mark.parametrize(("index_type", "storage"), [("HNSW", "sq8"), ("IVFFlat", "pq")])
def test_the_full_vectors_are_a_raw_file_read_by_a_mapped_load(tmp_path: Path, index_type: str, storage: str) -> None:
    store = copy.copy(built(index_type, storage))
    store.delete([7])
    store.save(tmp_path / "s")
    manifest = manifest_of(tmp_path / "s")
    assert manifest["format_version"] == 4 and manifest["vectors"] == {"dtype": "<f4", "shape": [N, D]}
    raw = data_file(tmp_path / "s", "vectors")
    assert raw.name.endswith(".f32") and raw.read_bytes() == BASE.astype("<f4").tobytes()
    mapped = FAISSVectorStore.load(tmp_path / "s", mmap=True)
    assert mapped.faiss_index.vectors.file is not None  # rows read from the file as needed, not RAM
    assert not isinstance(mapped.faiss_index.base, faiss.IndexRefine)  # the index holds only the codes
    assert mapped.search(QUERIES, k=10, filter={"g": 7}) == store.search(QUERIES, k=10, filter={"g": 7})
    assert np.array_equal(mapped.get([8, 9], include_vectors=True).vectors, BASE[[8, 9]])


def test_a_damaged_or_inconsistent_vectors_file_is_refused(tmp_path: Path) -> None:
    copy.copy(built("HNSW", "sq8")).save(tmp_path / "s")
    good = data_file(tmp_path / "s", "vectors").read_bytes()
    raw = data_file(tmp_path / "s", "vectors")
    raw.write_bytes(good[:100] + bytes([good[100] ^ 1]) + good[101:])  # same size, one bit flipped
    with pytest.raises(CorruptStoreError, match=r"vectors file .* fails its xxh3-128 check"):
        FAISSVectorStore.load(tmp_path / "s")
    for mmap in (False, True):
        with pytest.raises(CorruptStoreError, match="fails its xxh3-128 check"):
            FAISSVectorStore.load(tmp_path / "s", mmap=mmap)
    reseal(tmp_path / "s", files={"vectors": good[:-4 * D]})  # a row short, checksums recomputed
    with pytest.raises(CorruptStoreError, match=rf"has {4 * D * (N - 1)} bytes, expected {4 * D * N}"):
        FAISSVectorStore.load(tmp_path / "s", verify=False)
    reseal(tmp_path / "s", {"vectors": {"dtype": "<f8", "shape": [N, D]}}, files={"vectors": good})
    with pytest.raises(CorruptStoreError, match="describes the vectors as"):
        FAISSVectorStore.load(tmp_path / "s")
    manifest = manifest_of(tmp_path / "s")
    del manifest["files"]["vectors"]
    reseal(tmp_path / "s", {"files": manifest["files"], "vectors": {"dtype": "<f4", "shape": [N, D]}})
    with pytest.raises(CorruptStoreError, match="lists no vectors file"):
        FAISSVectorStore.load(tmp_path / "s")
    # Format 4 never holds the float32 copy inside the index (format 3's IndexRefineFlat).
    copy.copy(built("Flat", "float16")).save(tmp_path / "f")
    base = faiss.read_index(str(data_file(tmp_path / "f", "index")))
    refined = faiss.IndexRefineFlat(base, faiss.swig_ptr(np.ascontiguousarray(BASE)))
    manifest = manifest_of(tmp_path / "f")
    del manifest["files"]["vectors"]
    reseal(tmp_path / "f", {"files": manifest["files"]}, files={"index": faiss.serialize_index(refined).tobytes()})
    with pytest.raises(CorruptStoreError, match="lists no vectors file|IndexRefineFlat"):
        FAISSVectorStore.load(tmp_path / "f")
