"""Promises of the README that only show on paths the small stores of other tests never take.

- Filtered HNSW / IVF search goes through FAISS's own selector when a filter matches more
  vectors than exact search over them is worth (``EXACT_FILTER_BUDGET`` vector components),
  and then widens ``ef_search`` / ``nprobe``. Observed through FAISS's public search
  statistics (``faiss.cvar.hnsw_stats``, ``faiss.cvar.indexIVF_stats``), checked against a
  numpy oracle.
- IVFFlat trains once it holds ``39 * nlist`` *live* vectors (deleted ones do not count).
- One query uses one OpenMP thread (a batch uses them all): observed as the threads of a
  fresh process.
- A store is read by the block size its manifest names, not the one parag writes today.
- The docstring examples in src/ run with the suite (as doctests).
"""

from __future__ import annotations

import doctest
import os
import re
import subprocess
import sys
from pathlib import Path

import faiss
import numpy as np
import pytest
from tests.conftest import clustered, oracle
from tests.crafting import data_file, manifest_of, reseal

import parag.vectorstore.faiss_store as faiss_store
import parag.vectorstore.kinds.base as kinds_base
from parag.errors import CorruptStoreError
from parag.vectorstore import FAISSVectorStore

D = 384
N = 6000  # a filter of half of them matches 3,000 vectors: above the exact-search budget at d = 384
PARAMS = {"HNSW": {"M": 16, "ef_search": 32}, "IVFFlat": {"nlist": 32, "nprobe": 8}}


def filtered_search_stats(store: FAISSVectorStore, queries: np.ndarray, flt) -> tuple[float, float, list]:
    """FAISS's HNSW distance computations and IVF lists probed per query, and the results."""
    faiss.cvar.hnsw_stats.reset()
    faiss.cvar.indexIVF_stats.reset()
    results = [store.search(q, k=10, filter=flt) for q in queries]
    n = len(queries)
    return faiss.cvar.hnsw_stats.ndis / n, faiss.cvar.indexIVF_stats.nlist / n, results


@pytest.fixture(scope="module")
def big_stores() -> dict[str, tuple[FAISSVectorStore, np.ndarray, np.ndarray]]:
    x = clustered(N, D, seed=3)
    groups = np.arange(N) % 10
    out = {}
    for index_type, params in PARAMS.items():
        store = FAISSVectorStore(D, index_type, "L2", **params)
        store.add(x, [{"g": int(g)} for g in groups])
        out[index_type] = (store, x, groups)
    return out


@pytest.mark.parametrize("index_type", list(PARAMS))
def test_a_broad_filter_searches_the_index_through_a_selector(big_stores, index_type):
    store, x, groups = big_stores[index_type]
    queries = x[:20] + 0.05
    allowed = np.flatnonzero(groups < 5)  # 3,000 matches: more than exact search is worth
    assert len(allowed) * D > kinds_base.EXACT_FILTER_BUDGET
    ndis, lists, results = filtered_search_stats(store, queries, {"g": {"$lt": 5}})
    assert (ndis if index_type == "HNSW" else lists) > 0  # the index itself was searched
    truth = allowed[oracle(x[allowed], queries, 10, "L2")[1]]
    for r, t in zip(results, truth):
        assert len(r.ids) == 10 and all(m["g"] < 5 for m in r.metadata)
    recall = np.mean([len(set(r.ids) & set(t.tolist())) / 10 for r, t in zip(results, truth)])
    assert recall >= 0.9


@pytest.mark.parametrize("index_type", list(PARAMS))
def test_a_narrow_filter_is_answered_exactly_without_the_index(big_stores, index_type):
    store, x, groups = big_stores[index_type]
    queries = x[:20] + 0.05
    allowed = np.flatnonzero(groups == 3)  # 600 matches: exact search over just those
    ndis, lists, results = filtered_search_stats(store, queries, {"g": 3})
    assert ndis == 0 and lists == 0
    truth = allowed[oracle(x[allowed], queries, 10, "L2")[1]]
    assert [r.ids for r in results] == truth.tolist()


def test_a_filter_widens_nprobe_of_an_ivf_search(big_stores):
    store, x, _ = big_stores["IVFFlat"]
    queries = x[:20] + 0.05
    _, unfiltered, _ = filtered_search_stats(store, queries, None)
    _, filtered, _ = filtered_search_stats(store, queries, {"g": {"$lt": 5}})
    assert unfiltered == PARAMS["IVFFlat"]["nprobe"]
    assert filtered > unfiltered  # half the vectors match: more lists are probed


