"""Per-vector metadata, kept as compact JSON bytes.

Each vector's metadata dict is encoded once, when it is added, and stored as its JSON bytes
in a list indexed by the vector's slot (its position in the FAISS index). Storing bytes
rather than dicts has three payoffs: the store cannot be changed through a dict a caller
holds, a search decodes only the k hits it returns, and saving is a join of the bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import orjson

from parag.errors import CorruptStoreError, InvalidMetadataError

_EMPTY = b"{}"
_DELETED = b"null"


def encode_metadata(metadata: Any, n: int, name: str = "metadata") -> list[bytes]:
    """Encode one dict per vector to JSON bytes, checking that each survives a JSON round trip.

    ``metadata`` may be None (every vector gets ``{}``), a list of dicts (None items become
    ``{}``), or a single dict when ``n`` is 1.
    """
    if metadata is None:
        return [_EMPTY] * n
    if isinstance(metadata, dict):
        if n != 1:
            raise InvalidMetadataError(f"{name} must be a list of {n} dicts, one per vector, got one dict")
        metadata = [metadata]
    if isinstance(metadata, (str, bytes)) or not isinstance(metadata, Sequence):
        raise InvalidMetadataError(
            f"{name} must be a list of dicts (one per vector), got {type(metadata).__name__}"
        )
    if len(metadata) != n:
        raise InvalidMetadataError(f"{name} has {len(metadata)} items but there are {n} vectors")
    items = [{} if m is None else m for m in metadata]
    blobs = []
    for i, m in enumerate(items):
        if not isinstance(m, dict):
            raise InvalidMetadataError(f"{name}[{i}] must be a dict, got {type(m).__name__}")
        try:
            blobs.append(orjson.dumps(m))
        except TypeError as e:
            raise InvalidMetadataError(
                f"{name}[{i}] is not JSON-serialisable ({e}); use str keys and "
                "str/int/float/bool/None/list/dict values"
            ) from None
    # One decode of the whole batch catches what JSON would silently change: tuples (become
    # lists), NaN/inf (become null), datetimes (become strings)...
    if orjson.loads(b"[" + b",".join(blobs) + b"]") != items:
        for i, (m, b) in enumerate(zip(items, blobs)):
            if orjson.loads(b) != m:
                raise InvalidMetadataError(
                    f"{name}[{i}] does not survive a JSON round trip ({m!r} would load back as "
                    f"{orjson.loads(b)!r}); use lists not tuples, finite floats, plain str/int values"
                )
    return blobs


class MetadataStore:
    """Metadata of every slot, as JSON bytes; a deleted slot holds None."""

    def __init__(self, blobs: list[bytes | None] | None = None) -> None:
        self._blobs: list[bytes | None] = blobs if blobs is not None else []

    def __len__(self) -> int:
        return len(self._blobs)

    def append(self, blobs: Iterable[bytes]) -> None:
        self._blobs.extend(blobs)

    def get(self, slot: int) -> dict[str, Any]:
        """A fresh dict for ``slot``: the caller may change it freely."""
        return orjson.loads(self._blobs[slot])

    def get_many(self, slots: Iterable[int]) -> list[dict[str, Any]]:
        blobs, loads = self._blobs, orjson.loads
        return [loads(blobs[s]) for s in slots]

    def blob(self, slot: int) -> bytes | None:
        return self._blobs[slot]

    def set(self, slots: Iterable[int], blobs: Iterable[bytes | None]) -> None:
        for s, b in zip(slots, blobs):
            self._blobs[s] = b

    def keep(self, mask: np.ndarray) -> None:
        """Drop the slots where ``mask`` is False (compaction renumbers the rest in order)."""
        self._blobs = [b for b, k in zip(self._blobs, mask.tolist()) if k]

    def to_jsonl(self) -> bytes:
        """One JSON line per slot, ``null`` for a deleted slot."""
        return b"\n".join(_DELETED if b is None else b for b in self._blobs)

    @classmethod
    def from_jsonl(cls, data: bytes, n_slots: int) -> MetadataStore:
        lines = data.split(b"\n") if data else []
        if len(lines) != n_slots:
            raise CorruptStoreError(
                f"metadata has {len(lines)} lines but the index has {n_slots} vectors"
            )
        return cls([None if line == _DELETED else line for line in lines])
