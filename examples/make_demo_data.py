"""Build the small data slice that ``examples/demo.py`` searches (examples/data/).

You do not need to run this: its output is committed. It documents where the demo's data
comes from and lets anyone rebuild it (the output is deterministic).

Source: ``../shared/data/debian-minilm`` next to the repository (see its README): 58,940
one-line Debian package descriptions embedded with all-MiniLM-L6-v2 (384 dimensions, unit
length), and 20 natural-language demo questions embedded with the same model.

The slice
    Every row that is among the top ``--neighbours`` (50) exact inner-product neighbours of some
    demo question in the *full* base, so the demo finds the same best answers it would find in
    all 58,940 descriptions; then a random sample of the other rows (fixed seed) up to ``--rows``
    (4,000) in all, so the questions are answered among a crowd of unrelated packages. Rows keep
    their order in the source.

Files written to examples/data/
    vectors.npy     float16 (rows, 384): the description embeddings
    texts.jsonl     {"package", "text"} per row of vectors.npy
    queries.npy     float32 (20, 384): the demo questions' embeddings
    queries.jsonl   {"id", "text"} per row of queries.npy

float16 halves the download; the script checks that it changes no demo answer: each
question's top-5 in the float16 slice (normalised again, as a cosine store does) is its top-5
in the full float32 base, in the same order. It fails otherwise.

Usage::

    python examples/make_demo_data.py [--source DIR] [--rows N] [--neighbours K] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parents[1] / "shared" / "data" / "debian-minilm"
OUT = HERE / "data"
CHECK_K = 5  # answers that must survive float16 unchanged, per question


def top_k(queries: np.ndarray, base: np.ndarray, k: int) -> np.ndarray:
    """Row numbers of the k largest inner products with each query, best first (exact)."""
    scores = queries @ base.T
    part = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1, kind="stable")
    return np.take_along_axis(part, order, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="the debian-minilm folder")
    parser.add_argument("--rows", type=int, default=4000, help="rows in the slice (default 4000)")
    parser.add_argument("--neighbours", type=int, default=50, help="exact neighbours kept per question")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random fill")
    args = parser.parse_args()

    base = np.load(args.source / "base.npy")
    queries = np.load(args.source / "demo_queries.npy").astype(np.float32)
    texts = [json.loads(line) for line in (args.source / "texts.jsonl").read_text().splitlines()]
    questions = [json.loads(line) for line in (args.source / "demo_queries.jsonl").read_text().splitlines()]
    assert len(texts) == len(base) and len(questions) == len(queries)

    # 1. The true best answers to every question, from the full base.
    best = top_k(queries, base, args.neighbours)
    keep = np.unique(best)
    if len(keep) > args.rows:
        sys.exit(f"--rows {args.rows} is below the {len(keep)} neighbours that must be kept")

    # 2. A random sample of the other rows, up to --rows.
    rng = np.random.default_rng(args.seed)
    others = np.setdiff1d(np.arange(len(base)), keep)
    fill = rng.choice(others, size=args.rows - len(keep), replace=False)
    rows = np.sort(np.concatenate([keep, fill]))

    # 3. float16 must not change the answers: compare top-5 in the slice with the full base.
    vectors = base[rows].astype(np.float16)
    as_stored = vectors.astype(np.float32)
    as_stored /= np.linalg.norm(as_stored, axis=1, keepdims=True)  # what a cosine store keeps
    found = rows[top_k(queries, as_stored, CHECK_K)]
    changed = [q["text"] for q, f, t in zip(questions, found, best[:, :CHECK_K]) if not np.array_equal(f, t)]
    if changed:
        sys.exit(f"float16 changes the top-{CHECK_K} of: {changed}")

    # 4. Write the slice.
    OUT.mkdir(exist_ok=True)
    np.save(OUT / "vectors.npy", vectors)
    np.save(OUT / "queries.npy", queries)
    with open(OUT / "texts.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            row = texts[r]
            assert row["id"] == r
            f.write(json.dumps({"package": row["package"], "text": row["text"]}, ensure_ascii=False) + "\n")
    with open(OUT / "queries.jsonl", "w", encoding="utf-8") as f:
        for q in questions:
            f.write(json.dumps({"id": q["id"], "text": q["text"]}, ensure_ascii=False) + "\n")

    size = sum(p.stat().st_size for p in OUT.iterdir()) / 1e6
    print(
        f"{len(rows)} rows ({len(keep)} exact neighbours of the {len(queries)} questions + "
        f"{len(fill)} random), {size:.1f} MB in {OUT}; float16 keeps every top-{CHECK_K}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
