"""The spec's usage example (../shared/spec/faiss_store.md), verbatim, runs and answers correctly."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import oracle

SPEC = Path(__file__).resolve().parents[2] / "shared" / "spec" / "faiss_store.md"

# Copied verbatim from the "## Usage Example" section of the spec, so that the test runs
# (and documents the example) even where ../shared is absent.
SPEC_EXAMPLE = """\
from parag.vectorstore import FAISSVectorStore
import numpy as np

store = FAISSVectorStore(dimension=384, index_type="HNSW", metric="IP")

# Add some data
embeddings = np.random.rand(10, 384).astype('float32')
meta = [{"doc_id": i} for i in range(10)]
store.add(embeddings, meta)

# Search
dist, idx, metadata = store.search(embeddings[0], k=3)
print(f"Nearest hit: {metadata[0]['doc_id']} with dist {dist[0]}")
"""


def spec_code_block() -> str:
    """The python code block under "## Usage Example" in the spec file."""
    if not SPEC.is_file():
        pytest.skip(f"{SPEC} is not present")
    text = SPEC.read_text(encoding="utf-8")
    section = text.split("## Usage Example", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the spec's Usage Example has no python code block"
    return match.group(1)


def run_example(code: str) -> tuple[dict, str]:
    namespace: dict = {"__name__": "__spec_example__"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "spec_usage_example", "exec"), namespace)  # noqa: S102 - the spec's own code
    return namespace, out.getvalue()


def check_answers(ns: dict, printed: str) -> None:
    store, embeddings = ns["store"], ns["embeddings"]
    dist, idx, metadata = ns["dist"], ns["idx"], ns["metadata"]
    assert len(store) == 10
    assert store.index_type == "HNSW" and store.metric == "IP" and store.dimension == 384
    # Three flat lists of k=3 items, plain Python numbers.
    assert len(dist) == len(idx) == len(metadata) == 3
    assert all(type(i) is int for i in idx) and all(type(d) is float for d in dist)
    # The ids generated from 0 upward are the row numbers, and metadata follows the ids.
    assert [m["doc_id"] for m in metadata] == idx
    # IP scores: the exact top 3 inner products (10 vectors: HNSW finds them all).
    want_scores, want_rows = oracle(embeddings, embeddings[0], 3, "IP")
    np.testing.assert_allclose(dist, want_scores[0], rtol=1e-4, atol=1e-4)
    assert set(idx) == set(want_rows[0].tolist())
    assert printed == f"Nearest hit: {metadata[0]['doc_id']} with dist {dist[0]}\n"


def test_spec_example_verbatim_copy_runs():
    check_answers(*run_example(SPEC_EXAMPLE))


def test_spec_file_example_runs_and_matches_the_copy():
    code = spec_code_block()
    assert code == SPEC_EXAMPLE, "the spec's usage example changed: update SPEC_EXAMPLE"
    check_answers(*run_example(code))
