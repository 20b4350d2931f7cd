"""Compressed storage's float32 vectors kept in a file, against the numpy oracle: a store given
``vectors_dir`` (an unnamed temporary file there instead of RAM) and a store loaded with
``mmap=True`` (every search reads the rows it needs with preadv: the file is never mapped)."""

from __future__ import annotations

import errno
import os
import resource
import tempfile
import threading
import time
from pathlib import Path

import faiss
import numpy as np
import pytest

from parag import FAISSVectorStore
from parag.errors import (
    CorruptStoreError,
    InvalidArgumentError,
    InvalidTypeError,
    StoreReadError,
    StoreWriteError,
    UnsupportedOperationError,
    VectorsNotInMemoryError,
)
from parag.vectorstore.kinds import full_vectors
from parag.vectorstore.kinds.full_vectors import FullVectors
from parag.vectorstore.kinds.storage import TRAIN_AT
from tests.checks import assert_exact, data
from tests.conftest import oracle

D = 16
N = 3 * TRAIN_AT["sq8"]
BASE, QUERIES = data(N, D, 20, seed=5)
COMBOS = [("HNSW", "sq8", "L2"), ("IVFFlat", "sq8", "IP"), ("Flat", "float16", "cosine")]
PARAMS = {"HNSW": {"M": 16}, "IVFFlat": {"nlist": 16}, "Flat": {}}


def build(index_type: str, storage: str, metric: str, **kw: object) -> FAISSVectorStore:
    store = FAISSVectorStore(D, index_type, metric, storage=storage, **PARAMS[index_type], **kw)
    for start in range(0, N, 700):  # several adds: before, across and after training
        store.add(BASE[start : start + 700], [{"g": i % 50} for i in range(start, min(N, start + 700))])
    return store


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def assert_reranked_exactly(store: FAISSVectorStore, stored: dict[int, np.ndarray], queries: np.ndarray,
                            metric: str) -> None:
    """Re-ranked scores are the exact scores (1e-4) of the ``stored`` vectors (id -> vector, as
    stored: unit for cosine) of the ids found, and recall@10 against the oracle >= 0.95."""
    dist, ids, _ = store.search(queries, k=10, rerank=8)
    for q, row in enumerate(ids):
        x, y = np.stack([stored[i] for i in row]).astype(np.float64), queries[q].astype(np.float64)
        np.testing.assert_allclose(dist[q], ((x - y) ** 2).sum(1) if metric == "L2" else x @ y, rtol=1e-4, atol=1e-4)
    keys = list(stored)
    _, truth = oracle(np.stack([stored[i] for i in keys]), queries, 10, metric)
    found = [len(set(r) & {keys[t] for t in top}) / 10 for r, top in zip(ids, truth.tolist())]
    assert np.mean(found) >= 0.95


@pytest.mark.parametrize(("index_type", "storage", "metric"), COMBOS)
def test_vectors_dir_keeps_the_vectors_in_a_file_and_answers_as_ram_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, index_type: str, storage: str, metric: str
) -> None:
    monkeypatch.setattr(full_vectors, "BLOCK_BYTES", 4 * D * 1000)  # save, load and compact read several blocks
    in_file = build(index_type, storage, metric, vectors_dir=tmp_path)
    in_ram = build(index_type, storage, metric)
    vectors = in_file.faiss_index.vectors
    assert vectors.file is not None  # not RAM
    assert list(tmp_path.iterdir()) == []  # an unnamed file: nothing to clean up
    assert in_file.search(QUERIES, k=10) == in_ram.search(QUERIES, k=10)
    base, queries = (unit(BASE), unit(QUERIES)) if metric == "cosine" else (BASE, QUERIES)
    assert_reranked_exactly(in_file, dict(enumerate(base)), queries, metric)
    assert np.array_equal(in_file.get([0, N - 1], include_vectors=True).vectors, base[[0, N - 1]])
    dead = list(range(0, N, 3))
    for store in (in_file, in_ram):
        store.delete(dead)
        store.upsert([1, N + 5], BASE[:2] * 2, [{"g": 1000}] * 2)
        store.compact()
    assert in_file.faiss_index.vectors.file is not None  # the rebuilt store's vectors are in a file too
    live = [i for i in range(2, N) if i % 3]
    scale = 1 if metric == "cosine" else 2  # cosine stores the upserted 2x vectors normalised
    stored = {**{i: base[i] for i in live}, 1: base[0] * scale, N + 5: base[1] * scale}
    assert_reranked_exactly(in_file, stored, queries, metric)  # rebuilt a block at a time: its own graph
    allowed = [i for i in live if i % 50 == 7]
    assert_exact(in_file.search(QUERIES, k=5, filter={"g": 7}), BASE[allowed], allowed, QUERIES, 5, metric)
    in_file.save(tmp_path / "s")
    for loaded in (FAISSVectorStore.load(tmp_path / "s", mmap=True),
                   FAISSVectorStore.load(tmp_path / "s", vectors_dir=tmp_path)):
        assert loaded.faiss_index.vectors.file is not None
        assert loaded.search(QUERIES, k=10, rerank=3) == in_file.search(QUERIES, k=10, rerank=3)
        assert np.array_equal(loaded.get([N + 5, 1], include_vectors=True).vectors, base[[1, 0]] * scale)
    assert vectors_mapped(tmp_path) == []  # neither the temporary files nor the saved one
    loaded.add(BASE[:3], ids=[N + 10, N + 11, N + 12])  # a file-backed load keeps adding to its file
    assert np.array_equal(loaded.get([N + 12], include_vectors=True).vectors, base[[2]])


