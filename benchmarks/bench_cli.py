"""Build throughput of ``parag build`` against the library's ``add`` in one call.

    flock /tmp/parag-bench.lock python benchmarks/bench_cli.py                 # 1M x 384, 3 runs
    flock /tmp/parag-bench.lock python benchmarks/bench_cli.py --rows 100000 --runs 1
    python benchmarks/bench_cli.py --report RAW.json                           # its table again
    python benchmarks/bench_cli.py --readme      # README <- tables of docs/bench-results/cli/*.json

Input: ROWS synthetic float32 vectors in a ``.npy`` file (Gaussian clusters, fixed seed) and
one record per row in a ``.jsonl`` file, ``{"id": i, "metadata": {"doc": "doc-<i // 8>",
"chunk": <i % 8>}}``, written once to --dir.

Both sides start a fresh Python process, build a Flat (or --index) store of the same rows,
ids and metadata, and save it to a directory:

* ``cli``: ``parag build STORE --vectors X.npy --records R.jsonl`` (reads --batch-size rows
  at a time, .npy and .jsonl alike, one ``add`` per batch);
* ``library``: ``np.load`` of the whole array, every line parsed into a list, one
  ``store.add(x, metadata, ids)`` call, ``store.save``.

Wall time is the whole process (imports included), rows/s = rows / wall, and peak RSS the
process's maximum resident set (``wait4``'s ``ru_maxrss``). Runs alternate the two sides;
the table quotes medians, and the cli/library ratios are taken within each run. Raw results
(with the commit, versions and machine: bench_provenance) go to --out as JSON; the published
ones are docs/bench-results/cli/*.json, whose tables the README quotes (tests/test_readme.py
checks that they agree).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PARAG = Path(sys.executable).with_name("parag")
PUBLISHED = ROOT / "docs" / "bench-results" / "cli"

LIBRARY = """
import sys, numpy as np, orjson
from parag.vectorstore import FAISSVectorStore
vectors, records, store, index = sys.argv[1:5]
x = np.load(vectors)
with open(records, "rb") as f:
    rows = [orjson.loads(line) for line in f]
s = FAISSVectorStore(x.shape[1], index)
s.add(x, [r["metadata"] for r in rows], ids=[r["id"] for r in rows])
s.save(store)
"""


def make_inputs(folder: Path, rows: int, dim: int, seed: int = 0) -> tuple[Path, Path]:
    """The .npy and .jsonl inputs, written in chunks (reused when already there)."""
    vectors, records = folder / f"vectors-{rows}x{dim}.npy", folder / f"records-{rows}.jsonl"
    if vectors.exists() and records.exists():
        return vectors, records
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((100, dim)).astype(np.float32)
    out = np.lib.format.open_memmap(vectors, mode="w+", dtype=np.float32, shape=(rows, dim))
    with open(records, "w") as f:
        for start in range(0, rows, 100_000):
            n = min(100_000, rows - start)
            out[start : start + n] = centres[rng.integers(0, 100, n)] + 0.3 * rng.standard_normal((n, dim))
            f.writelines(
                f'{{"id": {i}, "metadata": {{"doc": "doc-{i // 8}", "chunk": {i % 8}}}}}\n'
                for i in range(start, start + n)
            )
    out.flush()
    return vectors, records


def measure(argv: list[str]) -> dict[str, float]:
    """Wall seconds and peak RSS (MB) of one fresh process."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv[:3]} failed: {process.stderr.read().decode()}")
    return {"seconds": wall, "peak_rss_mb": usage.ru_maxrss / 1024}


def run(args: argparse.Namespace) -> dict:
    from bench_provenance import provenance  # beside this script

    vectors, records = make_inputs(args.dir, args.rows, args.dim)
    store = args.dir / "store"
    sides = {
        "cli": [str(PARAG), "build", str(store), "--vectors", str(vectors), "--records", str(records),
                "--index", args.index, "--batch-size", str(args.batch_size)],
        "library": [sys.executable, "-c", LIBRARY, str(vectors), str(records), str(store), args.index],
    }
    runs = []
    for r in range(args.runs):
        result = {}
        for name, argv in (sides.items() if r % 2 == 0 else reversed(sides.items())):
            shutil.rmtree(store, ignore_errors=True)
            result[name] = measure(argv)
            result[name]["rows_per_s"] = args.rows / result[name]["seconds"]
            print(f"run {r}: {name}: {result[name]}", file=sys.stderr)
        runs.append(result)
    shutil.rmtree(store, ignore_errors=True)
    return {
        "benchmark": "cli build", "rows": args.rows, "dim": args.dim, "index": args.index,
        "batch_size": args.batch_size, "input_mb": {"npy": vectors.stat().st_size / 2**20, "jsonl": records.stat().st_size / 2**20},
        "provenance": provenance(), "runs": runs,
    }


def report(raw: dict) -> str:
    """A markdown table of the medians in ``raw``."""
    runs = raw["runs"]
    med = {side: {k: statistics.median(r[side][k] for r in runs) for k in runs[0][side]} for side in ("cli", "library")}
    ratio = {k: statistics.median(r["cli"][k] / r["library"][k] for r in runs) for k in runs[0]["cli"]}
    lines = [
        f"Build of {raw['rows']:,} x {raw['dim']} float32 rows ({raw['index']}, .npy {raw['input_mb']['npy']:.0f} MB "
        f"+ .jsonl {raw['input_mb']['jsonl']:.0f} MB), {len(runs)} runs, medians; commit "
        f"{raw['provenance']['commit'][:10]}, {raw['provenance']['machine']}:",
        "",
        "| | wall s | rows/s | peak RSS MB |",
        "|---|---|---|---|",
    ]
    for side, title in (("cli", f"`parag build` (batches of {raw['batch_size']:,})"), ("library", "library: one `add` call")):
        m = med[side]
        lines.append(f"| {title} | {m['seconds']:.1f} | {m['rows_per_s']:,.0f} | {m['peak_rss_mb']:,.0f} |")
    lines.append(f"| cli / library | {ratio['seconds']:.2f}x | {ratio['rows_per_s']:.2f}x | {ratio['peak_rss_mb']:.2f}x |")
    return "\n".join(lines)


def published(results: Path = PUBLISHED) -> str:
    """The README's block: the report of every published raw results file."""
    return "\n\n".join(report(json.loads(f.read_text())) for f in sorted(results.glob("*.json"))) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--index", default="Flat")
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/parag-bench-cli"))
    parser.add_argument("--out", type=Path, help="Raw results file (default: benchmarks/results/cli/INDEX-ROWSxDIM.json).")
    parser.add_argument("--report", type=Path, metavar="RAW.json", help="Print the table of saved results and exit.")
    parser.add_argument("--readme", action="store_true", help="Write the published results' tables into README.md and exit.")
    args = parser.parse_args()
    if args.readme:
        readme = ROOT / "README.md"
        before, rest = readme.read_text().split("<!-- begin cli benchmark -->\n")
        after = rest.split("<!-- end cli benchmark -->")[1]
        readme.write_text(f"{before}<!-- begin cli benchmark -->\n{published()}<!-- end cli benchmark -->{after}")
        return
    if args.report:
        print(report(json.loads(args.report.read_text())))
        return
    raw = run(args)
    args.out = args.out or ROOT / "benchmarks" / "results" / "cli" / f"{args.index.lower()}-{args.rows}x{args.dim}.json"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(raw, indent=2) + "\n")
    print(report(raw))


if __name__ == "__main__":
    main()
