"""parag demo: semantic search over real Debian package descriptions.

Run it with ``./run demo`` (sets up .venv first) or ``python examples/demo.py``.

The data ships in examples/data (built by make_demo_data.py): 4,000 one-line descriptions of
Debian packages and 20 questions such as "play chess against the computer", all embedded
beforehand with the all-MiniLM-L6-v2 sentence model, so no model is needed here.

The demo
  1. builds an HNSW store with cosine similarity: each package's name is its vector's id
     (a string id) and its description the vector's document,
  2. asks it the 20 questions and prints the best 3 packages for each,
  3. saves the store to a temporary directory and loads it back,
  4. asks the loaded store the same questions and checks the answers are identical
     (exit status 1 if they are not),
  5. prints how long each step took.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from parag.vectorstore import FAISSVectorStore

DATA = Path(__file__).resolve().parent / "data"
K = 3  # answers shown per question


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def ask(store: FAISSVectorStore, queries: np.ndarray) -> tuple[list, list[float]]:
    """Search for each question on its own, as an application answering users would.

    Returns the answers (one list of records ``{"id", "score", "document", "metadata"}``
    per question) and the seconds each search took.
    """
    answers, seconds = [], []
    for query in queries:
        start = time.perf_counter()
        answers.append(store.search(query, k=K).records())
        seconds.append(time.perf_counter() - start)
    return answers, seconds


def clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def main() -> int:
    sys.stdout.reconfigure(errors="replace")  # never fail on a terminal that lacks a character
    width = min(shutil.get_terminal_size((100, 24)).columns, 110)

    # ------------------------------------------------------------------ 1. the data
    vectors = np.load(DATA / "vectors.npy")  # float16 to keep the repo small; add() makes float32
    texts = read_jsonl(DATA / "texts.jsonl")  # {"package", "text"} per row of vectors
    queries = np.load(DATA / "queries.npy")
    questions = [q["text"] for q in read_jsonl(DATA / "queries.jsonl")]
    print(
        f"parag demo: {len(questions)} questions to {len(texts):,} Debian package descriptions\n"
        f"(all-MiniLM-L6-v2 sentence embeddings, {vectors.shape[1]} dimensions)\n"
    )

    # ------------------------------------------------------------------ 2. build the store
    start = time.perf_counter()
    store = FAISSVectorStore(dimension=vectors.shape[1], index_type="HNSW", metric="cosine")
    store.add(vectors, ids=[t["package"] for t in texts], documents=[t["text"] for t in texts])
    build_s = time.perf_counter() - start
    params = ", ".join(f"{name}={value}" for name, value in store.params.items())
    print(f"Built an {store.index_type} store ({store.metric}, {params}) of {len(store):,} vectors in {build_s:.2f} s\n")

    # ------------------------------------------------------------------ 3. ask the questions
    answers, search_s = ask(store, queries)
    print(f"Top {K} answers (score = cosine similarity, 1 is identical meaning):\n")
    for question, hits in zip(questions, answers):
        print(f'  "{question}"')
        name_width = max(len(hit["id"]) for hit in hits)
        for hit in hits:
            line = f"    {hit['score']:.3f}  {hit['id']:<{name_width}}  {hit['document']}"
            print(clip(line, width))
        print()

    # ------------------------------------------------------------------ 4. save and load back
    with tempfile.TemporaryDirectory(prefix="parag-demo-") as tmp:
        path = Path(tmp) / "debian.store"
        start = time.perf_counter()
        store.save(path)
        save_s = time.perf_counter() - start
        size_mb = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6

        start = time.perf_counter()
        loaded = FAISSVectorStore.load(path)
        load_s = time.perf_counter() - start
        print(f"Saved the store to a temporary directory ({size_mb:.1f} MB) and loaded it back.\n")

    # ------------------------------------------------------------------ 5. ask again and compare
    # Identical means the same ids, the same scores to the last bit, the same documents.
    again, _ = ask(loaded, queries)
    print("The loaded store's answers, compared with the first ones:")
    question_width = max(map(len, questions))
    different = []
    for question, before, after in zip(questions, answers, again):
        same = before == after
        if not same:
            different.append(question)
        packages = ", ".join(hit["id"] for hit in after)
        print(clip(f"  {'same' if same else 'DIFFERENT'}  {question:<{question_width}}  {packages}", width))
    if different:
        print(f"\nFAILED: the loaded store answers {len(different)} of {len(questions)} questions differently")
        return 1
    print(f"\nAll {len(questions)} answers are identical after save and load.\n")

    # ------------------------------------------------------------------ 6. timings
    per_query_ms = 1000 * float(np.median(search_s))
    print(
        f"Timings: build {build_s:.2f} s ({len(texts):,} vectors), "
        f"search {per_query_ms:.2f} ms per question (median), "
        f"save {1000 * save_s:.0f} ms, load {1000 * load_s:.0f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
