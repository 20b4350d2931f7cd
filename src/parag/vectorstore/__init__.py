"""Vector stores: one API (:class:`VectorStore`), several engines.

``MilvusVectorStore`` is imported on first use (it needs ``pip install parag[milvus]``).
"""

from typing import Any

from parag.vectorstore.base import GetResult, SearchResult, VectorStore
from parag.vectorstore.faiss_store import FAISSVectorStore

__all__ = ["FAISSVectorStore", "GetResult", "MilvusVectorStore", "SearchResult", "VectorStore"]


def __getattr__(name: str) -> Any:
    if name == "MilvusVectorStore":
        from parag.vectorstore.milvus_store import MilvusVectorStore

        return MilvusVectorStore
    raise AttributeError(f"module 'parag.vectorstore' has no attribute {name!r}")