def vectors_mapped(directory: Path) -> list[str]:
    """The files under ``directory`` this process maps, but the FAISS index files (a mapped
    load maps those): a vectors file, saved or temporary, must never be among them."""
    with open("/proc/self/maps") as maps:
        named = {line.split(maxsplit=5)[-1].strip() for line in maps if str(directory) in line}
    return sorted(name for name in named if "/index." not in name)


@pytest.mark.parametrize(("index_type", "storage", "metric"), COMBOS)
def test_a_mapped_load_answers_exact_and_filtered_searches_from_the_file_unmapped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, index_type: str, storage: str, metric: str
) -> None:
    monkeypatch.setattr(full_vectors, "BLOCK_BYTES", 4 * D * 700)  # a scan of every row reads several blocks
    store = build(index_type, storage, metric)
    dead = list(range(0, N, 4))
    store.delete(dead)
    store.save(tmp_path / "s")
    mapped = FAISSVectorStore.load(tmp_path / "s", mmap=True)
    live = [i for i in range(N) if i % 4]
    for g in (7, 8):  # a filter's few allowed vectors: exact over just their rows
        allowed = [i for i in live if i % 50 == g]
        assert_exact(mapped.search(QUERIES, k=5, filter={"g": g}), BASE[allowed], allowed, QUERIES, 5, metric)
        assert_exact(mapped.search(QUERIES[3], k=100, filter={"g": g}), BASE[allowed], allowed, QUERIES[3], 100, metric)
    wide = [i for i in live if i % 50 < 45]
    assert_exact(mapped.search(QUERIES, k=7, filter={"g": {"$lt": 45}}), BASE[wide], wide, QUERIES, 7, metric)
    assert_exact(mapped.search(QUERIES[:3], k=len(live)), BASE[live], live, QUERIES[:3], len(live), metric)
    assert mapped.search(QUERIES, k=10, filter={"g": 7}) == store.search(QUERIES, k=10, filter={"g": 7})
    assert mapped.tune(QUERIES, target_recall=0.9, k=10).recall >= 0.9  # its ground truth scans the file
    assert vectors_mapped(tmp_path) == []


