"""parag: the retrieval half of RAG. A FAISS vector store that is correct, fast and safe to load."""

from parag._version import __version__
from parag.errors import ParagError
from parag.migration import migrate
from parag.vectorstore import FAISSVectorStore, SearchResult, VectorStore


def __getattr__(name: str) -> object:
    if name == "MilvusVectorStore":  # imported on first use: it needs parag[milvus]
        from parag.vectorstore.milvus_store import MilvusVectorStore

        return MilvusVectorStore
    raise AttributeError(f"module 'parag' has no attribute {name!r}")


__all__ = ["FAISSVectorStore", "MilvusVectorStore", "ParagError", "SearchResult", "VectorStore", "__version__", "migrate"]
