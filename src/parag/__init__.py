"""parag: the retrieval half of RAG. A FAISS vector store that is correct, fast and safe to load."""

from parag._version import __version__
from parag.errors import ParagError
from parag.vectorstore import FAISSVectorStore, SearchResult, VectorStore

__all__ = ["FAISSVectorStore", "ParagError", "SearchResult", "VectorStore", "__version__"]
