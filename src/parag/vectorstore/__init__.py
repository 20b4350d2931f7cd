"""Vector stores: one API (:class:`VectorStore`), several engines."""

from parag.vectorstore.base import GetResult, SearchResult, VectorStore
from parag.vectorstore.faiss_store import FAISSVectorStore

__all__ = ["FAISSVectorStore", "GetResult", "SearchResult", "VectorStore"]
