"""``tune`` on Milvus: the FAISS store's sweep (:mod:`parag.tuning`), through the server.

As :func:`parag.tuning.tune` does for a FAISS store, it measures recall@k of the store's own
search against the exact answer, for increasing values of ``ef_search`` (HNSW) or ``nprobe``
(IVFFlat) on the same ladder, and picks the smallest value that reaches the target. The exact
answer is numpy's over every row's vector, read from the server a page at a time, after a
first read of every id: the memory it takes is a page, the queries' running top-k and a
dict of the ids (~100 bytes a row). Each measured search is one request, so tuning takes
about ``n_samples`` x (values tried) requests.

Rows are labelled by their position in that listing of the collection's ids: string and int
ids alike become the integer labels :func:`parag.tuning.recall_at_k` compares.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import parag.vectorstore.milvus_rows as rows_
import parag.vectorstore.milvus_search as milvus_search
import parag.vectorstore.milvus_schema as schema
from parag.errors import IdNotFoundError, InvalidArgumentError, ServerError
from parag.tuning import TuneResult, candidates, choose, drop_self, measured_k, sweep
from parag.vectorstore.kinds import configure
from parag.vectorstore.milvus_collection import Collection

#: Milvus builds no index for a segment of fewer rows (the 2.3 server's
#: ``rootCoord.minSegmentSizeToEnableIndex``): it searches it exhaustively, whatever ``ef`` or
#: ``nprobe``. A collection this small has nothing to tune, as an untrained FAISS IVF has not.
MIN_INDEXED_ROWS = 1024


def tune(server: Collection, config: dict[str, Any], queries: np.ndarray | None, target_recall: float,
         k: int, n_samples: int, seed: int) -> TuneResult:
    """What :meth:`MilvusVectorStore.tune` measures and chooses; the caller sets the value.

    ``config`` is the store's (dimension, index_type, metric, params); ``queries`` are checked
    and normalised already, or None to sample ``n_samples`` stored vectors with ``seed``.
    """
    index_type, params = config["index_type"], config["params"]
    # The FAISS kind's parameter and range (HNSW: k to its largest tuned ef; IVF: 1 to nlist),
    # from the build parameters alone: Milvus takes an nprobe above nlist, which FAISS refuses.
    built = {n: v for n, v in params.items() if n not in schema.SEARCH_PARAMS[index_type]}
    kind = configure(config["dimension"], index_type, config["metric"], built)
    param = kind.tunable
    if param is None:
        return TuneResult(None, None, 1.0, True, [])
    labels = _labels(server)
    if 0 < len(labels) < MIN_INDEXED_ROWS:
        return TuneResult(None, None, 1.0, True, [])
    sampled = queries is None  # a sampled query finds itself: search one more and drop it
    k = measured_k(k, len(labels), sampled)
    if k + sampled > milvus_search.MAX_TOPK:
        raise InvalidArgumentError(f"k must be at most {milvus_search.MAX_TOPK - sampled} for a MilvusVectorStore's "
                                   f"tune (Milvus returns at most {milvus_search.MAX_TOPK} hits a search), got {k}")
    q, own = _queries(server, labels, queries, n_samples, seed)
    extra = int(sampled)
    truth = _exact_labels(server, labels, q, k + extra, config["metric"])
    truth = truth if own is None else drop_self(truth, own, k)

    def search(i: int, value: int) -> np.ndarray:
        (hits,) = milvus_search.search(server, q[i : i + 1], k + extra, None, config, {**params, param: value},
                                       frozenset())
        found = np.full((1, k + extra), -1, np.int64)
        found[0, : len(hits)] = [labels.get(h[1], -1) for h in hits]
        return found[0] if own is None else drop_self(found, own[i : i + 1], k)[0]

    settings = sweep(search, truth, candidates(*kind.tune_range(k)), target_recall)
    best = choose(settings, target_recall)
    return TuneResult(param, best.value, best.recall, best.recall >= target_recall, settings)


def _labels(server: Collection) -> dict[Any, int]:
    """Each stored id's label: its position in id order."""
    labels: dict[Any, int] = {}
    if server.kind is not None:
        for page in server.scan(None, []):
            for row in page:
                labels[row["id"]] = len(labels)
    return labels


def _queries(server: Collection, labels: dict[Any, int], q: np.ndarray | None, n_samples: int,
             seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The queries, and the labels of the rows they were sampled from (None when given)."""
    if q is not None:
        return q, None
    own = np.sort(np.random.default_rng(seed).choice(len(labels), min(n_samples, len(labels)), replace=False))
    ids = list(labels)
    targets = np.asarray([ids[i] for i in own.tolist()], server.kind.dtype)  # type: ignore[union-attr]
    try:
        found = server.rows(targets, ["vector"])
    except IdNotFoundError as e:
        raise ServerError(f"rows were deleted from the collection while it was being tuned ({e}): tune again") from e
    return np.asarray([found[i]["vector"] for i in targets.tolist()], np.float32), own


def _exact_labels(server: Collection, labels: dict[Any, int], q: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Labels of the exact top-``k`` rows for each query, over every row, a page at a time
    (rows written meanwhile, which have no label, are left out)."""
    scores = np.empty((len(q), 0), np.float32)
    best = np.empty((len(q), 0), np.int64)
    for page in server.scan(None, ["vector"]):
        page = [r for r in page if r["id"] in labels]
        if not page:
            continue
        x = np.asarray([r["vector"] for r in page], np.float32)
        page_scores, rows = rows_.exact_top_k(q, x, min(k, len(x)), metric)
        page_labels = np.asarray([labels[r["id"]] for r in page], np.int64)[rows]
        scores, best = _merged(np.hstack([scores, page_scores]), np.hstack([best, page_labels]), k, metric)
    return best


def _merged(scores: np.ndarray, labels: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of each row (squared L2 ascending, similarities descending).

    Examples
    --------
    >>> _merged(np.array([[0.5, 0.1, 0.3]]), np.array([[7, 8, 9]]), 2, "L2")[1].tolist()
    [[8, 9]]
    """
    order = np.argsort(scores if metric == "L2" else -scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(labels, order, 1)