@pytest.mark.parametrize("metric", [faiss.METRIC_L2, faiss.METRIC_INNER_PRODUCT])
def test_full_vectors_in_a_file_search_as_in_ram(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, metric: int) -> None:
    monkeypatch.setattr(full_vectors, "BLOCK_BYTES", 4 * D * 100)  # 100 rows a block
    rows = np.repeat(BASE[:150], 2, axis=0)  # every row twice: ties, across blocks too (rows 99, 100)
    in_ram = FullVectors(rows.copy(), metric)
    (tmp_path / "v.f32").write_bytes(rows.astype("<f4").tobytes())  # as a saved store's vectors file
    in_file = FullVectors.in_file(open(tmp_path / "v.f32", "rb", buffering=0), len(rows), D, metric)  # noqa: SIM115
    bits = np.zeros(len(rows), bool)
    bits[::3] = True
    _bits = np.packbits(bits, bitorder="little")
    selectors = [None, faiss.IDSelectorBitmap(len(rows), faiss.swig_ptr(_bits)), faiss.IDSelectorRange(290, 400)]
    runs = np.r_[0:3, 50:130, 131, 200:300]  # consecutive slots, a call a run: across blocks, to the last row
    subsets = [np.arange(5, 300, 7), runs, np.arange(7, 300, 3), np.array([], np.int64)]  # rows read; every row; none
    for q, k in ((QUERIES[:1], 4), (QUERIES, 10), (QUERIES[:2], 350)):  # k beyond the allowed: -1 padded
        for sel in selectors:
            params = None if sel is None else faiss.SearchParameters(sel=sel)
            want, got = in_ram.search(q, k, params), in_file.search(q, k, params)
            np.testing.assert_allclose(got[0], want[0], rtol=1e-6)
            assert np.array_equal(got[1], want[1])
        for slots in subsets:
            want = in_ram.search(q, k, faiss.SearchParameters(sel=faiss.IDSelectorArray(slots)))
            for got in (in_ram.subset_search(q, k, slots), in_file.subset_search(q, k, slots)):
                np.testing.assert_allclose(got[0], want[0], rtol=1e-6)
                assert np.array_equal(got[1], want[1])
    mixed = np.array([7, 8, 9, 3, 4, 299, 0, 1, 1, 2])  # runs in any order, a slot twice
    for runs_from in (100, 2):  # a call a row; a call a run
        monkeypatch.setattr(full_vectors, "RUNS_FROM", runs_from)
        assert np.array_equal(in_file.take(mixed), rows[mixed])
    assert np.array_equal(in_file.reconstruct_n(140, 20), rows[140:160]) and in_file.reconstruct_n(0, 0).shape == (0, D)
    assert np.array_equal(in_file.copy().array, rows)  # a mapped load's copy: in RAM
    with pytest.raises(AttributeError, match="in a file, never mapped") as info:
        in_file.array  # noqa: B018
    assert isinstance(info.value, VectorsNotInMemoryError)  # a parag error, and hasattr says False
    assert vectors_mapped(tmp_path) == []
    in_file.file.close()


