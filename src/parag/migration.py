"""Copy every record from one parag store to another: FAISS -> Milvus, Milvus -> FAISS, any pair.

Examples
--------
>>> import numpy as np
>>> from parag import migrate
>>> from parag.vectorstore import FAISSVectorStore
>>> src = FAISSVectorStore(4, "Flat", "L2")
>>> src.add(np.eye(4), [{"n": i} for i in range(4)])
[0, 1, 2, 3]
>>> dst = FAISSVectorStore(4, "HNSW", "L2")
>>> migrate(src, dst, batch_size=3, progress=False)
4
>>> dst.get([2]).metadata
[{'n': 2}]
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from parag.errors import InvalidArgumentError, InvalidTypeError, VerificationError
from parag.vectorstore.base import VectorStore


def migrate(
    source: VectorStore, destination: VectorStore, *, batch_size: int = 10_000, progress: bool = True,
    verify_searches: int = 20,
) -> int:
    """Copy every record of ``source`` (id, vector, metadata) into ``destination``; return the count.

    Records are read ``batch_size`` at a time and written with ``upsert``, so a rerun after
    an interruption is safe and copies nothing twice. A tqdm progress bar shows when tqdm is
    installed and ``progress`` is True. At the end every source id must be in the
    destination, and ``verify_searches`` stored vectors searched in both stores (k=10) must
    find each other's top hit; else :class:`~parag.errors.VerificationError`.

    Both stores need the same dimension and metric (scores would mean something else). A
    cosine store holds unit vectors, so a cosine destination gets the same vectors back.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size <= 0:
        raise InvalidTypeError(f"batch_size must be a positive int, got {batch_size!r}")
    for name, store in (("source", source), ("destination", destination)):
        if not isinstance(store, VectorStore):
            raise InvalidTypeError(f"{name} must be a parag vector store, got {type(store).__name__}")
    if source is destination:
        raise InvalidArgumentError("source and destination are the same store")
    if (source.dimension, source.metric) != (destination.dimension, destination.metric):
        raise InvalidArgumentError(
            f"source has dimension {source.dimension} and metric {source.metric!r}, destination "
            f"{destination.dimension} and {destination.metric!r}: they must match"
        )
    ids = source.ids()
    with _bar(len(ids), progress) as advance:
        for start in range(0, len(ids), batch_size):
            chunk = ids[start : start + batch_size]
            got = source.get(chunk, include_vectors=True)
            destination.upsert(chunk, got.vectors, got.metadata)  # type: ignore[attr-defined]
            advance(len(chunk))
    _verify(source, destination, ids, batch_size, verify_searches)
    return len(ids)


def _verify(source: VectorStore, destination: VectorStore, ids: list, batch_size: int, searches: int) -> None:
    if len(destination) < len(ids):
        raise VerificationError(f"the destination holds {len(destination)} records, fewer than the {len(ids)} copied")
    for start in range(0, len(ids), batch_size):
        destination.get(ids[start : start + batch_size])  # IdNotFoundError names any missing
    if not ids or searches <= 0:
        return
    sample = [ids[i] for i in np.linspace(0, len(ids) - 1, min(searches, len(ids))).astype(int)]
    queries = source.get(sample, include_vectors=True).vectors
    _, theirs, _ = source.search(queries, k=10)
    _, ours, _ = destination.search(queries, k=10)
    misses = [i for i, (a, b) in enumerate(zip(theirs, ours)) if a[:1] and not (set(a[:1]) & set(b) or set(b[:1]) & set(a))]
    if len(misses) > len(sample) // 10:
        raise VerificationError(
            f"{len(misses)} of {len(sample)} sample searches disagree between the stores (e.g. stored id "
            f"{sample[misses[0]]}): the copy is incomplete or the destination's index searches too narrowly"
        )


class _bar:
    """A tqdm bar when tqdm is installed and wanted; else nothing. ``with`` gives ``advance(n)``."""

    def __init__(self, total: int, wanted: bool) -> None:
        self._tqdm: Any = None
        if wanted:
            try:
                from tqdm import tqdm

                self._tqdm = tqdm(total=total, unit="records", desc="migrate")
            except ImportError:
                pass

    def __enter__(self) -> Any:
        return (lambda n: self._tqdm.update(n)) if self._tqdm is not None else (lambda n: None)

    def __exit__(self, *exc: Any) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
