"""Copy every record from one parag store to another: FAISS -> Milvus, Milvus -> FAISS, any pair.

Examples
--------
>>> import numpy as np
>>> from parag import migrate
>>> from parag.vectorstore import FAISSVectorStore
>>> src = FAISSVectorStore(4, "Flat", "L2")
>>> src.add(np.eye(4), [{"n": i} for i in range(4)], ids=["a", "b", "c", "d"], documents=["A", "B", "C", None])
['a', 'b', 'c', 'd']
>>> dst = FAISSVectorStore(4, "HNSW", "L2")
>>> migrate(src, dst, batch_size=3, progress=False)
4
>>> dst.get(["c", "d"]).records()
[{'id': 'c', 'document': 'C', 'metadata': {'n': 2}}, {'id': 'd', 'document': None, 'metadata': {'n': 3}}]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from parag._validation import check_bool, check_int
from parag.errors import InvalidArgumentError, InvalidTypeError, VerificationError
from parag.vectorstore.base import VectorStore


def migrate(
    source: VectorStore, destination: VectorStore, *, batch_size: int = 10_000, progress: bool = True,
    verify_searches: int = 20,
) -> int:
    """Copy every record of ``source`` (id, vector, metadata, document) into ``destination``;
    return the count.

    Records are read ``batch_size`` at a time and written with ``upsert``, so a rerun after
    an interruption is safe and copies nothing twice. A tqdm progress bar shows when tqdm is
    installed and ``progress`` is True. At the end every source id must be in the
    destination, a sample of ``verify_searches`` records must have the same metadata and
    document in both, and their stored vectors searched in both stores (k=10) must find each
    other's top hit; else :class:`~parag.errors.VerificationError`.

    Both stores need the same dimension. Another metric is a rebuild (``parag migrate
    --metric``): the vectors are copied as stored (a cosine store's are unit vectors), and the
    sample searches are not compared, since the metrics rank differently.
    """
    batch_size = check_int(batch_size, "batch_size")
    verify_searches = check_int(verify_searches, "verify_searches", low=0)
    progress = check_bool(progress, "progress")
    for name, store in (("source", source), ("destination", destination)):
        if not isinstance(store, VectorStore):
            raise InvalidTypeError(f"{name} must be a parag vector store, got {type(store).__name__}")
    if source is destination:
        raise InvalidArgumentError("source and destination are the same store")
    if source.dimension != destination.dimension:
        raise InvalidArgumentError(
            f"source has dimension {source.dimension}, destination {destination.dimension}: they must match"
        )
    ids = source.ids()
    with _bar(len(ids), progress) as advance:
        for start in range(0, len(ids), batch_size):
            chunk = ids[start : start + batch_size]
            got = source.get(chunk, include_vectors=True)
            # Documents only where the source has some: a backend without documents still takes the rest.
            documents = {"documents": got.documents} if any(d is not None for d in got.documents or ()) else {}
            destination.upsert(chunk, got.vectors, got.metadata, **documents)
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
    want, got = source.get(sample, include_vectors=True), destination.get(sample)
    for name in ("metadata", "documents"):
        original, copied = getattr(want, name), getattr(got, name)
        differ = [i for i, (x, y) in enumerate(zip(original, copied)) if x != y] if original and copied else []  # None: no documents
        if differ:
            raise VerificationError(f"the {name} of stored id {sample[differ[0]]!r} differ between the stores after the copy")
    if source.metric != destination.metric:
        return  # the metrics rank differently: nothing to compare
    _, theirs, _ = source.search(want.vectors, k=10)
    _, ours, _ = destination.search(want.vectors, k=10)
    misses = [i for i, (a, b) in enumerate(zip(theirs, ours)) if a[:1] and not (set(a[:1]) & set(b) or set(b[:1]) & set(a))]
    if len(misses) > len(sample) // 10:
        raise VerificationError(
            f"{len(misses)} of {len(sample)} sample searches disagree between the stores (e.g. stored id "
            f"{sample[misses[0]]!r}): the copy is incomplete or the destination's index searches too narrowly"
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
