"""Vector stores: one API (:class:`VectorStore`), several engines."""

from parag.vectorstore.base import SearchResult, VectorStore
from parag.vectorstore.faiss_store import FAISSVectorStore, GetResult

__all__ = ["FAISSVectorStore", "GetResult", "SearchResult", "VectorStore"]
