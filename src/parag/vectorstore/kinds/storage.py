"""How an index stores its vectors: ``storage=`` of ``FAISSVectorStore``, orthogonal to the kind.

==========  ============================  =================  =========================
storage     bytes per vector (codes)      training           default ``rerank``
==========  ============================  =================  =========================
float32     ``4 * d`` (exact)             none               (scores already exact)
float16     ``2 * d``                     none               2
sq8         ``d`` (8-bit per component)   1,000 vectors      4
pq          ``pq_m`` (8-bit codes)        9,984 vectors      10
==========  ============================  =================  =========================

A compressed index (every storage but float32) is kept beside the float32 vector of every
slot (:mod:`.rerank`): a search asks the compressed index for ``rerank * k`` candidates and
re-scores them with the float32 vectors, so the scores a store returns are always the exact
metric. The float32 vectors are also what ``get`` returns, what compaction rebuilds from and
what exact (filtered, fallback) searches read. They live in RAM in a store built or loaded
normally, and in a file in a store loaded with ``mmap=True`` (its raw ``vectors`` file) or
given ``vectors_dir`` (an unnamed temporary file there, appended to by each add), where a
search reads only the ``rerank * k`` rows it re-scores (:mod:`.full_vectors`).

Until a store holds the vectors its storage trains on, it answers exactly from a flat index
(as IVFFlat does before its clustering): a min/max per component for sq8 (1,000 vectors),
256 centroids per sub-quantiser for pq (39 x 256 = 9,984 vectors, FAISS's minimum for a
clustering without warnings).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import faiss

from parag._faiss_header import MAX_DIMENSION
from parag._validation import Param
from parag.errors import InvalidArgumentError, InvalidTypeError
from parag.vectorstore.kinds.full_vectors import temporary_file

STORAGES = ("float32", "float16", "sq8", "pq")
COMPRESSED = STORAGES[1:]
#: The FAISS scalar quantiser type of each scalar storage.
SQ_TYPES = {"float16": faiss.ScalarQuantizer.QT_fp16, "sq8": faiss.ScalarQuantizer.QT_8bit}
#: Live vectors a storage needs before its index is built and trained.
TRAIN_AT = {"float32": 0, "float16": 0, "sq8": 1000, "pq": 39 * 256}
RERANK_DEFAULT = {"float16": 2, "sq8": 4, "pq": 10}
PQ_BITS = 8

#: The storage parameters every kind takes, beside its own.
STORAGE_TABLE = (
    Param("storage", "float32", choices=STORAGES),
    Param("pq_m", 0, 1, MAX_DIMENSION),
    Param("rerank", 1, 1, 1 << 10, per_search=True),
)


def default_pq_m(dimension: int) -> int:
    """The number of PQ sub-quantisers for ``dimension``: the largest divisor of it that is
    at most ``dimension / 8`` (48 for 384). Fewer bytes lose too much: on MiniLM embeddings
    PQ24 re-ranked 10x reaches recall@10 0.86, PQ48 0.96.

    Examples
    --------
    >>> default_pq_m(384), default_pq_m(100), default_pq_m(4)
    (48, 10, 1)
    """
    return max(m for m in range(1, max(1, dimension // 8) + 1) if dimension % m == 0)


def resolve_storage(kind: str, supported: tuple[str, ...], given: dict[str, Any], dimension: int) -> dict[str, Any]:
    """The storage parameters to add to a kind's own: none for float32 (a float32 store's
    parameters are what they always were), else ``storage``, ``rerank`` and, for pq, ``pq_m``."""
    table = {p.name: p for p in STORAGE_TABLE}
    storage = table["storage"].check(given.get("storage", "float32"))
    if storage not in supported:
        raise InvalidArgumentError(
            f"storage {storage!r} is not supported with index_type {kind!r}: "
            f"{kind} supports {list(supported)}; pq needs IVFFlat or HNSW (FAISS's flat PQ index "
            "cannot skip deleted or filtered-out vectors)"
        )
    misplaced = [name for name in ("pq_m", "rerank") if name in given and storage == "float32"]
    misplaced += ["pq_m"] if "pq_m" in given and storage not in ("pq", "float32") else []
    if misplaced:
        raise InvalidArgumentError(
            f"{misplaced[0]} does not apply to storage={storage!r}: rerank applies to compressed storage "
            f"{list(COMPRESSED)}, pq_m to storage='pq'"
        )
    if storage == "float32":
        return {}
    params = {"storage": storage}
    if storage == "pq":
        pq_m = table["pq_m"].check(given["pq_m"]) if "pq_m" in given else default_pq_m(dimension)
        if dimension % pq_m:
            raise InvalidArgumentError(f"pq_m ({pq_m}) must divide the dimension ({dimension})")
        params["pq_m"] = pq_m
    params["rerank"] = table["rerank"].check(given["rerank"]) if "rerank" in given else RERANK_DEFAULT[storage]
    return params


def check_vectors_dir(value: Any, storage: str) -> Path | None:
    """``vectors_dir`` as a Path to an existing directory this process can create files in
    (None stays None), for compressed storage only; else a parag error naming it (StoreWriteError
    for one it cannot write to: found now, not at the first add that needs it)."""
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise InvalidTypeError(f"vectors_dir must be a path (str or os.PathLike) or None, got {value!r}")
    if storage == "float32":
        raise InvalidArgumentError(
            f"vectors_dir applies to compressed storage {list(COMPRESSED)}: a float32 index holds its vectors "
            "itself, in RAM (choose a compressed storage to keep the float32 vectors in a file)"
        )
    path = Path(value)
    if not path.is_dir():
        raise InvalidArgumentError(f"vectors_dir must be an existing directory, got {str(value)!r}")
    temporary_file(path).close()
    return path


def codec_problems(storage: str, params: dict[str, Any], dimension: int, holder: faiss.Index) -> list[str]:
    """What is wrong with the codec of a loaded index (``holder``: the index whose ``sq`` or
    ``pq`` encodes the vectors) for ``storage`` (empty: nothing)."""
    if storage in SQ_TYPES:
        sq = holder.sq
        if sq.qtype != SQ_TYPES[storage] or sq.d != dimension:
            return [f"its scalar quantiser is not the {storage} one of dimension {dimension}"]
    elif storage == "pq":
        pq = holder.pq
        if (pq.d, pq.M, pq.nbits) != (dimension, params["pq_m"], PQ_BITS):
            return [f"its product quantiser is not pq_m={params['pq_m']} x {PQ_BITS} bits of dimension {dimension}"]
    return []
