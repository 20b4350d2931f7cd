"""Save / load speed and memory-mapped RSS of parag against raw FAISS + orjson.

    python benchmarks/bench_persistence.py                   # 1M x 384 Flat, 3 runs
    python benchmarks/bench_persistence.py --n 100000 --runs 5 --dir /tmp/bench

Data: synthetic clustered float32 vectors (Gaussian clusters around 100 random centres,
like embeddings have structure), generated here with a fixed seed, and small metadata per
vector (``{"doc": "doc-<i // 8>", "chunk": <i % 8>}``, ~30 bytes of JSON).

The baseline is what a store without guarantees does: ``faiss.write_index`` of the same
index object plus ``orjson.dumps`` of the same metadata list to a second file (no fsync,
no checksum); its load is ``faiss.read_index`` plus ``orjson.loads``. parag's save hashes
every byte (XXH3-128) and fsyncs every file and the directory; its load checks every byte
before FAISS parses it (``verify=True``), or only sizes (``verify=False``), and always walks
the index file's size fields, checks one JSON object per metadata line and the index's
internal references (docs/security.md).

Every run times all the operations back to back, interleaved, with the page cache warm
for both sides (nothing here drops caches: other people use this machine). The ratio of
each run is computed within the run; the table quotes medians over runs.

RSS is measured in fresh subprocesses: VmRSS after the load minus VmRSS before it.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import orjson

import parag
from parag import FAISSVectorStore


def clustered(n: int, d: int, seed: int = 0, centres: int = 100, chunk: int = 100_000) -> Any:
    """Yield float32 chunks of clustered vectors (chunks keep peak memory low)."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, d)).astype(np.float32)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        x = c[rng.integers(0, centres, m)]
        x += 0.3 * rng.standard_normal((m, d), dtype=np.float32)
        yield x


def metadata(start: int, m: int) -> list[dict[str, Any]]:
    return [{"doc": f"doc-{i // 8}", "chunk": i % 8} for i in range(start, start + m)]


def build(n: int, d: int) -> tuple[FAISSVectorStore, list[dict[str, Any]]]:
    store = FAISSVectorStore(d)
    meta: list[dict[str, Any]] = []
    start = 0
    for x in clustered(n, d):
        chunk = metadata(start, len(x))
        store.add(x, chunk)
        meta += chunk
        start += len(x)
    return store, meta


def timed(fn: Callable[[], Any]) -> float:
    gc.collect()
    started = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - started
    del result
    gc.collect()
    return elapsed


class NoFsync:
    """Disable os.fsync for one timing: what durability costs, for the breakdown only."""

    def __enter__(self) -> None:
        self.real = os.fsync
        os.fsync = lambda fd: None

    def __exit__(self, *exc: object) -> None:
        os.fsync = self.real


def run_once(store: FAISSVectorStore, meta: list[dict[str, Any]], folder: Path) -> dict[str, float]:
    raw_index, raw_meta, store_dir = folder / "raw.faiss", folder / "raw-meta.json", folder / "store"
    index = store._index

    def raw_save() -> None:
        faiss.write_index(index, str(raw_index))
        raw_meta.write_bytes(orjson.dumps(meta))

    def raw_load() -> Any:
        return faiss.read_index(str(raw_index)), orjson.loads(raw_meta.read_bytes())

    def parag_save_no_fsync() -> None:
        with NoFsync():
            store.save(store_dir)

    return {
        "raw save, index only": timed(lambda: faiss.write_index(index, str(raw_index))),
        "raw save": timed(raw_save),
        "parag save": timed(lambda: store.save(store_dir)),
        "parag save, fsync off": timed(parag_save_no_fsync),
        "raw load, index only": timed(lambda: faiss.read_index(str(raw_index))),
        "raw load": timed(raw_load),
        "parag load": timed(lambda: FAISSVectorStore.load(store_dir)),
        "parag load, verify=False": timed(lambda: FAISSVectorStore.load(store_dir, verify=False)),
        "parag load, mmap": timed(lambda: FAISSVectorStore.load(store_dir, mmap=True)),
        "parag load, mmap, verify=False": timed(lambda: FAISSVectorStore.load(store_dir, mmap=True, verify=False)),
    }


