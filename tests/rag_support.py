"""Real texts with precomputed embeddings (examples/data), and deterministic embeddings that
look a text's vector up, for the LangChain and LlamaIndex tests."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import orjson

DATA = Path(__file__).resolve().parents[1] / "examples" / "data"


def corpus(n: int) -> tuple[list[str], list[dict], np.ndarray]:
    """The first ``n`` distinct texts of examples/data, their metadata and float32 vectors
    (unit length), plus a few fields to filter on."""
    lines = (DATA / "texts.jsonl").read_bytes().splitlines()
    vectors = np.load(DATA / "vectors.npy").astype(np.float32)
    texts, metadata, rows, seen = [], [], [], set()
    for row, line in enumerate(lines):
        record = orjson.loads(line)
        if record["text"] in seen:
            continue
        seen.add(record["text"])
        i = len(texts)
        texts.append(record["text"])
        metadata.append({"package": record["package"], "group": i % 7, "lib": record["package"].startswith("lib"),
                         "tags": ["even" if i % 2 == 0 else "odd", f"m{i % 5}"]})
        rows.append(row)
        if len(texts) == n:
            break
    return texts, metadata, vectors[rows]


def queries() -> tuple[list[str], np.ndarray]:
    texts = [orjson.loads(line)["text"] for line in (DATA / "queries.jsonl").read_bytes().splitlines()]
    return texts, np.load(DATA / "queries.npy").astype(np.float32)


class Lookup:
    """Text -> vector: the precomputed vector of a known text, a seeded random unit vector of
    any other."""

    def __init__(self, texts: list[str], vectors: np.ndarray) -> None:
        self.table = dict(zip(texts, vectors))
        self.dimension = vectors.shape[1]

    def __call__(self, text: str) -> list[float]:
        if text in self.table:
            return self.table[text].tolist()
        v = np.random.default_rng(zlib.crc32(text.encode())).standard_normal(self.dimension)
        return (v / np.linalg.norm(v)).astype(np.float32).tolist()


def langchain_embeddings(lookup: Lookup):  # noqa: ANN201 - langchain_core is an optional import
    from langchain_core.embeddings import Embeddings

    class LookupEmbeddings(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [lookup(t) for t in texts]

        def embed_query(self, text: str) -> list[float]:
            return lookup(text)

    return LookupEmbeddings()


def llama_index_embedding(lookup: Lookup):  # noqa: ANN201 - llama_index is an optional import
    from llama_index.core.base.embeddings.base import BaseEmbedding

    class LookupEmbedding(BaseEmbedding):
        def _get_text_embedding(self, text: str) -> list[float]:
            return lookup(text)

        def _get_query_embedding(self, query: str) -> list[float]:
            return lookup(query)

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return lookup(query)

    return LookupEmbedding(model_name="lookup", embed_batch_size=64)
