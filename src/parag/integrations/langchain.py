"""A LangChain vector store backed by any parag store: ``pip install 'parag[langchain]'``.

Examples
--------
>>> from langchain_core.embeddings import DeterministicFakeEmbedding
>>> from parag.integrations.langchain import ParagVectorStore
>>> vs = ParagVectorStore(DeterministicFakeEmbedding(size=16), metric="cosine")
>>> vs.add_texts(["pip install parag", "FAISS inside"], [{"page": 1}, {"page": 2}], ids=["a", "b"])
['a', 'b']
>>> [d.id for d in vs.similarity_search("FAISS inside", k=1)]
['b']
>>> [d.page_content for d in vs.similarity_search("FAISS inside", k=2, filter={"page": 1})]
['pip install parag']
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from parag.errors import InvalidArgumentError, InvalidTypeError
from parag.integrations import _hits
from parag.integrations._hits import Hit
from parag.integrations.langchain_faiss_import import read_langchain_faiss
from parag.vectorstore import FAISSVectorStore
from parag.vectorstore.base import VectorStore as ParagStore

try:
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import VectorStore
except ImportError as e:
    raise _hits.missing_dependency("langchain-core", "langchain") from e

__all__ = ["ParagVectorStore"]


class ParagVectorStore(VectorStore):
    """LangChain's ``VectorStore`` over a parag store: string ids, pre-filters, no pickle.

    Parameters
    ----------
    embedding : langchain_core.embeddings.Embeddings
        Embeds texts on add and queries on search.
    store : parag VectorStore, optional
        The store to use (empty, or holding string ids: an int-id store is refused). By default a
        :class:`~parag.vectorstore.FAISSVectorStore` is created on the first add, with the
        dimension of the embeddings and ``store_options``.
    **store_options
        ``index_type``, ``metric`` and index parameters of the FAISS store created (see
        ``FAISSVectorStore``); not allowed with ``store``.

    Notes
    -----
    - Ids are strings, as LangChain's are, in every method: an int (or any other non-string)
      id is an InvalidTypeError naming it, never converted; so is a bare string where a list of
      ids or texts belongs (``add_texts("abc")``), and a ``metadatas`` item that is not a dict.
      Adds are upserts: adding a text under an id that is stored replaces it (idempotent).
      Texts without an id (``None``, or ``""`` as LangChain's own stores read it) get a
      ``uuid4().hex`` one.
    - Each document's ``page_content`` is the parag document, its ``metadata`` the parag
      metadata; ``filter=`` takes parag's filter language and is a pre-filter (``k`` results
      whenever ``k`` match).
    - ``similarity_search_with_score`` gives the store's own score (squared L2 distance,
      smaller is closer; inner product or cosine, larger is closer);
      ``similarity_search_with_relevance_scores`` maps it to [0, 1] (see
      :func:`parag.integrations._hits.relevance_function`: ``(1 + cos) / 2`` for unit vectors
      on every metric).
    - Searches take ``ef_search`` / ``nprobe`` too. ``delete`` ignores missing ids, takes
      ``filter=`` instead of ids, and with neither deletes everything (LangChain's contract:
      ``ids=None`` deletes all).
    - ``save_local`` / ``load_local`` use parag's format (checksummed, no pickle);
      :meth:`from_langchain_faiss` imports a LangChain FAISS folder without unpickling it.
    """

    def __init__(self, embedding: Embeddings, store: ParagStore | None = None, **store_options: Any) -> None:
        if store is not None and store_options:
            raise InvalidArgumentError(f"store_options {sorted(store_options)} apply to a new store: not with store=")
        if store is not None and not isinstance(store, ParagStore):
            raise InvalidArgumentError(f"store must be a parag VectorStore, got {type(store).__name__}")
        if store is not None and not all(isinstance(i, str) for i in store.get(limit=1).ids):
            raise InvalidTypeError("store holds int ids: LangChain's ids are strings, wrap a store of string ids")
        if store is None:
            _hits.check_store_options(store_options)
        self._embedding = embedding
        self._store = store
        self._options = store_options
        self._creating = threading.Lock()

    @property
    def embeddings(self) -> Embeddings:
        return self._embedding

    @property
    def store(self) -> ParagStore | None:
        """The parag store underneath (None until the first add when none was given)."""
        return self._store

    # ----------------------------------------------------------------- writing

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str | None] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and store ``texts`` (replacing those whose id is stored); return their ids."""
        texts = _hits.str_list(texts, "texts", what="strings")
        metadatas = [{}] * len(texts) if metadatas is None else _metadatas(metadatas)
        ids = _hits.str_list(ids, "ids", none_ok=True) if ids is not None else []
        ids = ids or [None] * len(texts)  # no ids, [] included: LangChain's reading
        if not len(texts) == len(metadatas) == len(ids):
            raise InvalidArgumentError(
                f"add_texts got {len(texts)} texts, {len(metadatas)} metadatas and {len(ids)} ids: one each per text"
            )
        if not texts:
            return []
        ids = [i or uuid.uuid4().hex for i in ids]  # LangChain's reading: a Document's id "" is no id
        vectors = _embedded(self._embedding.embed_documents(texts), len(texts))
        self._store_for(vectors.shape[1]).upsert(ids, vectors, metadatas, documents=texts)
        return ids

    def delete(self, ids: list[str] | None = None, *, filter: Any = None, **kwargs: Any) -> bool:  # noqa: A002
        """Delete ``ids`` (missing ones are ignored), what matches ``filter``, or with neither
        every document (LangChain's contract for ``ids=None``)."""
        if ids is not None and filter is not None:
            raise InvalidArgumentError("delete takes ids or filter, not both: delete(ids) or delete(filter=...)")
        ids = None if ids is None else _hits.str_list(ids, "ids")  # checked before the store exists too
        if self._store is not None:
            if ids is not None:
                self._store.delete(ids, missing_ok=True)
            else:
                self._store.delete(filter={} if filter is None else filter)  # {} matches every document
        return True

    def _store_for(self, dimension: int) -> ParagStore:
        """The store, created with this dimension on the first add."""
        with self._creating:
            if self._store is None:
                self._store = _hits.new_faiss_store(dimension, self._options)
            return self._store

    # ----------------------------------------------------------------- reading

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The stored documents of ``ids`` (those not stored are left out)."""
        ids = _hits.str_list(ids, "ids")
        store = self._store
        if store is None:
            return []
        present = [i for i in dict.fromkeys(ids) if i in store]
        got = store.get(present)
        return [_document(Hit(i, 0.0, d, m)) for i, d, m in zip(got.ids, got.documents or [None] * len(got.ids), got.metadata)]

    def similarity_search(self, query: str, k: int = 4, filter: Any = None, **kwargs: Any) -> list[Document]:  # noqa: A002
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Any = None, **kwargs: Any  # noqa: A002
    ) -> list[tuple[Document, float]]:
        """Documents with the store's own scores (see the class notes), best first."""
        return self.similarity_search_with_score_by_vector(self._embedding.embed_query(query), k, filter, **kwargs)

    def similarity_search_with_score_by_vector(
        self, embedding: list[float], k: int = 4, filter: Any = None, **kwargs: Any  # noqa: A002
    ) -> list[tuple[Document, float]]:
        return [(_document(hit), float(hit.score)) for hit in _hits.search(self._store, embedding, k, filter, **kwargs)]

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: Any = None, **kwargs: Any  # noqa: A002
    ) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score_by_vector(embedding, k, filter, **kwargs)]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        metric = self._store.metric if self._store is not None else self._options.get("metric") or "L2"
        return _hits.relevance_function(metric)

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Any = None,  # noqa: A002
        **kwargs: Any,
    ) -> list[Document]:
        return self.max_marginal_relevance_search_by_vector(
            self._embedding.embed_query(query), k, fetch_k, lambda_mult, filter, **kwargs
        )

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Any = None,  # noqa: A002
        **kwargs: Any,
    ) -> list[Document]:
        """``k`` diverse documents among the ``fetch_k`` nearest (see :func:`parag.mmr.mmr`)."""
        return [_document(hit) for hit in _hits.mmr_search(self._store, embedding, k, fetch_k, lambda_mult, filter, **kwargs)]

    # ----------------------------------------------------------------- construction and files

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str | None] | None = None,
        store: ParagStore | None = None,
        **store_options: Any,
    ) -> ParagVectorStore:
        vs = cls(embedding, store, **store_options)
        vs.add_texts(texts, metadatas, ids=ids)
        return vs

    def save_local(self, folder: str | Path) -> None:
        """Save the store to ``folder`` in parag's format (atomic, checksummed, no pickle)."""
        if self._store is None:
            raise InvalidArgumentError("nothing to save: the store is created by the first add")
        self._store.save(folder)

    @classmethod
    def load_local(
        cls, folder: str | Path, embeddings: Embeddings, *, verify: bool = True, mmap: bool = False
    ) -> ParagVectorStore:
        """The store saved by :meth:`save_local` in ``folder`` (``verify`` and ``mmap`` as in
        ``FAISSVectorStore.load``). A mapped store holds its files open until
        ``vs.store.close()`` (or until it is garbage collected)."""
        return cls(embeddings, store=FAISSVectorStore.load(folder, verify=verify, mmap=mmap))

    @classmethod
    def from_langchain_faiss(cls, folder: str | Path, embeddings: Embeddings, **store_options: Any) -> ParagVectorStore:
        """Import a folder written by LangChain's ``FAISS.save_local`` (``index.faiss`` and
        ``index.pkl``) without running its pickle; see
        :func:`parag.integrations.langchain_faiss_import.read_langchain_faiss`."""
        return cls(embeddings, store=read_langchain_faiss(folder, **store_options))


def _metadatas(metadatas: Any) -> list[dict[str, Any]]:
    """A copy of each text's metadata: a dict, or None for none."""
    if not isinstance(metadatas, (list, tuple)):
        raise InvalidTypeError(
            f"metadatas must be a list of dicts, one per text, got {type(metadatas).__name__}: pass [metadata]"
        )
    for n, m in enumerate(metadatas):
        if not (m is None or isinstance(m, dict)):
            raise InvalidTypeError(f"metadatas[{n}] must be a dict (or None), got {type(m).__name__} {m!r}")
    return [dict(m or {}) for m in metadatas]


def _embedded(vectors: Any, n: int) -> np.ndarray:
    """The embedding model's vectors for ``n`` texts as one float32 matrix."""
    try:
        matrix = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise InvalidArgumentError(
            f"the embedding model returned vectors of different lengths, or not of numbers ({e}): check its embed_documents"
        ) from None
    if matrix.ndim != 2 or len(matrix) != n:
        raise InvalidArgumentError(
            f"the embedding model returned an array of shape {matrix.shape} for {n} texts: one vector per text expected"
        )
    return matrix


def _document(hit: Hit) -> Document:
    return Document(id=hit.id, page_content=hit.document or "", metadata=hit.metadata)
