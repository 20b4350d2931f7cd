"""How a MilvusVectorStore answers a search: the FAISS store's filtered-search rules on Milvus.

Milvus searches an HNSW or IVF_FLAT index with a filter by walking the index and skipping the
rows the filter excludes, so a selective filter starves the search: on debian-minilm (59k x
384, HNSW M 32, ef 64) a filter that lets 10% through found 0.69 of the true top-10
(benchmarks/bench_milvus_filtered.py). As the FAISS store does (``kinds/hnsw.py``,
``kinds/ivf.py``), the store first counts the matching rows (a ``count(*)`` query) and then

- answers **exactly** where few rows match (matches x dimension at most
  :data:`EXACT_FILTER_BUDGET`, the FAISS store's budget): numpy over the matching rows' vectors,
  read from the server;
- else searches the index with ``ef`` / ``nprobe`` **widened** by ``share ** -WIDEN_POWER``
  (``share``: matching rows / all rows), up to Milvus's largest ``ef`` / every list;
- and completes any **short answer** (fewer than ``min(k, matches)`` hits): up to
  :data:`EXACT_MATCH_LIMIT` matches exactly by numpy, beyond that first by a search as wide as
  Milvus allows, then exactly for a query still short.

A Flat collection is exact on the server and is searched as asked. The constants are module
attributes, read at each search, so tests can lower them to reach each path on small data.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import parag.vectorstore.milvus_rows as rows_
import parag.vectorstore.milvus_schema as schema
from parag.vectorstore.kinds.base import EXACT_FILTER_BUDGET as FAISS_EXACT_FILTER_BUDGET
from parag.vectorstore.milvus_collection import Collection

MAX_TOPK = 16384  # Milvus's limit on k: a larger k is answered exactly by numpy
# Few enough matching rows to read and score them by numpy (vector components): the FAISS
# store's budget, 2,600 rows at 384 dimensions.
EXACT_FILTER_BUDGET = FAISS_EXACT_FILTER_BUDGET
# ef / nprobe grow as share ** -WIDEN_POWER. Milvus's filtered HNSW needs more than FAISS's
# 0.4 (kinds/base.py): measured on debian-minilm at 10% (benchmarks/bench_milvus_filtered.py).
WIDEN_POWER = 1.0
# A short answer with more matches than this is first searched as wide as Milvus allows:
# reading them all from the server would cost more than a search.
EXACT_MATCH_LIMIT = 50_000
WIDEST = {"ef_search": schema.PARAMS["HNSW"]["ef_search"][2], "nprobe": schema.PARAMS["IVFFlat"]["nprobe"][2]}

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
        params = widened(index_type, params, matches / max(server.count(None), 1), k)
    hits: Hits = []
    if k <= MAX_TOPK:
        hits = server.search(q, k, expression, metric, schema.search_params(index_type, params, k), wanted)
    if matches is None and (k > MAX_TOPK or any(len(row) < k for row in hits)):
        matches = server.count(expression)
    want = min(k, matches or 0)
    short = [i for i in range(len(q)) if i >= len(hits) or len(hits[i]) < want]
    if short and hits and (matches or 0) > EXACT_MATCH_LIMIT:  # first the widest index search
        widest = schema.search_params(index_type, {**params, **WIDEST}, k)
        for i, row in zip(short, server.search(q[short], k, expression, metric, widest, wanted)):
            hits[i] = row
        short = [i for i in short if len(hits[i]) < want]
    if short:
        hits = hits or [[] for _ in q]
        for i, row in zip(short, _exact(server, q[short], want, expression, metric, wanted)):
            hits[i] = row
    return hits


def widened(index_type: str, params: dict[str, int], share: float, k: int) -> dict[str, int]:
    """Search parameters scaled up for a filter that lets ``share`` of the rows through.

    Examples
    --------
    >>> widened("HNSW", {"M": 32, "ef_construction": 40, "ef_search": 64}, 0.1, 10)["ef_search"]
    640
    >>> widened("IVFFlat", {"nlist": 256, "nprobe": 64}, 0.5, 10)["nprobe"]
    128
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
