"""Memory-mapped loads: same answers, almost no RAM, and read-only without crashing.

FAISS aborts the whole process when a memory-mapped index is modified, so parag must stop
every write in Python. The write paths are exercised in a subprocess (this file run as a
script): if a guard were missing, the subprocess would die, not pytest.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from parag import FAISSVectorStore
from parag.errors import ReadOnlyStoreError

D = 16
KINDS = {
    "Flat": ("Flat", {}),
    "HNSW": ("HNSW", {"M": 8}),
    "IVFFlat": ("IVFFlat", {"nlist": 8, "nprobe": 4}),
    "IVFFlat-untrained": ("IVFFlat", {"nlist": 64, "nprobe": 4}),  # still an exact Flat index
}


def make_store(kind: str, metric: str = "L2") -> FAISSVectorStore:
    index_type, params = KINDS[kind]
    rng = np.random.default_rng(3)
    store = FAISSVectorStore(D, index_type, metric, **params)
    store.add(rng.standard_normal((600, D)), [{"n": i, "tag": f"t{i % 5}"} for i in range(600)])
    store.delete(list(range(0, 600, 40)))  # tombstones, below every compaction threshold
    return store


def answers(store: FAISSVectorStore) -> tuple[Any, ...]:
    queries = np.random.default_rng(5).standard_normal((6, D))
    ids = store.ids()
    got = store.get(ids[:50], include_vectors=True)
    return (
        ids,
        got.metadata,
        got.vectors.tolist(),
        store.search(queries, 8),
        store.search(queries, 8, filter={"tag": "t1"}),
        len(store),
    )


@pytest.fixture(params=sorted(KINDS))
def saved(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[FAISSVectorStore, Path, str]:
    store = make_store(request.param, "cosine" if request.param == "HNSW" else "L2")
    store.save(tmp_path / "s")
    return store, tmp_path / "s", request.param


@pytest.mark.parametrize("verify", [True, False])
def test_mapped_load_answers_alike(saved: tuple[FAISSVectorStore, Path, str], verify: bool) -> None:
    store, path, kind = saved
    mapped = FAISSVectorStore.load(path, mmap=True, verify=verify)
    assert mapped.read_only and not FAISSVectorStore.load(path).read_only
    assert mapped.is_trained == (kind != "IVFFlat-untrained")
    assert answers(mapped) == answers(store)


def test_mapped_store_can_be_saved_even_over_its_own_files(saved: tuple[FAISSVectorStore, Path, str], tmp_path: Path) -> None:
    store, path, _ = saved
    mapped = FAISSVectorStore.load(path, mmap=True)
    mapped.save(tmp_path / "copy")
    mapped.save(path)  # deletes the mapped file: the mapping stays valid
    assert answers(mapped) == answers(store)
    assert answers(FAISSVectorStore.load(path)) == answers(store)
    assert answers(FAISSVectorStore.load(tmp_path / "copy")) == answers(store)


def test_load_into_a_mapped_instance_and_back(saved: tuple[FAISSVectorStore, Path, str]) -> None:
    """Loading replaces the index object, it never writes into the mapped one: allowed."""
    store, path, _ = saved
    target = FAISSVectorStore.load(path, mmap=True)
    assert target.load(path) is target and not target.read_only
    target.add(np.ones(D))
    assert len(target) == len(store) + 1
    target.load(path, mmap=True)
    assert target.read_only and answers(target) == answers(store)


def test_tune_works_on_a_mapped_store(tmp_path: Path) -> None:
    """tune sets a search parameter, held in RAM even for a mapped index: allowed."""
    for kind in ("HNSW", "IVFFlat"):
        make_store(kind).save(tmp_path / kind)
        mapped = FAISSVectorStore.load(tmp_path / kind, mmap=True)
        result = mapped.tune(target_recall=0.9, n_samples=20)
        assert result.value == mapped.params[result.param]


WRITES = {
    "add": lambda s: s.add(np.ones(D)),
    "add with ids": lambda s: s.add(np.ones((2, D)), ids=[10_000, 10_001]),
    "delete": lambda s: s.delete([1]),
    "delete missing_ok": lambda s: s.delete([1, 99_999], missing_ok=True),
    "upsert existing": lambda s: s.upsert([1], np.ones((1, D))),
    "upsert new": lambda s: s.upsert([10_000], np.ones((1, D))),
    "update_metadata": lambda s: s.update_metadata([1], {"x": 1}),
    "compact": lambda s: s.compact(),
}


def try_writes(path: Path) -> dict[str, str]:
    """Every write on a mapped store: the exception each raised, and whether it changed it."""
    store = FAISSVectorStore.load(path, mmap=True)
    before = answers(store)
    outcome = {}
    for name, write in WRITES.items():
        try:
            write(store)
            outcome[name] = "no error"
        except Exception as e:  # noqa: BLE001 - recorded for the test to judge
            outcome[name] = f"{type(e).__name__}: {e}"
        if answers(store) != before:
            outcome[name] += " (and the store changed)"
    return outcome


def test_every_write_raises_and_the_process_lives(saved: tuple[FAISSVectorStore, Path, str]) -> None:
    _, path, _ = saved
    proc = subprocess.run([sys.executable, __file__, str(path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"the process died ({proc.returncode}): {proc.stderr[-2000:]}"
    outcome = json.loads(proc.stdout.splitlines()[-1])
    assert set(outcome) == set(WRITES)
    for name, result in outcome.items():
        assert result.startswith("ReadOnlyStoreError: ") and "mmap=True" in result, (name, result)
        assert "changed" not in result, (name, result)


def test_read_only_error_is_a_permission_error(tmp_path: Path) -> None:
    make_store("Flat").save(tmp_path / "s")
    mapped = FAISSVectorStore.load(tmp_path / "s", mmap=True)
    with pytest.raises(PermissionError):
        mapped.delete([1])


def rss_after(path: Path, mmap: bool) -> int:
    """Resident set growth (bytes) of a fresh process loading ``path``."""
    code = (
        "import sys\n"
        "from parag import FAISSVectorStore\n"
        "def rss():\n"
        "    return next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmRSS'))\n"
        "before = rss()\n"
        f"store = FAISSVectorStore.load(sys.argv[1], mmap={mmap})\n"
        "print(rss() - before)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300, check=True)
    return int(proc.stdout.split()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc")
def test_mapped_index_is_not_resident(tmp_path: Path) -> None:
    """100 MB Flat store: a mapped load saves >= 90% of the index's bytes of RSS.

    What remains resident is per-vector Python state (the id map, the metadata), the same
    in both loads; benchmarks/bench_persistence.py measures it at 1M x 384.
    """
    rng = np.random.default_rng(0)
    store = FAISSVectorStore(128)
    for _ in range(4):
        store.add(rng.standard_normal((50_000, 128), dtype=np.float32))
    store.save(tmp_path / "s")
    del store
    index_size = next((tmp_path / "s").glob("index.*")).stat().st_size
    normal, mapped = rss_after(tmp_path / "s", mmap=False), rss_after(tmp_path / "s", mmap=True)
    assert normal - mapped > 0.9 * index_size, (normal, mapped, index_size)
    assert mapped < 0.5 * normal, (normal, mapped)


if __name__ == "__main__":
    print(json.dumps(try_writes(Path(sys.argv[1]))))
