"""A LlamaIndex vector store backed by any parag store: ``pip install 'parag[llama-index]'``.

Examples
--------
>>> from llama_index.core.schema import TextNode
>>> from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters, VectorStoreQuery
>>> from parag.integrations.llama_index import ParagVectorStore
>>> vs = ParagVectorStore(dimension=2, metric="cosine")
>>> vs.add([TextNode(id_="a", text="alpha", embedding=[1, 0], metadata={"n": 1}),
...         TextNode(id_="b", text="beta", embedding=[0, 1], metadata={"n": 2})])
['a', 'b']
>>> only_b = MetadataFilters(filters=[MetadataFilter(key="n", value=1, operator=">")])
>>> found = vs.query(VectorStoreQuery(query_embedding=[1, 0], similarity_top_k=2, filters=only_b))
>>> found.ids, [n.text for n in found.nodes]
(['b'], ['beta'])
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from parag._validation import check_int
from parag.errors import InvalidArgumentError, InvalidFilterError, InvalidTypeError
from parag.integrations import _hits
from parag.vectorstore import FAISSVectorStore
from parag.vectorstore.base import VectorStore as ParagStore

try:
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.schema import BaseNode, MetadataMode
    from llama_index.core.vector_stores.types import (
        BasePydanticVectorStore,
        FilterCondition,
        FilterOperator,
        MetadataFilter,
        MetadataFilters,
        VectorStoreQuery,
        VectorStoreQueryMode,
        VectorStoreQueryResult,
    )
    from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict
except ImportError as e:
    raise _hits.missing_dependency("llama-index-core", "llama-index") from e

__all__ = ["ParagVectorStore", "to_parag_filter"]

_OPERATORS = {
    FilterOperator.EQ: "$eq", FilterOperator.NE: "$ne", FilterOperator.GT: "$gt", FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt", FilterOperator.LTE: "$lte", FilterOperator.IN: "$in", FilterOperator.NIN: "$nin",
    FilterOperator.CONTAINS: "$contains", FilterOperator.ANY: "$any", FilterOperator.ALL: "$all",
    FilterOperator.TEXT_MATCH: "$substring",
}  # fmt: skip


def to_parag_filter(filters: MetadataFilters | None) -> dict[str, Any] | None:
    """LlamaIndex ``MetadataFilters`` (nested to any depth) as a filter of parag's language.

    ``AND`` / ``OR`` combine their filters; ``NOT`` matches when none of them does (as
    LlamaIndex's ``SimpleVectorStore`` reads it). ``IS_EMPTY`` matches a missing field or a
    null, ``""`` or ``[]`` value; ``TEXT_MATCH`` is ``$substring`` (case-sensitive).
    ``TEXT_MATCH_INSENSITIVE`` has no translation and is an InvalidFilterError.

    Examples
    --------
    >>> to_parag_filter(MetadataFilters(filters=[
    ...     MetadataFilter(key="year", value=2020, operator=">="),
    ...     MetadataFilters(filters=[MetadataFilter(key="tag", value="a")], condition="not")]))
    {'$and': [{'year': {'$gte': 2020}}, {'$not': {'tag': {'$eq': 'a'}}}]}
    """
    if not (filters is None or isinstance(filters, MetadataFilters)):
        raise InvalidTypeError(f"filters must be LlamaIndex MetadataFilters or None, got {type(filters).__name__} {filters!r}")
    return None if filters is None else _group(filters)


def _group(filters: MetadataFilters) -> dict[str, Any]:
    parts = [_group(f) if isinstance(f, MetadataFilters) else _leaf(f) for f in filters.filters]
    condition = filters.condition or FilterCondition.AND
    if not parts:
        return {}  # no condition: everything matches (LlamaIndex's reading, NOT included)
    if condition == FilterCondition.NOT:
        return {"$not": parts[0] if len(parts) == 1 else {"$or": parts}}
    if len(parts) == 1:
        return parts[0]
    return {"$and" if condition == FilterCondition.AND else "$or": parts}


def _leaf(f: MetadataFilter) -> dict[str, Any]:
    if f.operator == FilterOperator.IS_EMPTY:
        empty = [{f.key: {"$exists": False}}] + [{f.key: {"$eq": value}} for value in (None, "", [])]
        return {"$or": empty}
    if f.operator not in _OPERATORS:
        raise InvalidFilterError(
            f"the filter operator {f.operator.name} on {f.key!r} has no parag translation; "
            f"supported: {', '.join(op.name for op in _OPERATORS)}, IS_EMPTY"
        )
    value = list(f.value) if isinstance(f.value, (list, tuple)) else f.value
    return {f.key: {_OPERATORS[f.operator]: value}}


class ParagVectorStore(BasePydanticVectorStore):
    """LlamaIndex's vector store interface over a parag store, keeping each node's text.

    Build it as ``ParagVectorStore(store=<any parag VectorStore>)``, as
    ``ParagVectorStore(dimension=384, index_type="HNSW", metric="cosine")`` (a
    :class:`~parag.vectorstore.FAISSVectorStore`), or with neither: the FAISS store is then
    created by the first ``add`` with the nodes' dimension and ``store_options``.

    Each node is stored under its ``node_id`` (a string id), its text as the document, and
    its metadata with LlamaIndex's node fields (``_node_content``, ``ref_doc_id``...).
    Filters (:func:`to_parag_filter`) are pre-filters; ``doc_ids`` restrict a query by
    ``ref_doc_id``, ``node_ids`` to those nodes (scored exactly from their stored vectors, in
    the MMR mode too). ``similarities`` are the store's
    scores for ``"cosine"`` and ``"IP"``, and ``1 - d / 2`` for a squared L2 distance ``d``
    (the cosine for unit vectors). ``VectorStoreQueryMode.MMR`` picks ``similarity_top_k``
    diverse hits among ``mmr_prefetch_factor`` (4) times as many, weighing relevance by
    ``mmr_threshold`` (0.5). ``persist`` writes parag's format to a directory. Arguments of
    the wrong type (a bare string as ``node_ids``, a node not in a list, a query that is not a
    ``VectorStoreQuery``) are InvalidTypeErrors naming them.
    """

    stores_text: bool = True
    flat_metadata: bool = False
    _store: ParagStore | None = PrivateAttr(default=None)
    _options: dict[str, Any] = PrivateAttr(default_factory=dict)
    _creating: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def __init__(self, store: ParagStore | None = None, dimension: int | None = None, **store_options: Any) -> None:
        super().__init__()
        if store is not None and (dimension is not None or store_options):
            raise InvalidArgumentError("give store, or dimension and store options for a new FAISS store, not both")
        if store is not None and not isinstance(store, ParagStore):
            raise InvalidArgumentError(f"store must be a parag VectorStore, got {type(store).__name__}")
        if store is None:
            _hits.check_store_options(store_options)
            if dimension is not None:
                store = _hits.new_faiss_store(dimension, store_options)
        self._store, self._options = store, store_options

    @classmethod
    def class_name(cls) -> str:
        return "ParagVectorStore"

    @property
    def client(self) -> ParagStore | None:
        """The parag store underneath (None until the first add when none was given)."""
        return self._store

    # ----------------------------------------------------------------- writing

    def add(self, nodes: list[BaseNode], **add_kwargs: Any) -> list[str]:
        """Store nodes with their embeddings, text and metadata; a stored node_id is replaced."""
        if not isinstance(nodes, (list, tuple)):
            raise InvalidTypeError(f"nodes must be a list of LlamaIndex nodes, got {type(nodes).__name__}: pass [node]")
        for n, node in enumerate(nodes):
            if not isinstance(node, BaseNode):
                raise InvalidTypeError(f"nodes[{n}] is {node!r} ({type(node).__name__}): each must be a LlamaIndex node")
        if not nodes:
            return []
        unembedded = [node.node_id for node in nodes if node.embedding is None]
        if unembedded:
            raise InvalidArgumentError(
                f"nodes {unembedded[:5]} have no embedding: embed them first (a VectorStoreIndex does with its embed_model)"
            )
        ids = [node.node_id for node in nodes]
        vectors = [node.get_embedding() for node in nodes]
        texts = [node.get_content(metadata_mode=MetadataMode.NONE) for node in nodes]
        metadata = [node_to_metadata_dict(n, remove_text=True, flat_metadata=self.flat_metadata) for n in nodes]
        with self._creating:  # concurrent first adds create one store
            if self._store is None:
                self._store = _hits.new_faiss_store(len(vectors[0]), self._options)
        self._store.upsert(ids, vectors, metadata, documents=texts)
        return ids

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of the document ``ref_doc_id`` (a filter, not a scan)."""
        if not isinstance(ref_doc_id, str):
            raise InvalidTypeError(f"ref_doc_id must be a str, got {type(ref_doc_id).__name__} {ref_doc_id!r}")
        if self._store is not None:
            self._store.delete(filter={"ref_doc_id": ref_doc_id})

    def delete_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None, **delete_kwargs: Any
    ) -> None:
        """Delete ``node_ids`` (missing ones ignored) that match ``filters``; with neither,
        every node (as LlamaIndex's stores do)."""
        if node_ids is not None:
            node_ids = _hits.str_list(node_ids, "node_ids")
        if self._store is None:
            return
        if node_ids is None:
            self._store.delete(filter=to_parag_filter(filters) or {})
        else:
            doomed = [n.node_id for n in self.get_nodes(node_ids, filters)]
            self._store.delete(doomed, missing_ok=True)

    def clear(self) -> None:
        self.delete_nodes()

    # ----------------------------------------------------------------- reading

    def get_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None) -> list[BaseNode]:
        """The stored nodes of ``node_ids`` (those stored, in order) and/or matching ``filters``."""
        if node_ids is not None:
            node_ids = _hits.str_list(node_ids, "node_ids")
        if self._store is None:
            return []
        present = None if node_ids is None else [i for i in dict.fromkeys(node_ids) if i in self._store]
        got = self._store.get(present, filter=to_parag_filter(filters))
        return [metadata_dict_to_node(m, text=d) for m, d in zip(got.metadata, got.documents or [None] * len(got.ids))]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        if not isinstance(query, VectorStoreQuery):
            raise InvalidTypeError(f"query must be a LlamaIndex VectorStoreQuery, got {type(query).__name__} {query!r}")
        if query.query_embedding is None:
            raise InvalidArgumentError("query_embedding is required: parag searches by vector")
        spec = to_parag_filter(query.filters)
        if query.doc_ids:
            docs = {"ref_doc_id": {"$in": list(query.doc_ids)}}
            spec = docs if spec is None else {"$and": [spec, docs]}
        k = query.similarity_top_k
        # An empty node_ids list is what an index that keeps no nodes of its own passes: no restriction.
        among = list(query.node_ids) if query.node_ids else None
        if query.mode == VectorStoreQueryMode.MMR:
            lambda_mult = query.mmr_threshold if query.mmr_threshold is not None else kwargs.get("mmr_threshold", 0.5)
            fetch_k = k * check_int(kwargs.get("mmr_prefetch_factor", 4), "mmr_prefetch_factor")
            hits = _hits.mmr_search(self._store, query.query_embedding, k, fetch_k, lambda_mult, spec, among)
        elif query.mode != VectorStoreQueryMode.DEFAULT:
            raise InvalidArgumentError(f"query mode {query.mode.value!r} is not supported: use default or mmr")
        elif among is not None:
            hits = _hits.search_among(self._store, query.query_embedding, among, k, spec)
        else:
            hits = _hits.search(self._store, query.query_embedding, k, spec)
        similarity = _similarity_function(self._store.metric if self._store else "cosine")
        return VectorStoreQueryResult(
            nodes=[metadata_dict_to_node(hit.metadata, text=hit.document) for hit in hits],
            similarities=[similarity(hit.score) for hit in hits],
            ids=[hit.id for hit in hits],
        )

    # ----------------------------------------------------------------- files

    def persist(self, persist_path: str, fs: Any = None) -> None:
        """Save the store to the directory ``persist_path`` (parag's format: atomic,
        checksummed, no pickle); ``fs`` must be None or the local file system."""
        _check_local(fs)
        if self._store is None:
            raise InvalidArgumentError("nothing to persist: the store is created by the first add")
        self._store.save(persist_path)

    @classmethod
    def from_persist_path(cls, persist_path: str, fs: Any = None, *, mmap: bool = False) -> ParagVectorStore:
        """The store :meth:`persist` wrote to ``persist_path`` (``mmap`` as in
        ``FAISSVectorStore.load``: a mapped store holds its files open until
        ``vector_store.client.close()``, or until it is garbage collected)."""
        _check_local(fs)
        return cls(store=FAISSVectorStore.load(persist_path, mmap=mmap))

    # ----------------------------------------------------------------- async: the sync calls in a worker thread

    async def async_add(self, nodes: list[BaseNode], **kwargs: Any) -> list[str]:
        return await asyncio.to_thread(self.add, nodes, **kwargs)

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        await asyncio.to_thread(self.delete, ref_doc_id, **delete_kwargs)

    async def adelete_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None, **delete_kwargs: Any
    ) -> None:
        await asyncio.to_thread(self.delete_nodes, node_ids, filters, **delete_kwargs)

    async def aget_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        return await asyncio.to_thread(self.get_nodes, node_ids, filters)

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        return await asyncio.to_thread(self.query, query, **kwargs)

    async def aclear(self) -> None:
        await asyncio.to_thread(self.clear)


def _similarity_function(metric: str) -> Any:
    """Larger is closer: the score itself for cosine and IP, ``1 - d / 2`` for squared L2."""
    if metric == "L2":
        return lambda d: 1.0 - float(d) / 2.0
    return float


def _check_local(fs: Any) -> None:
    if fs is not None and "file" not in (getattr(fs, "protocol", None) or ()):
        raise InvalidArgumentError(f"parag saves to the local file system, not {type(fs).__name__}: pass fs=None")


