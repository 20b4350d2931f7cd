"""A MilvusVectorStore's records as Milvus rows, and the exact search parag falls back on.

Rows carry the fields of :mod:`parag.vectorstore.milvus_schema`. Ids go into expressions as
escaped literals (string ids may hold quotes and backslashes); documents are checked against
Milvus's VARCHAR limit before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from parag._ids import Ids, as_store_ids
from parag._validation import as_vectors, normalised
from parag.documents import check_documents
from parag.errors import InvalidArgumentError, InvalidMetadataError
from parag.metadata import encode_metadata
from parag.vectorstore.milvus_filters import string_literal
from parag.vectorstore.milvus_schema import MAX_DOCUMENT_BYTES, MAX_METADATA_BYTES

MAX_ID = 2**63 - 2  # Milvus 2.3 stores a row under the key 2**63 - 1 but no query finds it


def id_literal(id_: Any) -> str:
    """An int or string id as a Milvus literal, a string escaped."""
    return string_literal(id_) if isinstance(id_, str) else str(int(id_))


def ids_in(ids: Sequence[Any]) -> str:
    """The expression ``id in [...]`` for int or string ids."""
    return "id in [" + ", ".join(map(id_literal, ids)) + "]"


def records(vectors: Any, metadata: Any, documents: Any, dimension: int,
            metric: str) -> tuple[np.ndarray, list[dict[str, Any]], list[str | None]]:
    """Vectors (unit rows for cosine), metadata dicts and documents, checked, for writing."""
    x, _ = as_vectors(vectors, dimension)
    dicts = metadata_dicts(metadata, len(x))
    docs = check_documents(documents, len(x))
    check_document_sizes(docs)
    return normalised(x, "vectors", metric), dicts, docs


def ids_for(ids: Ids, n: int) -> np.ndarray:
    """``ids`` checked as unique ids of one kind, one for each of ``n`` vectors."""
    given = as_store_ids(ids, None)
    if len(given) != n:
        raise InvalidArgumentError(f"ids has {len(given)} items but there are {n} vectors")
    if given.dtype == np.int64 and len(given) and int(given.max()) > MAX_ID:
        raise InvalidArgumentError(
            f"ids has {int(given.max())}: a Milvus store's int ids go up to {MAX_ID} "
            "(2**63 - 2: Milvus 2.3 never finds a row whose INT64 key is 2**63 - 1)"
        )
    return given


def metadata_dicts(metadata: Any, n: int) -> list[dict[str, Any]]:
    """The metadata of ``n`` records, checked, each within what Milvus's JSON field holds
    (before anything is written: the server would refuse the row in the middle of a write)."""
    encoded = encode_metadata(metadata, n)
    sizes = encoded.ends - encoded.starts  # (orjson's compact UTF-8: what the server measures)
    over = np.flatnonzero(sizes > MAX_METADATA_BYTES)
    if len(over):
        raise InvalidMetadataError(
            f"metadata[{over[0]}] is {sizes[over[0]]} bytes of JSON: a Milvus store keeps at most "
            f"{MAX_METADATA_BYTES} per vector (its JSON field's limit); keep long texts as documents or elsewhere"
        )
    return encoded.dicts


def check_document_sizes(documents: list[str | None]) -> None:
    """InvalidArgumentError for a document longer than Milvus stores."""
    for i, d in enumerate(documents):
        if d is not None and len(d) > MAX_DOCUMENT_BYTES // 4 and len(d.encode("utf-8")) > MAX_DOCUMENT_BYTES:
            raise InvalidArgumentError(
                f"documents[{i}] has {len(d.encode('utf-8'))} bytes of UTF-8: a Milvus store keeps documents "
                f"of at most {MAX_DOCUMENT_BYTES} bytes (split the text into smaller chunks)"
            )


def rows(ids: np.ndarray, seqs: np.ndarray, x: np.ndarray, metadata: list[dict[str, Any]],
         documents: list[str | None]) -> list[dict[str, Any]]:
    """One Milvus row per record."""
    return [{"id": i, "seq": s, "vector": v, "meta": m, "doc": d or "", "has_doc": d is not None}
            for i, s, v, m, d in zip(ids.tolist(), seqs.tolist(), x, metadata, documents)]


def document(row: dict[str, Any]) -> str | None:
    """The document of a row read with the fields ``doc`` and ``has_doc``."""
    return row["doc"] if row["has_doc"] else None


def fields_for(wanted: frozenset[str]) -> list[str]:
    """The Milvus fields that hold the parts ``wanted``."""
    return (["meta"] if "metadata" in wanted else []) + (["doc", "has_doc"] if "documents" in wanted else [])


def hit(score: float, row: dict[str, Any], wanted: frozenset[str]) -> tuple[float, Any, Any, Any]:
    """``(score, id, metadata, document)`` of a row; the parts not ``wanted`` are None."""
    return (score, row["id"], row["meta"] if "metadata" in wanted else None,
            document(row) if "documents" in wanted else None)


def exact_top_k(q: np.ndarray, x: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Scores (float32, as FAISS gives them) and row numbers of the exact top-``k`` of ``x``
    for each query: squared L2 ascending, inner product (cosine on unit rows) descending."""
    q64, x64 = q.astype(np.float64), x.astype(np.float64)
    if metric == "L2":
        scores = (q64**2).sum(1)[:, None] - 2 * (q64 @ x64.T) + (x64**2).sum(1)[None, :]
        order = np.argsort(scores, axis=1, kind="stable")[:, :k]
    else:
        scores = q64 @ x64.T
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1).astype(np.float32), order


def exact_hits(q: np.ndarray, k: int, metric: str, found: list[dict[str, Any]],
               wanted: frozenset[str]) -> list[list[tuple[float, Any, Any, Any]]]:
    """The exact top-``k`` of the rows ``found`` (read with their vectors) for each query,
    as :func:`hit` tuples."""
    if not found:
        return [[] for _ in q]
    scores, order = exact_top_k(q, np.asarray([r["vector"] for r in found], np.float32), k, metric)
    return [[hit(s, found[j], wanted) for s, j in zip(srow, orow)] for srow, orow in zip(scores.tolist(), order.tolist())]