RSS_PROBE = """
import sys, numpy as np, faiss
from parag import FAISSVectorStore
def rss():
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmRSS"))
path, how = sys.argv[1], sys.argv[2]
before = rss()
if how == "raw read_index":
    kept = faiss.read_index(sys.argv[3])
elif how == "raw read_index, mmap":
    kept = faiss.read_index(sys.argv[3], faiss.IO_FLAG_MMAP_IFC)
else:
    kept = FAISSVectorStore.load(path, mmap="mmap" in how, verify="verify=False" not in how)
after = rss()
searched = after
if how.startswith("parag"):
    kept.search(np.zeros((10, kept.dimension), np.float32), 10)
    searched = rss()
print(after - before, searched - before)
"""


def rss(store_dir: Path, raw_index: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for how in ("raw read_index", "raw read_index, mmap", "parag load", "parag load, mmap",
                "parag load, mmap, verify=False"):
        proc = subprocess.run(
            [sys.executable, "-c", RSS_PROBE, str(store_dir), how, str(raw_index)],
            capture_output=True, text=True, check=True,
        )
        after, searched = map(int, proc.stdout.split())
        out[how] = (after, searched)
    return out


def print_table(runs: list[dict[str, float]]) -> None:
    def median(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    def ratio(key: str, base: str) -> float:
        return statistics.median(r[key] / r[base] for r in runs)

    print(f"\n{'operation':34s} {'median s':>9s} {'vs raw':>8s} {'vs index':>9s}   runs (s)")
    for key in runs[0]:
        base = "raw save" if "save" in key else "raw load"
        cmp = "" if key.startswith("raw") else f"{ratio(key, base):7.2f}x"
        cmp_index = "" if key.startswith("raw") else f"{ratio(key, base + ', index only'):8.2f}x"
        print(f"{key:34s} {median(key):9.3f} {cmp:>8s} {cmp_index:>9s}   {' '.join(f'{r[key]:.2f}' for r in runs)}")
    print("(vs raw: the ratio to raw FAISS + orjson of the metadata; vs index: to raw FAISS alone)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=384)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="scratch directory (default: a temporary one)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-persistence-", dir=args.dir))
    try:
        print(f"parag {parag.__version__}, faiss {faiss.__version__}, numpy {np.__version__}, "
              f"{os.cpu_count()} CPUs; scratch {folder}")
        print(f"building a Flat L2 store of {args.n:,} x {args.d} synthetic clustered float32 vectors "
              "with small metadata ...", flush=True)
        started = time.perf_counter()
        store, meta = build(args.n, args.d)
        print(f"built in {time.perf_counter() - started:.1f} s", flush=True)
        runs = []
        for i in range(args.runs):
            runs.append(run_once(store, meta, folder))
            print(f"run {i + 1}/{args.runs} done", flush=True)
        sizes = {p.name.split(".")[0]: p.stat().st_size for p in (folder / "store").iterdir() if p.name[0] != "."}
        print("store files: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sorted(sizes.items())))
        print_table(runs)
        del store, meta
        gc.collect()
        print(f"\n{'RSS growth of a fresh process':34s} {'after load':>12s} {'+10 searches':>13s}")
        figures = rss(folder / "store", folder / "raw.faiss")
        for how, (after, searched) in figures.items():
            print(f"{how:34s} {after / 1e6:9.1f} MB {searched / 1e6:10.1f} MB")
        normal, mapped = figures["parag load"][0], figures["parag load, mmap"][0]
        print(f"\nmmap load RSS / normal load RSS: {mapped / normal:.1%} "
              f"(raw FAISS index alone: {figures['raw read_index, mmap'][0] / figures['raw read_index'][0]:.1%})")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