def test_threads_rerank_and_filter_from_the_file_at_once(tmp_path: Path) -> None:
    store = build("HNSW", "sq8", "L2")
    store.save(tmp_path / "s")
    mapped = FAISSVectorStore.load(tmp_path / "s", mmap=True)
    expected = {t: [store.search(q, k=10, filter=f) for q in QUERIES for f in (None, {"g": t})] for t in range(8)}
    got: dict[int, list] = {}

    def run(t: int) -> None:  # re-ranking, and exact searches over a filter's rows read from the file
        got[t] = [mapped.search(q, k=10, filter=f) for q in QUERIES for f in (None, {"g": t})]

    threads = [threading.Thread(target=run, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == expected


def test_vectors_dir_errors_name_it(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="vectors_dir applies to compressed storage"):
        FAISSVectorStore(D, "HNSW", storage="float32", vectors_dir=tmp_path)
    with pytest.raises(InvalidArgumentError, match="vectors_dir must be an existing directory"):
        FAISSVectorStore(D, "HNSW", storage="sq8", vectors_dir=tmp_path / "missing")
    with pytest.raises(InvalidTypeError, match="vectors_dir must be a path"):
        FAISSVectorStore(D, "HNSW", storage="sq8", vectors_dir=3)  # type: ignore[arg-type]
    FAISSVectorStore(D, "HNSW", storage="sq8").save(tmp_path / "s")
    with pytest.raises(InvalidArgumentError, match="vectors_dir applies to a load without mmap"):
        FAISSVectorStore.load(tmp_path / "s", mmap=True, vectors_dir=tmp_path)
    assert len(FAISSVectorStore.load(tmp_path / "s", vectors_dir=str(tmp_path))) == 0


def test_a_vectors_file_truncated_under_a_mapped_store_raises_not_garbage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(full_vectors, "RUNS_FROM", 2)  # a few consecutive rows are read as a run
    store = FAISSVectorStore(D, "Flat", storage="float16")
    store.add(BASE[:200], [{"g": i % 50} for i in range(200)])
    store.save(tmp_path / "s")
    mapped = FAISSVectorStore.load(tmp_path / "s", mmap=True)
    (vectors_file,) = (p for p in (tmp_path / "s").iterdir() if p.name.startswith("vectors"))
    os.truncate(vectors_file, 4 * D * 10)  # rows 10 on are gone; the store's descriptor sees it
    for ids in ([199], [8, 9, 10, 11]):  # a row past the end; a run of rows read in one call across it
        with pytest.raises(CorruptStoreError, match=r"vectors file '.*\.f32' ends at byte"):
            mapped.get(ids, include_vectors=True)
    with pytest.raises(CorruptStoreError, match=r"vectors file '.*\.f32' ends at byte"):
        mapped.search(BASE[199], k=5, rerank=4)  # its candidates are rows past the end
    for few_or_most in ({"g": 49}, {"g": {"$lt": 45}}):  # exact over their rows read; over the file scanned
        with pytest.raises(CorruptStoreError, match=r"vectors file '.*\.f32' ends at byte"):
            mapped.search(BASE[199], k=5, filter=few_or_most)
    assert np.array_equal(mapped.get([3], include_vectors=True).vectors, BASE[[3]])  # rows still there read


def test_a_vectors_file_the_system_fails_to_read_raises_a_parag_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FAISSVectorStore(D, "Flat", storage="float16", vectors_dir=tmp_path)
    store.add(BASE[:200], [{"g": i % 50} for i in range(200)])
    store.save(tmp_path / "s")
    mapped = FAISSVectorStore.load(tmp_path / "s", mmap=True)

    def failing(fd: int, buffers: list, offset: int) -> int:
        raise OSError(errno.EIO, "Input/output error")

    with monkeypatch.context() as m:
        m.setattr(os, "preadv", failing)
        with pytest.raises(StoreReadError, match=r"could not read vectors file '.*\.f32' at byte \d+: Input/output"):
            mapped.get([7], include_vectors=True)
        with pytest.raises(StoreReadError, match="could not read the temporary float32 vectors file in vectors_dir"):
            store.search(BASE[0], k=5, filter={"g": {"$lt": 45}})  # the file scanned
    with monkeypatch.context() as m:  # a temporary file has no manifest: the message says what it is
        m.setattr(os, "preadv", lambda fd, buffers, offset: 0)
        with pytest.raises(CorruptStoreError, match=r"temporary .* ends at byte 448, short of byte 512: it was truncated"):
            store.get([7], include_vectors=True)
    assert np.array_equal(store.get([7], include_vectors=True).vectors, BASE[[7]])


def test_a_store_file_the_system_fails_to_read_at_load_raises_a_parag_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FAISSVectorStore(D, "Flat")
    store.add(BASE[:20], [{"g": i} for i in range(20)])
    store.save(tmp_path / "s")

    def failing(fd: int, length: int, offset: int) -> bytes:
        raise OSError(errno.EIO, "Input/output error")

    with monkeypatch.context() as m:
        m.setattr(os, "pread", failing)
        with pytest.raises(StoreReadError, match=r"could not read \w+ file '.*' at byte 0: Input/output"):
            FAISSVectorStore.load(tmp_path / "s")
    assert len(FAISSVectorStore.load(tmp_path / "s")) == 20


def unwritable_dir(tmp_path: Path) -> Path:
    """A directory this process cannot create files in (root writes anywhere chmod allows:
    it gets sysfs, read-only in a container), or a skip."""
    if os.geteuid() != 0:
        (tmp_path / "ro").mkdir(mode=0o500)
        return tmp_path / "ro"
    try:
        tempfile.TemporaryFile(dir="/sys").close()
    except OSError:
        return Path("/sys")
    pytest.skip("no directory here refuses root's writes")


def test_an_unwritable_vectors_dir_is_named_when_the_store_is_made_or_loaded(tmp_path: Path) -> None:
    unwritable = unwritable_dir(tmp_path)
    for storage in ("float16", "sq8"):  # sq8 would first write at its training add
        with pytest.raises(StoreWriteError, match=f"vectors_dir {str(unwritable)!r}"):
            FAISSVectorStore(D, "HNSW", storage=storage, vectors_dir=unwritable)
    FAISSVectorStore(D, "HNSW", storage="sq8").save(tmp_path / "s")
    with pytest.raises(StoreWriteError, match="could not create a temporary file in vectors_dir"):
        FAISSVectorStore.load(tmp_path / "s", vectors_dir=unwritable)


def test_a_full_disk_under_vectors_dir_fails_the_add_and_changes_nothing(tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes writes past 128 KiB fail (EFBIG) as a full disk would (ENOSPC)."""
    store = FAISSVectorStore(D, "Flat", storage="float16", vectors_dir=tmp_path)
    store.add(BASE[:1000])  # 64 KiB
    before = store.search(QUERIES, k=5)
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 17, limits[1]))
    try:
        with pytest.raises(StoreWriteError, match="could not write the float32 vectors") as raised:
            store.add(BASE[1000:3000])  # 128 KiB more: past the limit
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
    assert raised.value.errno == errno.EFBIG and raised.value.filename == str(tmp_path)
    assert len(store) == 1000 and store.search(QUERIES, k=5) == before
    assert store.add(BASE[1000:1100]) == list(range(1000, 1100))  # over the failed add's partial rows
    assert np.array_equal(store.get([0, 1099], include_vectors=True).vectors, BASE[[0, 1099]])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_cannot_add_to_the_parents_vectors_file(tmp_path: Path) -> None:
    """The child shares the parent's temporary file: its add would overwrite the parent's
    next rows, so it raises. The parent's store is untouched."""
    store = FAISSVectorStore(D, "Flat", storage="float16", vectors_dir=tmp_path)
    store.add(BASE[:100])
    pid = os.fork()
    if pid == 0:  # the child reports through its exit status; it calls no faiss (OpenMP after fork)
        try:
            store.add(BASE[100:110])
            os._exit(1)
        except UnsupportedOperationError:
            os._exit(0 if len(store) == 100 else 2)
        except BaseException:
            os._exit(3)
    deadline = time.monotonic() + 60
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    if done[0] == 0:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    assert done[0] == pid and os.waitstatus_to_exitcode(done[1]) == 0, done
    assert store.add(BASE[100:110]) == list(range(100, 110))  # the parent adds as before
    assert np.array_equal(store.get([5, 109], include_vectors=True).vectors, BASE[[5, 109]])


@pytest.mark.parametrize("metric", [faiss.METRIC_L2, faiss.METRIC_INNER_PRODUCT])
def test_full_vectors_in_a_file_score_bit_for_bit_as_in_ram(tmp_path: Path, metric: int) -> None:
    # d=384 and the default blocks (10,922 rows), the last one shorter: FAISS scores fewer than
    # 20 queries with no selector in a kernel whose rounding depends on the rows' count, so a
    # file scanned a block at a time matches RAM only if RAM is scanned in the same blocks.
    faiss.omp_set_num_threads(2)  # (restored by conftest) one query's rows are split among threads
    rng = np.random.default_rng(3)
    d, n = 384, 2 * (full_vectors.BLOCK_BYTES // (4 * 384)) + 1000
    rows = rng.standard_normal((n, d), dtype=np.float32)
    (tmp_path / "v.f32").write_bytes(rows.astype("<f4").tobytes())
    in_ram = FullVectors(rows, metric)
    in_file = FullVectors.in_file(open(tmp_path / "v.f32", "rb", buffering=0), n, d, metric)  # noqa: SIM115
    bits = np.packbits(np.arange(n) % 3 > 0, bitorder="little")
    selectors = [None, faiss.IDSelectorBitmap(n, faiss.swig_ptr(bits)), faiss.IDSelectorRange(n - 3000, n)]
    for nq in (1, 5, 64):  # 64: FAISS's BLAS kernel
        q = rows[rng.integers(n, size=nq)] + rng.standard_normal((nq, d), dtype=np.float32) * 1e-2
        for sel in selectors:
            params = None if sel is None else faiss.SearchParameters(sel=sel)
            k = n if nq < 64 else 50  # every row ranked, where the threads split the rows
            want, got = in_ram.search(q, k, params), in_file.search(q, k, params)
            assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    in_file.file.close()


def test_a_delete_whose_compaction_finds_the_disk_full_is_still_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A vectors_dir store compacts into a new temporary file: a full disk there fails the
    # compaction, not the delete that triggered it (complete), which says so with a warning.
    store = FAISSVectorStore(D, "Flat", storage="sq8", vectors_dir=tmp_path)
    store.add(BASE[:1200])
    assert store.is_trained
    doomed = list(range(0, 1200, 5))  # 20% deleted: past Flat's 10%, a compaction

    def disk_full(fd: int, data: object, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    warned = r"compacting the index after this write failed \(StoreWriteError.*No space left"
    with monkeypatch.context() as m, pytest.warns(RuntimeWarning, match=warned):
        m.setattr(os, "pwrite", disk_full)
        assert store.delete(doomed) == len(doomed)
    live = {i: BASE[i] for i in range(1200) if i % 5}
    assert store.ids() == list(live) and len(store) == len(live)
    assert np.array_equal(store.get(list(live), include_vectors=True).vectors, np.stack(list(live.values())))
    assert_reranked_exactly(store, live, QUERIES, "L2")
    store.save(tmp_path / "s")
    loaded = FAISSVectorStore.load(tmp_path / "s", vectors_dir=tmp_path)
    assert loaded.ids() == list(live)
    assert_reranked_exactly(loaded, live, QUERIES, "L2")
    store.compact()  # the tombstones go once the disk has room
    assert store.ids() == list(live)
    assert_reranked_exactly(store, live, QUERIES, "L2")