def test_a_filter_widens_ef_search_of_an_hnsw_search(monkeypatch):
    # A 5% filter on a small store: lowering the documented exact-search budget sends it
    # through the HNSW graph, where ef_search must grow for it.
    monkeypatch.setattr(kinds_base, "EXACT_FILTER_BUDGET", 0)
    x = clustered(5000, 32, seed=4)
    store = FAISSVectorStore(32, "HNSW", M=16, ef_search=16)
    store.add(x, [{"g": i % 20} for i in range(len(x))])
    queries = x[:20] + 0.05
    unfiltered, _, _ = filtered_search_stats(store, queries, None)
    filtered, _, results = filtered_search_stats(store, queries, {"g": 1})
    assert filtered > 1.25 * unfiltered  # without widening the two are equal
    assert all(len(r.ids) == 10 and {m["g"] for m in r.metadata} == {1} for r in results)


def test_ivf_trains_when_it_holds_39_nlist_live_vectors():
    rng = np.random.default_rng(0)
    store = FAISSVectorStore(8, "IVFFlat", nlist=4)  # trains at 156 live vectors
    store.add(rng.standard_normal((150, 8)))
    store.delete(list(range(10)))  # 140 live in 150 slots (below the compaction share)
    store.add(rng.standard_normal((15, 8)))  # 155 live in 165 slots
    assert len(store) == 155 and not store.is_trained
    store.add(rng.standard_normal((1, 8)))
    assert len(store) == 156 and store.is_trained


THREADS_PROBE = """
import os, sys
import faiss, numpy as np
from parag.vectorstore import FAISSVectorStore

index_type = sys.argv[1]
x = np.random.default_rng(0).standard_normal((5000 if index_type == "HNSW" else 50000, 32)).astype(np.float32)
faiss.omp_set_num_threads(1)  # build without starting OpenMP's worker threads
store = FAISSVectorStore(32, index_type, **{"Flat": {}, "HNSW": {"M": 8}, "IVFFlat": {"nlist": 16}}[index_type])
store.add(x, [{"g": i % 4} for i in range(len(x))])
faiss.omp_set_num_threads(4)
threads = lambda: len(os.listdir("/proc/self/task"))
before = threads()
for q in x[:5]:
    store.search(q, 10)
    store.search(q, 10, filter={"g": 1})
single = threads()
store.search(x[:200], 10)
print(before, single, threads())
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs /proc to count threads")
@pytest.mark.parametrize("index_type", ["Flat", "HNSW", "IVFFlat"])
def test_one_query_runs_on_one_thread_and_a_batch_on_all(index_type):
    env = {**os.environ, "OMP_NUM_THREADS": "4"}
    proc = subprocess.run([sys.executable, "-c", THREADS_PROBE, index_type], capture_output=True, text=True,
                          env=env, timeout=120, check=True)
    before, single, batch = map(int, proc.stdout.split())
    assert single == before  # no OpenMP worker thread was started for single queries
    assert batch > before  # a batch starts them


def test_a_store_hashed_in_other_blocks_loads_by_its_manifest(tmp_path):
    # Each file's manifest entry names the block size its checksums were taken over; a store
    # written with another one than parag writes today (sealed here by the rules of
    # docs/format.md, with 4 KiB blocks) loads by what its manifest says, in every mode.
    x = clustered(3000, 16, seed=5)
    store = FAISSVectorStore(16, "HNSW", "L2")
    store.add(x, [{"n": i, "text": "x" * (i % 50)} for i in range(len(x))])
    store.save(tmp_path / "s")
    files = manifest_of(tmp_path / "s")["files"]
    assert all(entry["block_size"] != 4096 for entry in files.values())
    reseal(tmp_path / "s", {"files": {role: {**entry, "block_size": 4096} for role, entry in files.items()}})
    for entry in manifest_of(tmp_path / "s")["files"].values():
        assert entry["block_size"] == 4096 and len(entry["block_checksums"]) == -(-entry["size"] // 4096) > 1
    expected = store.search(x[:5], k=10)
    for options in ({}, {"mmap": True}, {"verify": False}):
        loaded = FAISSVectorStore.load(tmp_path / "s", **options)
        assert loaded.ids() == store.ids() and loaded.search(x[:5], k=10) == expected
    index = data_file(tmp_path / "s", "index")
    data = bytearray(index.read_bytes())
    data[3 * 4096 + 7] ^= 0xFF  # one byte of the index's fourth block
    index.write_bytes(bytes(data))
    with pytest.raises(CorruptStoreError, match=r"bytes 12288-16383 \(block 3\)"):
        FAISSVectorStore.load(tmp_path / "s")


def test_the_docstring_examples_are_collected_as_doctests():
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    testpaths = re.search(r"^testpaths = \[(.*)\]", pyproject, re.M).group(1)
    assert '"src"' in testpaths and "--doctest-modules" in pyproject
    assert any(t.examples for t in doctest.DocTestFinder().find(faiss_store))  # there is something to run
