"""parag.migrate and ``parag migrate`` between a FAISS store and the session's real Milvus
server, both ways, with int and string ids (quotes and backslashes included), metadata with
lists and documents: every record arrives, a rerun copies nothing twice, and the filters,
``$document`` included, answer the same on both sides. Skipped where the server cannot start."""

from __future__ import annotations

import numpy as np
import pytest

import parag
from parag.vectorstore import FAISSVectorStore
from tests.cli_support import invoke_json
from tests.conftest import clustered

pytest.importorskip("pymilvus")
from parag.vectorstore import MilvusVectorStore  # noqa: E402

N = 300


def _ids(kind: str) -> list:
    return list(range(1000, 1000 + N)) if kind == "int" else [f"doc-{i}\"'\\ é" for i in range(N)]


@pytest.mark.parametrize("kind", ["int", "str"])
def test_migrate_every_record_both_ways(milvus, tmp_path, kind):
    ids = _ids(kind)
    source = FAISSVectorStore(8, "HNSW", "cosine", M=16)
    source.add(clustered(N, 8, seed=6), [{"n": i, "tags": ["a", str(i % 3)]} for i in range(N)], ids=ids,
               documents=[f"text {i}" if i % 4 else None for i in range(N)])
    source.delete(ids[:5])
    kept = ids[5:]
    destination = MilvusVectorStore(8, "HNSW", "cosine", uri=milvus.uri, token=milvus.token,
                                    collection=f"migrate_{kind}", M=16)
    try:
        assert parag.migrate(source, destination, batch_size=128, progress=False) == N - 5
        assert parag.migrate(source, destination, batch_size=1000, progress=False) == N - 5  # upserts
        assert len(destination) == N - 5 and destination.ids() == kept
        assert destination.get(kept).records() == source.get(kept).records()
        q = source.get(kept[:3], include_vectors=True).vectors
        for where in ({"tags": {"$contains": "1"}}, {"$document": {"$contains": "text 1"}}, {"n": {"$ne": 7}}):
            assert destination.search(q, k=5, filter=where).ids == source.search(q, k=5, filter=where).ids, where

        back = FAISSVectorStore(8, "Flat", "cosine")
        assert parag.migrate(destination, back, batch_size=100, progress=False) == N - 5
        assert back.ids() == kept and back.get(kept).records() == source.get(kept).records()
        got, want = back.get(kept, include_vectors=True), source.get(kept, include_vectors=True)
        np.testing.assert_allclose(got.vectors, want.vectors, atol=1e-6)

        # The command line, out of the collection into a directory.
        summary = invoke_json("migrate", f"{milvus.uri}#migrate_{kind}", tmp_path / "copy", "--token", milvus.token)
        assert summary["count"] == N - 5 and FAISSVectorStore.load(tmp_path / "copy").ids() == kept
    finally:
        destination.drop()
