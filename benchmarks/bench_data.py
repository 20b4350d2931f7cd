"""Benchmark datasets: the real sets in ../shared/data, and generated clustered sets for scale.

Every dataset is a folder with ``base.npy`` (float32, n x d), ``queries.npy`` and ``gt.npy``
(exact top-100 neighbour rows of ``base`` per query) plus its metric. Generated sets are
written once to ``benchmarks/results/data/`` (git-ignored; ``$PARAG_BENCH_DATA`` overrides
it) and reused.

Every vector gets the same metadata in every system: ``{"doc_id": i, "source": "s<0..99>",
"year": 2015..2024}``, drawn at random, so ``{"source": "s7"}`` selects ~1% of the vectors
and ``{"year": 2020}`` ~10%.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
GENERATED = Path(os.environ.get("PARAG_BENCH_DATA", ROOT / "benchmarks" / "results" / "data"))

# name -> (folder, metric, file names). Fashion-MNIST ships as uint8.
REAL = {
    "debian-minilm": ("debian-minilm", "IP", "base.npy", "queries.npy"),
    "siftsmall": ("siftsmall", "L2", "base.npy", "queries.npy"),
    "fashion-mnist": ("fashion-mnist", "L2", "base_uint8.npy", "queries_uint8.npy"),
}
# Synthetic sets: name -> (n, d, n_queries). "tiny" is for the smoke test.
SYNTHETIC = {"synthetic-100k": (100_000, 384, 1000), "synthetic-1m": (1_000_000, 384, 1000), "tiny": (2000, 16, 50)}
FILTERS = {"1%": {"source": "s7"}, "10%": {"year": 2020}}  # selectivity -> filter


@dataclass
class Dataset:
    name: str
    metric: str  # "IP" or "L2"
    base: np.ndarray
    queries: np.ndarray
    gt: np.ndarray
    synthetic: bool

    @property
    def n(self) -> int:
        return len(self.base)

    @property
    def d(self) -> int:
        return self.base.shape[1]


def available() -> list[str]:
    return [name for name, (folder, *_) in REAL.items() if (SHARED / folder).is_dir()] + list(SYNTHETIC)


def load(name: str, n_queries: int | None = None, n_base: int | None = None) -> Dataset:
    """A dataset by name, generating a synthetic one (and its ground truth) the first time.

    ``n_base`` keeps only the first rows of the base (ground truth is recomputed then).
    """
    if name in REAL:
        folder, metric, base_file, query_file = REAL[name]
        path = SHARED / folder
        if not path.is_dir():
            raise FileNotFoundError(f"{path} is not present")
        base = np.ascontiguousarray(np.load(path / base_file), dtype=np.float32)
        queries = np.ascontiguousarray(np.load(path / query_file), dtype=np.float32)
        gt = np.load(path / "gt.npy")
        synthetic = False
    else:
        metric, synthetic = "IP", True
        base, queries, gt = _generated(name)
    if n_queries is not None:
        queries, gt = queries[:n_queries], gt[:n_queries]
    if n_base is not None and n_base < len(base):
        base = base[:n_base].copy()
        gt = exact_neighbours(base, queries, metric, 100)
    return Dataset(name, metric, base, queries, gt, synthetic)


def clustered(n: int, d: int, seed: int, centres: int = 1000, spread: float = 0.5) -> np.ndarray:
    """Unit-length vectors in Gaussian clusters around ``centres`` random centres (like
    sentence embeddings: structure, not uniform noise). Generated in chunks to bound memory."""
    centre_vectors = np.random.default_rng(12345).standard_normal((centres, d)).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((n, d), np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        x = centre_vectors[rng.integers(0, centres, stop - start)]
        x += spread * rng.standard_normal((stop - start, d), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[start:stop] = x
    return out


def exact_neighbours(base: np.ndarray, queries: np.ndarray, metric: str, k: int) -> np.ndarray:
    import faiss

    index = faiss.IndexFlatIP(base.shape[1]) if metric == "IP" else faiss.IndexFlatL2(base.shape[1])
    index.add(base)
    return index.search(queries, min(k, len(base)))[1]


def _generated(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n, d, n_queries = SYNTHETIC[name]
    folder = GENERATED / name
    if not (folder / "gt.npy").exists():
        folder.mkdir(parents=True, exist_ok=True)
        base = clustered(n, d, seed=1, centres=min(1000, n // 20))
        queries = clustered(n_queries, d, seed=2, centres=min(1000, n // 20))
        np.save(folder / "base.npy", base)
        np.save(folder / "queries.npy", queries)
        np.save(folder / "gt.npy", exact_neighbours(base, queries, "IP", 100))  # written last: the marker
    return tuple(np.load(folder / f"{part}.npy") for part in ("base", "queries", "gt"))  # type: ignore[return-value]


def metadata(n: int) -> tuple[list[dict], dict[str, np.ndarray]]:
    """One metadata dict per vector, and the same values as numpy columns (for ground truth)."""
    rng = np.random.default_rng(7)
    columns = {"source": rng.integers(0, 100, n), "year": 2015 + rng.integers(0, 10, n)}
    dicts = [
        {"doc_id": i, "source": f"s{s}", "year": y}
        for i, s, y in zip(range(n), columns["source"].tolist(), columns["year"].tolist())
    ]
    return dicts, columns


def filter_mask(selectivity: str, columns: dict[str, np.ndarray]) -> np.ndarray:
    """The rows that FILTERS[selectivity] allows."""
    ((key, value),) = FILTERS[selectivity].items()
    return columns[key] == (int(value[1:]) if key == "source" else value)


def filtered_truth(data: Dataset, mask: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k rows among the allowed ones."""
    allowed = np.flatnonzero(mask)
    return allowed[exact_neighbours(data.base[allowed], queries, data.metric, k)]


def metadata_json_bytes(dicts: list[dict]) -> int:
    """Size of the metadata as JSON lines: what any store must keep at the least."""
    return sum(len(json.dumps(m, separators=(",", ":"))) + 1 for m in dicts)
