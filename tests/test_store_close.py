"""close() and ``with``: a store releases its files when told, and is unusable until loaded again.

A compressed store keeps a descriptor of the file it reads its float32 vectors from: its
saved ``vectors`` file after ``load(mmap=True)``, or an unnamed temporary file in its
``vectors_dir``. Without close(), the descriptor lives as long as the store object.
"""

from __future__ import annotations

import copy
import gc
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from parag.errors import StoreClosedError
from parag.vectorstore import FAISSVectorStore

D = 16
RNG = np.random.default_rng(11)
X = RNG.standard_normal((1200, D)).astype(np.float32)  # sq8 trains at 1,000 vectors
QUERIES = RNG.standard_normal((4, D)).astype(np.float32)

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="open files are read from /proc/self/fd")


def files_open_in(directory: Path) -> list[str]:
    """The files under ``directory`` this process has a descriptor of (an unnamed temporary
    file shows as ``directory/#inode (deleted)``)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the descriptor listdir itself used, closed meanwhile
            continue
        if target.startswith(str(directory)):
            found.append(target)
    return found


def compressed(**kwargs) -> FAISSVectorStore:
    store = FAISSVectorStore(D, "HNSW", storage="sq8", M=8, **kwargs)
    store.add(X, [{"n": i} for i in range(len(X))], documents=[f"d{i}" for i in range(len(X))])
    assert store.is_trained
    return store


USES = {
    "len": len,
    "in": lambda s: 1 in s,
    "in (not an id)": lambda s: None in s,
    "ids": lambda s: s.ids(),
    "get": lambda s: s.get([1]),
    "search": lambda s: s.search(QUERIES, k=3),
    "filtered search": lambda s: s.search(QUERIES, k=3, filter={"n": 1}),
    "add": lambda s: s.add(np.ones(D)),
    "upsert": lambda s: s.upsert([1], np.ones(D)),
    "delete": lambda s: s.delete([1]),
    "update_metadata": lambda s: s.update_metadata([1], {"x": 1}),
    "compact": lambda s: s.compact(),
    "tune": lambda s: s.tune(n_samples=10),
    "copy": copy.copy,
    "dimension": lambda s: s.dimension,
    "params": lambda s: s.params,
    "read_only": lambda s: s.read_only,
    "faiss_index": lambda s: s.faiss_index,
}


def test_close_releases_the_vectors_file_and_every_use_then_raises(tmp_path):
    original = compressed()
    original.save(tmp_path / "store")
    expected = original.search(QUERIES, k=5)
    store = FAISSVectorStore.load(tmp_path / "store", mmap=True)
    assert [Path(f).name for f in files_open_in(tmp_path)] == [p.name for p in (tmp_path / "store").glob("vectors*")]
    assert store.search(QUERIES, k=5) == expected and not store.closed
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store.close()
        assert files_open_in(tmp_path) == []
        for name, use in USES.items():
            with pytest.raises(StoreClosedError, match="closed") as raised:
                use(store)
            assert isinstance(raised.value, ValueError), name
        with pytest.raises(StoreClosedError):
            store.save(tmp_path / "copy")
        assert not (tmp_path / "copy").exists()
        assert store.closed and repr(store) == "FAISSVectorStore(closed)"
        store.close()  # again: nothing to do
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert store.load(tmp_path / "store", mmap=True) is store  # filled again
    assert not store.closed and store.search(QUERIES, k=5) == expected
    store.close()


def test_with_closes_the_store_at_the_end_of_its_block_and_frees_a_vectors_dir_file(tmp_path):
    with compressed(vectors_dir=tmp_path) as store:
        assert [f.endswith("(deleted)") for f in files_open_in(tmp_path)] == [True]  # the unnamed temporary file
        store.save(tmp_path / "saved")
    assert store.closed and files_open_in(tmp_path) == []
    with pytest.raises(KeyError), FAISSVectorStore.load(tmp_path / "saved", mmap=True) as mapped:
        mapped.get([12_345])  # an error inside the block: the store is closed all the same
    assert mapped.closed and files_open_in(tmp_path) == []
    with FAISSVectorStore(D) as plain:  # a store in RAM: close() drops what it holds
        plain.add(X[:3])
    with pytest.raises(StoreClosedError):
        len(plain)


def test_an_index_replaced_by_a_write_or_a_load_has_its_vectors_file_closed_then(tmp_path):
    # A compaction writes a vectors_dir store's vectors to a new temporary file, and a load
    # into a store replaces its whole state: the old file is closed then, not left to the
    # garbage collector (a ResourceWarning, and the disk space held meanwhile).
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store = compressed(vectors_dir=tmp_path)
        store.delete(list(range(700)))  # past HNSW's compact_at (half): compacted
        assert len(files_open_in(tmp_path)) == 1
        assert store.ids() == list(range(700, 1200))
        assert np.array_equal(store.get(store.ids(), include_vectors=True).vectors, X[700:])
        store.save(tmp_path / "saved")
        assert store.load(tmp_path / "saved", mmap=True) is store
        assert [Path(f).name for f in files_open_in(tmp_path)] == [p.name for p in (tmp_path / "saved").glob("vectors*")]
        assert np.array_equal(store.get(store.ids(), include_vectors=True).vectors, X[700:])
        store.close()
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_an_index_taken_before_its_store_closed_or_rebuilt_it_raises_store_closed_error(tmp_path):
    # store.faiss_index hands out the index itself: once the store closes its vectors file
    # (close(), or a compaction writing a new one), reading the index says what to do.
    for end in ("close", "compaction"):
        store = compressed(vectors_dir=tmp_path)
        taken = store.faiss_index
        assert np.array_equal(taken.vectors.take(np.arange(3)), X[:3])
        store.close() if end == "close" else store.delete(list(range(700)))
        with pytest.raises(StoreClosedError, match="take store.faiss_index again") as raised:
            taken.vectors.take(np.arange(3))
        assert isinstance(raised.value, ValueError), end
        with pytest.raises(StoreClosedError, match="was closed, loaded again or has rebuilt its index"):
            next(taken.vectors.blocks())
    assert np.array_equal(store.faiss_index.vectors.take(np.arange(3)), X[700:703])  # taken again
    store.close()


def test_a_store_dropped_without_close_closes_its_file_quietly(tmp_path):
    # close() is the prompt path; a store (or a failed write's new temporary file) that is
    # only garbage collected must still close its file without a ResourceWarning.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compressed(vectors_dir=tmp_path).save(tmp_path / "saved")
        mapped = FAISSVectorStore.load(tmp_path / "saved", mmap=True)
        assert len(files_open_in(tmp_path)) == 1
        del mapped
        gc.collect()
        assert files_open_in(tmp_path) == []
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_every_cli_command_closes_the_store_it_loads(tmp_path):
    from tests.cli_support import invoke  # (needs the cli extra, as every CLI test does)

    # Loaded by the commands with mmap, the store holds its vectors file until closed. (Were
    # a command to leave it to the collector, this test would still find it closed, the store
    # freed at once; without FullVectors' finalizer it then warns, and this test fails.)
    compressed().save(tmp_path / "store")
    np.save(tmp_path / "q.npy", QUERIES)
    commands = {
        "info": ("info", "--json"),
        "verify": ("verify",),
        "search": ("search", "--vectors", tmp_path / "q.npy", "-k", 3),
        "search --like": ("search", "--like", 5, "-k", 3),
        "get": ("get", 1, 2, "--vectors", "--json"),
        "export": ("export", tmp_path / "out.jsonl", "--vectors", tmp_path / "out.npy"),
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name, (command, *args) in commands.items():
            invoke(command, tmp_path / "store", *args)
            assert files_open_in(tmp_path) == [], name  # closed by the command, not by the collector
        invoke("migrate", tmp_path / "store", tmp_path / "migrated")
        assert files_open_in(tmp_path) == []
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
