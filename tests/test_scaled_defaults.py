"""Defaults that follow the store's size: HNSW's ef_search and ef_construction grow with the graph, IVFFlat
chooses nlist when it trains (and retrains when the size calls for twice the lists), nprobe follows nlist.
A parameter given (to the constructor, or set by ``tune``) never moves, and a store saved
before sizes chose parameters keeps the values it was saved with.

The recall these defaults reach at 10k-1M vectors is measured, not tested: see
docs/bench-defaults.md.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from parag.vectorstore import FAISSVectorStore
from parag.vectorstore.kinds import hnsw
from parag.vectorstore.kinds.hnsw import EF_CONSTRUCTION_BY_SIZE, EF_SEARCH_BY_SIZE, default_ef_construction, default_ef_search
from parag.vectorstore.kinds.ivf import default_nlist, default_nprobe
from tests.checks import assert_exact, data
from tests.crafting import manifest_of, seal

D = 8
EF_1 = EF_SEARCH_BY_SIZE[0][0]  # the largest graph searched with ef_search 64
NPROBE_971, NPROBE_4096 = 125, 256


@pytest.mark.parametrize("n, ef_search", [(0, 64), (10_000, 64), (59_000, 64), (EF_1, 64), (EF_1 + 1, 192),
                                          (300_000, 192), (1_000_000, 512), (10_000_000, 1024)])
def test_ef_search_by_size(n, ef_search):
    assert default_ef_search(n) == ef_search


EFC_1 = EF_CONSTRUCTION_BY_SIZE[0][0]  # the largest graph built with ef_construction 40


@pytest.mark.parametrize("n, ef_construction", [(0, 40), (59_000, 40), (EFC_1, 40), (EFC_1 + 1, 80),
                                                (1_000_000, 80), (10_000_000, 80)])
def test_ef_construction_by_size(n, ef_construction):
    assert default_ef_construction(n) == ef_construction


@pytest.mark.parametrize("n, nlist", [(312, 8), (9_984, 256), (20_000, 512), (58_940, 971), (1_000_000, 4000),
                                      (10_000_000, 4096)])
def test_nlist_by_size(n, nlist):
    assert default_nlist(n) == nlist  # about 4 sqrt(n), at least 39 vectors per list, at most 4096 lists


@pytest.mark.parametrize("nlist, nprobe", [(1, 1), (63, 63), (256, 64), (971, NPROBE_971), (4096, NPROBE_4096)])
def test_nprobe_by_nlist(nlist, nprobe):
    assert default_nprobe(nlist) == nprobe


def test_hnsw_ef_search_follows_the_graph_until_set(tmp_path, monkeypatch):
    # The mechanism on a small graph: the table's first step moved from 150k vectors to 100.
    monkeypatch.setattr(hnsw, "EF_SEARCH_BY_SIZE", ((100, 64), *hnsw.EF_SEARCH_BY_SIZE[1:]))
    x = np.random.default_rng(0).standard_normal((103, D)).astype(np.float32)
    store = FAISSVectorStore(D, "HNSW", M=4)
    given = FAISSVectorStore(D, "HNSW", M=4, ef_search=64)
    for s in (store, given):
        s.add(x[:100])
        assert s.params["ef_search"] == 64
        s.add(x[100:101])
    assert store.params["ef_search"] == default_ef_search(101) > 64 and given.params["ef_search"] == 64
    assert store.search(x[:3], k=5, ef_search=64) == given.search(x[:3], k=5)  # a search's own value wins
    store.save(tmp_path / "s")
    assert manifest_of(tmp_path / "s")["auto_params"] == ["ef_construction", "ef_search"]
    assert FAISSVectorStore.load(tmp_path / "s").params == store.params
    # A value set (by tune, as by the constructor) no longer follows the size, loaded too.
    store.tune(x[:10], target_recall=0.5, k=5)
    store.add(x[101:])
    assert store.params["ef_search"] < 192
    store.save(tmp_path / "t")
    assert manifest_of(tmp_path / "t")["auto_params"] == ["ef_construction"]
    assert FAISSVectorStore.load(tmp_path / "t").params == store.params


@pytest.mark.parametrize("storage", ["float32", "sq8"])
def test_hnsw_ef_construction_follows_the_size_an_add_leaves(tmp_path, monkeypatch, storage):
    # Steps moved from 400k vectors to 1,100: the vectors an add inserts are linked with the
    # ef_construction of the size it leaves (sq8 builds its graph at 1,000 vectors).
    monkeypatch.setattr(hnsw, "EF_CONSTRUCTION_BY_SIZE", ((1_100, 40),))
    x = np.random.default_rng(1).standard_normal((1_300, D)).astype(np.float32)
    store = FAISSVectorStore(D, "HNSW", M=4, storage=storage)
    given = FAISSVectorStore(D, "HNSW", M=4, storage=storage, ef_construction=16)
    for s in (store, given):
        s.add(x[:1_050])
    assert inner_ef_construction(store) == store.params["ef_construction"] == 40
    store.add(x[1_050:1_200])
    given.add(x[1_050:1_200])
    assert inner_ef_construction(store) == store.params["ef_construction"] == 80
    assert inner_ef_construction(given) == given.params["ef_construction"] == 16
    store.save(tmp_path / "s")
    loaded = FAISSVectorStore.load(tmp_path / "s")
    assert loaded.params == store.params and inner_ef_construction(loaded) == 80
    np.testing.assert_array_equal(loaded.get(list(range(1_200)), include_vectors=True).vectors, x[:1_200])


def inner_ef_construction(store: FAISSVectorStore) -> int:
    index = store.faiss_index
    return int(getattr(index, "base", index).hnsw.efConstruction)


def ivf_store(x: np.ndarray, **params) -> FAISSVectorStore:
    store = FAISSVectorStore(D, "IVFFlat", **params)
    store.add(x, [{"row": i} for i in range(len(x))])
    return store


def test_ivf_retrains_as_the_store_grows_and_stays_exact(tmp_path):
    x, q = data(21_000, D, 20, seed=3, centres=40)
    store = ivf_store(x[:10_000])
    assert store.is_trained and store.params == {"nlist": 256, "nprobe": 64}
    store.delete(list(range(0, 1_000, 7)))  # tombstones survive the retraining as tombstones
    fixed, probed = ivf_store(x[:10_000], nlist=256), ivf_store(x[:10_000], nprobe=64)
    for s in (store, fixed, probed):
        s.add(x[10_000:], [{"row": i} for i in range(10_000, 21_000)])
    live = [i for i in range(21_000) if i >= 1_000 or i % 7]
    # 20,857 live vectors call for 534 lists (>= twice 256): retrained
    assert store.params == {"nlist": 534, "nprobe": default_nprobe(534)}
    assert fixed.params == probed.params == {"nlist": 256, "nprobe": 64}  # either one set: no retraining
    assert store.ids() == live
    np.testing.assert_array_equal(store.get(live[:50], include_vectors=True).vectors, x[live[:50]])
    assert_exact(store.search(q, k=10, nprobe=534), x[live], live, q, 10, "L2")  # every list probed: exact
    store.save(tmp_path / "s")
    assert manifest_of(tmp_path / "s")["auto_params"] == ["nlist", "nprobe"]
    loaded = FAISSVectorStore.load(tmp_path / "s")
    assert loaded.params == store.params and loaded.search(q, k=10) == store.search(q, k=10)


def test_a_store_saved_before_sizes_chose_parameters_keeps_them(tmp_path):
    x, _ = data(20_000, D, 0, seed=4)
    ivf_store(x[:10_000]).save(tmp_path / "s")
    manifest = manifest_of(tmp_path / "s")
    del manifest["auto_params"]  # as a parag from before sizes chose parameters wrote it
    (tmp_path / "s" / "manifest.json").write_bytes(seal(manifest))
    old = FAISSVectorStore.load(tmp_path / "s")
    old.add(x[10_000:])
    assert old.params == {"nlist": 256, "nprobe": 64}


def documented_nlist(n: int) -> int:
    """README's rule: about 4 sqrt(n) lists, at least 39 vectors per list, at most 4,096."""
    return max(1, min(round(4 * math.sqrt(n)), n // 39, 4096))


def test_ivf_retrains_where_readme_says():
    """The index retrains in the add after which the size calls for twice its lists: only ~2x
    the size it trained at while the 39-per-list floor sets nlist, ~4x once 4 sqrt(n) does.
    The sizes follow from the rule alone, and README quotes them."""
    points, nlist, n = [], documented_nlist(39 * 256), 39 * 256
    while len(points) < 2:
        n += 1
        if documented_nlist(n) >= 2 * nlist:
            nlist = documented_nlist(n)
            points.append((n, nlist))
    assert points == [(19_968, 512), (65_473, 1_024)]
    x = np.random.default_rng(5).standard_normal((points[-1][0], 2)).astype(np.float32)
    store, trained = FAISSVectorStore(2, "IVFFlat"), 256
    store.add(x[: 39 * 256])
    for at, lists in points:
        store.add(x[len(store) : at - 1])
        assert store.params["nlist"] == trained  # one vector short: not yet
        store.add(x[at - 1 : at])
        assert store.params["nlist"] == lists
        trained = lists
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert all(f"{at:,} vectors ({lists:,} lists)" in " ".join(readme.split()) for at, lists in points)
