"""parag: the retrieval half of RAG. A FAISS vector store that is correct, fast and safe to load."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("parag")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from parag.errors import ParagError  # noqa: E402
from parag.vectorstore import FAISSVectorStore, SearchResult, VectorStore  # noqa: E402

__all__ = ["FAISSVectorStore", "ParagError", "SearchResult", "VectorStore", "__version__"]
