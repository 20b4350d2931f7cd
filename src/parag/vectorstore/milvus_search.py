"""How a MilvusVectorStore answers a search: the FAISS store's filtered-search rules on Milvus.

Milvus searches an HNSW or IVF_FLAT index with a filter by walking the index and skipping the
rows the filter excludes, so a filter starves the search: on debian-minilm (59k x 384, HNSW
M 32, ef 64) a filter that lets 10% through found 0.69 of the true top-10, and a larger
``ef`` does not converge (on 3,000 rows, ef 3,200 still missed neighbours that ef 400 finds
without a filter: benchmarks/bench_milvus_filtered.py, tests/test_milvus_search.py). As the
FAISS store does (``kinds/hnsw.py``, ``kinds/ivf.py``), the store first counts the matching
rows (a ``count(*)`` query), then

- answers **exactly** where few rows match (matches x dimension at most
  :data:`EXACT_FILTER_BUDGET`, the FAISS store's budget): numpy over the matching rows'
  vectors, read from the server;
- else **post-filters** an unfiltered search, whose recall is the index's own: the best
  ``OVERFETCH * k / share`` hits without the filter (``share``: matching rows / all rows; at
  most :data:`POST_FILTER_LIMIT`; HNSW's ``ef`` ``OVERFETCH`` times that), of which the server
  says which match; the first ``k`` that
  do are the answer where there are ``min(k, matches)`` of them;
- searches the index with the filter and ``ef`` / ``nprobe`` **widened** by
  ``share ** -WIDEN_POWER`` for the queries still short, or where the post-filter would fetch
  too many;
- and completes any **short answer** (fewer than ``min(k, matches)`` hits): up to
  :data:`EXACT_MATCH_LIMIT` matches exactly by numpy, beyond that first by a search as wide as
  Milvus allows, then exactly for a query still short.

A Flat collection is exact on the server and is searched as asked. The constants are module
attributes, read at each search, so tests can lower them to reach each path on small data.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import parag.vectorstore.milvus_rows as rows_
import parag.vectorstore.milvus_schema as schema
from parag.vectorstore.kinds.base import EXACT_FILTER_BUDGET, WIDEN_POWER
from parag.vectorstore.milvus_collection import Collection

MAX_TOPK = 16384  # Milvus's limit on k: a larger k is answered exactly by numpy
# EXACT_FILTER_BUDGET (matching rows x dimension read and scored by numpy: 2,600 rows at 384
# dimensions) and WIDEN_POWER (ef / nprobe grow as share ** -WIDEN_POWER) are the FAISS
# store's (kinds/base.py).
# A post-filter fetches OVERFETCH * k / share unfiltered hits (so about OVERFETCH * k of them
# match), at most POST_FILTER_LIMIT per query; a filter letting fewer through is searched
# with the filter, widened.
OVERFETCH = 2
POST_FILTER_LIMIT = 4096
# A short answer with more matches than this is first searched as wide as Milvus allows:
# reading them all from the server would cost more than a search.
EXACT_MATCH_LIMIT = 50_000
WIDEST = {"ef_search": schema.SERVER_MAX["ef_search"], "nprobe": schema.PARAMS["IVFFlat"]["nprobe"][2]}

Hits = list[list[tuple[float, Any, Any, Any]]]


def search(server: Collection, q: np.ndarray, k: int, expression: str | None, config: dict[str, Any],
           params: dict[str, int], wanted: frozenset[str]) -> Hits:
    """The top-``k`` hits of each query among the rows matching ``expression`` (None: all),
    never fewer than ``min(k, matches)``, as :func:`milvus_rows.hit` tuples.

    ``config`` is the store's (``index_type``, ``metric``, ``dimension``); ``params`` its
    search parameters with this call's overrides.
    """
    index_type, metric = config["index_type"], config["metric"]
    matches = None
    if expression is not None and index_type != "Flat":
        matches = server.count(expression)
        if matches * config["dimension"] <= EXACT_FILTER_BUDGET:
            return _exact(server, q, k, expression, metric, wanted)
        share = matches / max(server.count(None), 1)
        hits = _post_filtered(server, q, k, expression, config, params, share, wanted)
        short = [i for i, row in enumerate(hits) if len(row) < min(k, matches)]
        params = widened(index_type, params, share, k)
        for i, row in zip(short, _index_search(server, q[short], k, expression, config, params, wanted)):
            hits[i] = row
    else:
        hits = _index_search(server, q, k, expression, config, params, wanted)
    if matches is None and any(len(row) < k for row in hits):
        matches = server.count(expression)
    want = min(k, matches or 0)
    short = [i for i, row in enumerate(hits) if len(row) < want]
    if short and k <= MAX_TOPK and (matches or 0) > EXACT_MATCH_LIMIT:  # first the widest index search
        widest = {**params, **WIDEST}
        for i, row in zip(short, _index_search(server, q[short], k, expression, config, widest, wanted)):
            hits[i] = row
        short = [i for i in short if len(hits[i]) < want]
    if short:
        for i, row in zip(short, _exact(server, q[short], want, expression, metric, wanted)):
            hits[i] = row
    return hits


def _post_filtered(server: Collection, q: np.ndarray, k: int, expression: str, config: dict[str, Any],
                   params: dict[str, int], share: float, wanted: frozenset[str]) -> Hits:
    """The first ``k`` matching hits of a wider unfiltered search (fewer where not enough of
    them match; none where the post-filter would fetch more than POST_FILTER_LIMIT)."""
    limit = math.ceil(OVERFETCH * k / share) if share > 0 else POST_FILTER_LIMIT + 1
    if limit > POST_FILTER_LIMIT:
        return [[] for _ in q]
    if config["index_type"] == "HNSW":  # ef = limit leaves the list's tail approximate
        params = {**params, "ef_search": min(max(params["ef_search"], OVERFETCH * limit), WIDEST["ef_search"])}
    candidates = _index_search(server, q, limit, None, config, params, wanted)
    ids = list(dict.fromkeys(h[1] for row in candidates for h in row))
    allowed = set(server.existing(np.asarray(ids, server.kind.dtype), expression)) if ids else set()
    return [[h for h in row if h[1] in allowed][:k] for row in candidates]


def _index_search(server: Collection, q: np.ndarray, k: int, expression: str | None, config: dict[str, Any],
                  params: dict[str, int], wanted: frozenset[str]) -> Hits:
    """Milvus's top-``k`` through the index (``ef`` at least ``k``); nothing for no query."""
    if not len(q) or k > MAX_TOPK:
        return [[] for _ in q]
    milvus_params = schema.search_params(config["index_type"], params, k)
    return server.search(q, k, expression, config["metric"], milvus_params, wanted)


def widened(index_type: str, params: dict[str, int], share: float, k: int) -> dict[str, int]:
    """Search parameters scaled up for a filter that lets ``share`` of the rows through.

    Examples
    --------
    >>> widened("HNSW", {"M": 32, "ef_construction": 40, "ef_search": 64}, 0.1, 10)["ef_search"]
    160
    >>> widened("IVFFlat", {"nlist": 256, "nprobe": 64}, 0.5, 10)["nprobe"]
    84
    """
    grow = share ** -WIDEN_POWER if share > 0 else float("inf")
    if index_type == "HNSW":  # Milvus searches with max(ef, k): widen what it would use
        return {**params, "ef_search": int(min(max(params["ef_search"], k) * grow, WIDEST["ef_search"]))}
    if index_type == "IVFFlat":
        return {**params, "nprobe": int(min(params["nprobe"] * grow, params["nlist"]))}
    return params


def _exact(server: Collection, q: np.ndarray, k: int, expression: str | None, metric: str,
           wanted: frozenset[str]) -> Hits:
    """numpy's exact top-``k`` over every row matching ``expression``, read from the server."""
    found = server.all_rows(expression, ["vector", *rows_.fields_for(wanted)])
    return rows_.exact_hits(q, k, metric, found, wanted)
