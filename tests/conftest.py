"""Shared fixtures: FAISS single-threaded, the real datasets (when present), generated data,
and a numpy oracle."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import faiss
import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def single_thread_faiss() -> Iterator[None]:
    """Every test runs FAISS single-threaded in its own thread (restored afterwards).

    The tests check results, not speed. On a busy 2-core machine every OpenMP region waits
    for a second core: the conformance files ran twice as long, and a PQ store's training
    (tests/test_storage.py) took 2.5 times the wall time and 3 times the CPU time with OpenMP's
    threads. Threads a test starts itself keep FAISS's default (test_concurrent_* still run
    it in parallel), and processes it starts their own (tests/test_promises.py).
    """
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def load_dataset(name: str) -> dict[str, np.ndarray]:
    """base, queries and gt of a ../shared/data set; skips the test when it is absent."""
    folder = DATA / name
    if not (folder / "base.npy").exists():
        pytest.skip(f"{folder} is not present")
    return {part: np.load(folder / f"{part}.npy") for part in ("base", "queries", "gt")}


@pytest.fixture(scope="session")
def debian_stores() -> Callable[[str], tuple[Any, list[dict[str, Any]]]]:
    """``index_type -> (store, metadata)``: debian-minilm at default parameters (cosine), with
    ``{"id", "source": 100 values, "year"}`` metadata, built once for the session (a 59k x 384
    HNSW or IVFFlat build takes seconds: tests/test_lifecycle.py and tests/test_store_oracle.py
    search the same stores). A test copies a store before changing it."""
    from parag.vectorstore import FAISSVectorStore

    base = load_dataset("debian-minilm")["base"]
    rng = np.random.default_rng(14)
    meta = [{"id": i, "source": f"src{int(s)}", "year": int(y)}
            for i, (s, y) in enumerate(zip(rng.integers(100, size=len(base)), rng.integers(2015, 2025, size=len(base))))]
    stores: dict[str, Any] = {}

    def build(index_type: str) -> tuple[Any, list[dict[str, Any]]]:
        if index_type not in stores:
            store = FAISSVectorStore(base.shape[1], index_type, "cosine")
            assert store.add(base, meta) == list(range(len(base)))
            stores[index_type] = store
        return stores[index_type], meta

    return build


def clustered(n: int, d: int, centres: int = 20, seed: int = 0, spread: float = 0.3) -> np.ndarray:
    """Gaussian clusters around random centres: data with structure, like real embeddings."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, d)).astype(np.float32)
    return (c[rng.integers(0, centres, n)] + spread * rng.standard_normal((n, d))).astype(np.float32)


def oracle(base: np.ndarray, queries: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by numpy brute force, in float64: (scores, row positions), best first."""
    b = base.astype(np.float64)
    q = np.atleast_2d(queries).astype(np.float64)
    if metric == "cosine":
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    if metric == "L2":
        scores = (q**2).sum(1)[:, None] - 2 * q @ b.T + (b**2).sum(1)[None, :]
        order = np.argsort(scores, axis=1, kind="stable")
    else:
        scores = q @ b.T
        order = np.argsort(-scores, axis=1, kind="stable")
    order = order[:, :k]
    return np.take_along_axis(scores, order, 1), order


def recall_at_k(found: list[list[int]], truth: np.ndarray, k: int) -> float:
    return float(np.mean([len(set(f[:k]) & set(t[:k].tolist())) / k for f, t in zip(found, truth)]))


from tests.milvus_support import milvus, milvus_server_session  # noqa: E402, F401 - fixtures
