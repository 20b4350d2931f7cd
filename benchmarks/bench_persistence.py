"""Save / load speed and memory-mapped RSS of parag against raw FAISS + orjson.

    python benchmarks/bench_persistence.py                   # 1M x 384 Flat, 3 runs: the published run
    python benchmarks/bench_persistence.py --quick           # 100k, 1 run, to benchmarks/results/quick
    python benchmarks/bench_persistence.py --n 100000 --runs 5 --dir /tmp/bench --out /tmp/report
    python benchmarks/bench_persistence.py --report-only     # rewrite the report from the raw results

Raw results (every run's timings, the RSS probes) go to ``RESULTS/results.json`` (default
``docs/bench-results/persistence/``); the report ``OUT/bench-persistence.md`` (default
``docs/``) is generated from that file alone. A run that measures less than the default
writes both to ``benchmarks/results/quick/`` unless told otherwise.

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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_provenance  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


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
    index = store.faiss_index

    def raw_save() -> None:
        faiss.write_index(index, str(raw_index))
        raw_meta.write_bytes(orjson.dumps(meta))

    def raw_load() -> Any:
        return faiss.read_index(str(raw_index)), orjson.loads(raw_meta.read_bytes())

    def raw_save_fsynced() -> None:  # the same, made durable as parag's save is
        raw_save()
        for file in (raw_index, raw_meta):
            fd = os.open(file, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)

    def parag_save_no_fsync() -> None:
        with NoFsync():
            store.save(store_dir)

    return {
        "raw save, index only": timed(lambda: faiss.write_index(index, str(raw_index))),
        "raw save": timed(raw_save),
        "raw save + fsync": timed(raw_save_fsynced),
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


def report(data: dict[str, Any], results: Path) -> str:
    """The Markdown report, from the raw results alone."""
    need = bench_provenance.need
    p = need(data, "params", "persistence results")
    runs = need(data, "runs", "persistence results")
    rss_figures = need(data, "rss", "persistence results")

    def values(key: str) -> list[float]:
        return [need(r, key, "a persistence run") for r in runs]

    lines = ["# Save and load: parag vs raw FAISS + orjson", "",
             "_Generated by `python benchmarks/bench_persistence.py` from the raw results named below; do not edit "
             "by hand._", "", *bench_provenance.describe(need(data, "provenance", "persistence results"), results),
             f"- **Data**: {p['n']:,} x {p['d']} **synthetic** clustered float32 vectors (Flat, L2) with small "
             f"metadata (`{{\"doc\": \"doc-<i // 8>\", \"chunk\": <i % 8>}}`); store files: "
             + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sorted(need(data, "store_files", "results").items())),
             f"- **Method**: {len(runs)} runs, every operation timed back to back in each run, page cache warm. "
             "The baseline is `faiss.write_index` / `read_index` of the same index plus `orjson` of the same metadata "
             "list (no fsync, no checksum). *median s* is the median over runs; *ratio of medians* divides parag's "
             "median by the baseline's; *per-run ratios* divide within each run (a shared machine's noise moves "
             "both sides of one run together).",
             "*vs fsynced raw* compares a save with the baseline made durable too (both files fsynced), "
             "as parag's save is.",
             "", "| operation | median s | ratio of medians, vs raw + orjson | per-run ratios | vs raw index alone "
             "(ratio of medians) | vs fsynced raw (ratio of medians) | runs (s) |", "|---" * 7 + "|"]
    for key in runs[0]:
        base = "raw save" if "save" in key else "raw load"
        mine = statistics.median(values(key))
        cells = ["", "", "", ""]
        if not key.startswith("raw"):
            durable = "raw save + fsync" in runs[0] and key.startswith("parag save")
            cells = [f"{mine / statistics.median(values(base)):.2f}x",
                     ", ".join(f"{a / b:.2f}x" for a, b in zip(values(key), values(base))),
                     f"{mine / statistics.median(values(base + ', index only')):.2f}x",
                     f"{mine / statistics.median(values('raw save + fsync')):.2f}x" if durable else ""]
        lines.append(f"| {key} | {mine:.3f} | " + " | ".join(cells) + f" | {', '.join(f'{v:.2f}' for v in values(key))} |")
    lines += ["", "RSS growth of a fresh process (VmRSS after the load minus before it; then after 10 searches):", "",
              "| load | after load MB | after 10 searches MB |", "|---|---|---|"]
    for how, (after, searched) in rss_figures.items():
        lines.append(f"| {how} | {after / 1e6:,.1f} | {searched / 1e6:,.1f} |")
    normal, mapped = rss_figures["parag load"][0], rss_figures["parag load, mmap"][0]
    lines += ["", f"mmap load RSS / normal load RSS: {mapped / normal:.1%} (raw FAISS index alone: "
              f"{rss_figures['raw read_index, mmap'][0] / rss_figures['raw read_index'][0]:.1%})"]
    return "\n".join(lines) + "\n"


def measure(n: int, d: int, n_runs: int, folder: Path) -> dict[str, Any]:
    print(f"building a Flat L2 store of {n:,} x {d} synthetic clustered float32 vectors with small metadata ...",
          flush=True)
    started = time.perf_counter()
    store, meta = build(n, d)
    print(f"built in {time.perf_counter() - started:.1f} s", flush=True)
    runs = []
    for i in range(n_runs):
        runs.append(run_once(store, meta, folder))
        print(f"run {i + 1}/{n_runs} done", flush=True)
    sizes = {p.name.split(".")[0]: p.stat().st_size for p in (folder / "store").iterdir() if p.name[0] != "."}
    del store, meta
    gc.collect()
    return {"params": {"n": n, "d": d, "runs": n_runs}, "runs": runs, "store_files": sizes,
            "rss": rss(folder / "store", folder / "raw.faiss")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 vectors, 1 run, to benchmarks/results/quick")
    parser.add_argument("--n", type=int)
    parser.add_argument("--d", type=int, default=384)
    parser.add_argument("--runs", type=int)
    parser.add_argument("--dir", type=Path, default=None, help="scratch directory (default: a temporary one)")
    parser.add_argument("--out", type=Path, help="where bench-persistence.md goes (default docs/)")
    parser.add_argument("--results", type=Path, help="where results.json goes (default docs/bench-results/persistence)")
    parser.add_argument("--report-only", action="store_true", help="only rewrite the report from RESULTS/results.json")
    args = parser.parse_args(argv)
    # Only the default run is published (docs/); a run that measures less writes elsewhere.
    partial = args.quick or args.n is not None or args.runs is not None or args.d != 384
    base = bench_provenance.QUICK_RESULTS if partial else bench_provenance.PUBLISHED_RESULTS
    results = args.results or base / "persistence"
    out = args.out or (base if partial else ROOT / "docs")
    if not args.report_only:
        folder = Path(tempfile.mkdtemp(prefix="bench-persistence-", dir=args.dir))
        try:
            print(f"parag {parag.__version__}, faiss {faiss.__version__}, numpy {np.__version__}, "
                  f"{os.cpu_count()} CPUs; scratch {folder}")
            data = {"provenance": bench_provenance.provenance(), "argv": sys.argv[1:] if argv is None else argv,
                    **measure(args.n or (100_000 if args.quick else 1_000_000), args.d,
                              args.runs or (1 if args.quick else 3), folder)}
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        bench_provenance.write_json(results / "results.json", data)
    text = report(bench_provenance.read_json(results / "results.json"), results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench-persistence.md").write_text(text)
    print(text + f"\nwritten: {out / 'bench-persistence.md'} (raw results: {results})")


if __name__ == "__main__":
    main()
