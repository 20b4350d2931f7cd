"""The reads of a :class:`~parag.vectorstore.MilvusVectorStore`: ``search``, ``get``, ``ids``,
``len``, ``in``, and the configuration they read.

:class:`MilvusReads` is the half of the store that never changes it, as
:class:`~parag.vectorstore.faiss_reads.FAISSReads` is the FAISS store's: each read checks its
arguments, runs under the read lock (``close`` waits for the reads under way) and asks the
collection for rows (:mod:`parag.vectorstore.milvus_search` for a search's hits).
``MilvusVectorStore`` inherits it and adds construction, the writes and the lifecycle.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt

import parag.vectorstore.milvus_rows as rows_
import parag.vectorstore.milvus_search as milvus_search
import parag.vectorstore.milvus_schema as schema
from parag._ids import Ids, as_store_ids
from parag._locks import RWLock
from parag._validation import as_vectors, check_bool, check_int, check_k, normalised
from parag.errors import InvalidArgumentError
from parag.filters import Filter, parse
from parag.vectorstore.base import GetResult, SearchResult
from parag.vectorstore.faiss_reads import INCLUDABLE, check_include  # one include= for both stores
from parag.vectorstore.milvus_collection import Collection
from parag.vectorstore.milvus_filters import NotOnServer, server_plan

_Method = TypeVar("_Method", bound=Callable[..., Any])


def _reading(method: _Method) -> _Method:
    """``method`` run under the store's read lock (``_lock``: close waits for the reads under way)."""
    @functools.wraps(method)
    def read(self: MilvusReads, *args: Any, **kwargs: Any) -> Any:
        with self._lock.reading:
            return method(self, *args, **kwargs)
    return cast(_Method, read)


class MilvusReads:
    """The reads of a Milvus store: its subclass sets ``_server`` (its
    :class:`~parag.vectorstore.milvus_collection.Collection`), ``_config`` (``dimension``,
    ``index_type``, ``metric``, ``params``) and ``_lock`` (its reader-writer lock)."""

    _server: Collection
    _config: dict[str, Any]
    _lock: RWLock

    @property
    def dimension(self) -> int:
        return self._config["dimension"]

    @property
    def metric(self) -> str:
        return self._config["metric"]

    @property
    def index_type(self) -> str:
        return self._config["index_type"]

    @_reading
    def __len__(self) -> int:
        return 0 if self._server.kind is None else self._server.count(None)

    @_reading
    def __contains__(self, id_: object) -> bool:
        return self._server.has(id_)

    @_reading
    def search(self, query: npt.ArrayLike, k: int = 10, *, filter: Filter | None = None,  # noqa: A002
               nprobe: int | None = None, ef_search: int | None = None,
               include: Sequence[str] = INCLUDABLE, rerank: int | None = None) -> SearchResult:
        """The ``k`` nearest vectors to one query (1-D) or each of a batch (2-D), as
        FAISSVectorStore.search: ``min(k, matching vectors)`` hits per query, best first.
        ``rerank`` applies to FAISS's compressed storage only: Milvus stores float32 vectors
        and scores them exactly, so it is an error here."""
        q, single = as_vectors(query, self.dimension, "query")
        k = check_k(k)
        if rerank is not None:
            raise InvalidArgumentError("rerank does not apply to a MilvusVectorStore: it stores float32 "
                                       "vectors and scores them exactly (rerank is for FAISSVectorStore's "
                                       "compressed storage)")
        overrides = {n: v for n, v in (("nprobe", nprobe), ("ef_search", ef_search)) if v is not None}
        per_search = schema.SEARCH_PARAMS[self.index_type]
        wrong = sorted(overrides.keys() - set(per_search))
        if wrong:  # (as the FAISS store says it: the build parameters are not the search's)
            raise InvalidArgumentError(f"{wrong[0]} does not apply to a {self.index_type} store; "
                                       f"search parameters it takes: {list(per_search) or 'none'}")
        search_params = schema.check_params(self.index_type, {**self._config["params"], **overrides})
        wanted = check_include(include)
        tree = None if filter is None else parse(filter)
        plan = None if tree is None else server_plan(tree)
        q = normalised(q, "query", self.metric)
        if self._server.kind is None:
            hits: list[list[tuple]] = [[] for _ in q]
        elif isinstance(plan, NotOnServer):  # parag evaluates the filter: an exact search
            found = self._server.matching(tree, plan, ["vector", *rows_.fields_for(wanted)])
            hits = rows_.exact_hits(q, k, self.metric, found, wanted)
        else:
            hits = milvus_search.search(self._server, q, k, plan, self._config, search_params, wanted)
        parts = [[[h[j] for h in row] for row in hits] for j in range(4)]
        dist, ids, meta, docs = (p[0] if single else p for p in parts)
        return SearchResult(dist, ids, meta if "metadata" in wanted else None,
                            docs if "documents" in wanted else None)

    @_reading
    def get(self, ids: Ids | None = None, *, filter: Filter | None = None,  # noqa: A002
            limit: int | None = None, offset: int = 0, include_vectors: bool = False,
            include: Sequence[str] = INCLUDABLE) -> GetResult:
        """Stored records, as FAISSVectorStore.get: of ``ids`` in the order asked (all must
        exist), of those matching ``filter``, or of every vector (oldest first); a page of
        them with ``limit`` / ``offset``."""
        targets = None if ids is None else as_store_ids(ids, self._server.kind, unique=False)
        tree = None if filter is None else parse(filter)
        plan = None if tree is None else server_plan(tree)
        limit = None if limit is None else check_int(limit, "limit", 0)
        offset = check_int(offset, "offset", 0)
        check_bool(include_vectors, "include_vectors")
        wanted = check_include(include)
        fields = rows_.fields_for(wanted) + (["vector"] if include_vectors else [])
        if targets is not None:
            found = self._server.rows(np.unique(targets), fields) if len(targets) else {}
            picked = [found[i] for i in targets.tolist()]
            if tree is not None:
                allowed = {r["id"] for r in self._server.matching(tree, plan, [], rows_.ids_in(list(found)))}
                picked = [r for r in picked if r["id"] in allowed]
        elif self._server.kind is None:
            picked = []
        else:
            picked = sorted(self._server.matching(tree, plan, ["seq", *fields]) if tree is not None
                            else self._server.all_rows(None, ["seq", *fields]), key=lambda r: r["seq"])
        picked = picked[offset: None if limit is None else offset + limit]
        vectors = None
        if include_vectors:
            vectors = np.asarray([r["vector"] for r in picked], np.float32).reshape(-1, self.dimension)
        return GetResult([r["id"] for r in picked], [r["meta"] for r in picked] if "metadata" in wanted else None,
                         vectors, [rows_.document(r) for r in picked] if "documents" in wanted else None)

    @_reading
    def ids(self) -> list[int] | list[str]:
        """Every stored id, oldest first (an upsert makes an id the newest)."""
        if self._server.kind is None:
            return []
        pairs = [(r["seq"], r["id"]) for r in self._server.all_rows(None, ["seq"])]
        return [i for _, i in sorted(pairs)]
