"""Per-vector metadata, kept as compact JSON bytes.

Each vector's metadata dict is encoded once, when it is added, and stored as its JSON bytes
in a list indexed by the vector's slot (its position in the FAISS index). Storing bytes
rather than dicts has three payoffs: the store cannot be changed through a dict a caller
holds, a search decodes only the k hits it returns, and saving is a join of the bytes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain
from typing import Any, NamedTuple

import numpy as np
import orjson

from parag._arrays import GrowableArray
from parag.errors import CorruptStoreError, InvalidMetadataError

_EMPTY = b"{}"
_DELETED = b"null"


class Encoded(NamedTuple):
    """Metadata checked and encoded for storage: the JSON bytes and the dicts they hold."""

    blobs: list[bytes]
    dicts: list[dict[str, Any]]


def encode_metadata(metadata: Any, n: int, name: str = "metadata") -> Encoded:
    """Encode one dict per vector to JSON bytes, checking that each survives a JSON round trip.

    ``metadata`` may be None (every vector gets ``{}``), a list of dicts (None items become
    ``{}``), or a single dict when ``n`` is 1.
    """
    if metadata is None:
        return Encoded([_EMPTY] * n, [{}] * n)
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
    # The items' types, gathered with no Python call per item: the None items to replace,
    # and whether they are all dicts (the fast encoding's condition).
    types = set(map(type, metadata))
    if type(None) in types:
        items = [{} if m is None else m for m in metadata]
    else:
        items = metadata if type(metadata) is list else list(metadata)
    blobs = _encoded_at_once(items) if types <= _DICT_OR_NONE else None
    if blobs is None:  # something to report (or a rare layout): item by item, naming the first bad one
        blobs = [_encoded_item(m, i, name) for i, m in enumerate(items)]
    # One decode of the whole batch catches what JSON would silently change: tuples (become
    # lists), NaN/inf (become null), datetimes (become strings)... It is skipped when every
    # value is of a type that round-trips exactly (a scan 4x cheaper than the decode).
    if not _all_plain(items) and orjson.loads(b"[" + b",".join(blobs) + b"]") != items:
        for i, (m, b) in enumerate(zip(items, blobs)):
            if orjson.loads(b) != m:
                raise InvalidMetadataError(
                    f"{name}[{i}] does not survive a JSON round trip ({m!r} would load back as "
                    f"{orjson.loads(b)!r}); use lists not tuples, finite floats, plain str/int values"
                )
    return Encoded(blobs, items)


def _encoded_at_once(items: list[dict[str, Any]]) -> list[bytes] | None:
    """The JSON of each of ``items`` (dicts) from one ``orjson.dumps`` of them all (100k small
    dicts: 1.4x faster than one call each, measured), or None when an item is not serialisable,
    or when the items' boundaries in the array cannot be told apart by a plain search.

    orjson writes ``[{...},{...}]`` with no whitespace and no raw newline (newlines in
    strings are escaped), so each ``},{`` between two items is one boundary; when the
    array holds exactly ``len(items) - 1`` of them, no string or nested dict holds one.
    """
    if not items:
        return None
    try:
        whole = orjson.dumps(items)
    except TypeError:
        return None
    # split() makes exact-size bytes: no ~4 KB orjson allocation per item is kept. The
    # array's brackets are cut from the first and last item after it (not from a copy of it all).
    blobs = whole.replace(b"},{", b"}\n{").split(b"\n")
    if len(blobs) != len(items):
        return None
    blobs[0] = blobs[0][1:]
    blobs[-1] = blobs[-1][:-1]
    return blobs


def _encoded_item(m: Any, i: int, name: str) -> bytes:
    """The JSON of the metadata item ``m`` (``metadata[i]``), or InvalidMetadataError."""
    if not isinstance(m, dict):
        raise InvalidMetadataError(f"{name}[{i}] must be a dict, got {type(m).__name__}")
    try:
        # orjson returns each result in a ~4 KB allocation: keep an exact-size copy
        # instead (100k dicts: 8 MB of RSS instead of 410 MB, and 15x faster).
        return bytes(memoryview(orjson.dumps(m)))
    except TypeError as e:
        raise InvalidMetadataError(
            f"{name}[{i}] is not JSON-serialisable ({e}); use str keys and "
            "str/int/float/bool/None/list/dict values"
        ) from None


_SCALARS = frozenset({str, int, bool, type(None)})
_DICT_OR_NONE = frozenset({dict, type(None)})


def _all_plain(items: list[dict[str, Any]]) -> bool:
    """True if every value of every dict of ``items`` round-trips through JSON exactly (see
    :func:`_plain`). The types of the top-level values are gathered first with no Python
    call per value (cheaper than :func:`_plain` on each dict): when they are all str,
    int, bool or None, that settles it."""
    if set(map(type, chain.from_iterable(map(dict.values, items)))) <= _SCALARS:
        return True
    return all([_plain(m.values()) for m in items])


def _plain(values: Iterable[Any]) -> bool:
    """True if every value is exactly a str, int, bool, None, finite float, or a list or
    dict of such: types whose JSON round trip gives them back unchanged (subclasses, tuples,
    NaN... return False, and go through the exact check)."""
    for v in values:
        t = type(v)
        if t in _SCALARS:
            continue
        if t is float:
            if v - v != 0:  # NaN or infinity
                return False
        elif t is list:
            if not _plain(v):
                return False
        elif t is dict:
            if not _plain(v.values()):
                return False
        else:
            return False
    return True


class MetadataStore:
    """Metadata of every slot, as JSON bytes (None for a deleted slot), plus the
    :class:`Columns` that filters read: a key's column is built the first time a filter
    names the key, and kept up to date from then on. Keys no filter names never get one."""

    def __init__(self, blobs: list[bytes | None] | None = None) -> None:
        self._blobs: list[bytes | None] = blobs if blobs is not None else []
        self._columns = Columns(len(self._blobs))
        self._columns_lock = threading.Lock()  # concurrent searches may race to build them

    def __len__(self) -> int:
        return len(self._blobs)

    def append(self, encoded: Encoded) -> None:
        self._blobs.extend(encoded.blobs)
        self._columns.append(encoded.dicts)

    def get_many(self, slots: Iterable[int]) -> list[dict[str, Any]]:
        """Fresh dicts for live ``slots``: the caller may change them freely. One JSON parse
        of them all costs half as much as a parse per dict."""
        # (map, not a list comprehension: one Python frame less on the path of every search)
        return orjson.loads(b"[" + b",".join(map(self._blobs.__getitem__, slots)) + b"]")  # type: ignore[misc]

    def get_rows(self, slots: np.ndarray) -> list[list[dict[str, Any]]]:
        """Fresh dicts for a 2-D array of live slots, row by row (search results of a batch)."""
        k = slots.shape[1]
        if not k:
            return [[] for _ in range(len(slots))]
        flat = self.get_many(slots.ravel().tolist())
        return [flat[i : i + k] for i in range(0, len(flat), k)]

    def items(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """(slot, fresh metadata dict) of every live slot."""
        loads = orjson.loads
        return ((s, loads(b)) for s, b in enumerate(self._blobs) if b is not None)

    def set(self, slots: list[int], encoded: Encoded) -> None:
        for s, b in zip(slots, encoded.blobs):
            self._blobs[s] = b
        self._columns.put(slots, encoded.dicts)

    def kill(self, slots: list[int]) -> None:
        for s in slots:
            self._blobs[s] = None
        self._columns.put(slots, [None] * len(slots))

    def keep(self, mask: np.ndarray) -> None:
        """Drop the slots where ``mask`` is False (compaction renumbers the rest in order)."""
        self._blobs = [b for b, k in zip(self._blobs, mask.tolist()) if k]
        self._columns.keep(mask)

    def columns(self, keys: Iterable[str]) -> Columns:
        """The columns, with one for each of ``keys`` (those missing are built together, in
        one pass over the JSON)."""
        with self._columns_lock:
            missing = [key for key in keys if self._columns.get(key) is None]
            if missing:
                dicts = [None if b is None else orjson.loads(b) for b in self._blobs]
                for key in missing:
                    self._columns.build(key, dicts)
            return self._columns

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
        # Every empty dict shares one blob, as in a store built in memory (34 bytes a slot).
        return cls([None if line == _DELETED else _EMPTY if line == _EMPTY else line for line in lines])


def value_key(value: Any) -> tuple[str, Any]:
    """A hashable key under which equal JSON values meet: 1 and 1.0 share one, True does not."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("number", value)
    if isinstance(value, str):
        return ("str", value)
    if value is None:
        return ("null", None)
    return ("json", orjson.dumps(value, option=orjson.OPT_SORT_KEYS))


class Column:
    """The values of one metadata key, by slot, in the forms filters need.

    ``codes`` gives each slot the code of its value (-1: the key is absent), ``vocab`` maps a
    :func:`value_key` to its code and ``values[code]`` is that value; ``numbers`` holds
    numeric values as float64 (NaN where the value is not a number) for range comparisons
    (exact ones resolve float64 ties through ``values``). ``elements`` maps the key of each
    element of a list value to the slots whose list holds it (for ``$contains``).
    """

    def __init__(self, n_slots: int) -> None:
        self.codes = GrowableArray(np.int32, -1)
        self.codes.append(None, count=n_slots)
        self.numbers = GrowableArray(np.float64, np.nan)
        self.numbers.append(None, count=n_slots)
        self.vocab: dict[tuple[str, Any], int] = {}
        self.values: list[Any] = []
        self.elements: dict[tuple[str, Any], set[int]] = {}
        self._slot_elements: dict[int, set[tuple[str, Any]]] = {}
        self._string_ranks: tuple[int, list[str], np.ndarray] | None = None

    def string_ranks(self) -> tuple[list[str], np.ndarray]:
        """The column's distinct strings, sorted, and the rank among them of each slot's value
        (-1: not a string). A string range filter is then a bisect and one comparison over
        the slots. Cached until the vocabulary grows."""
        cached = self._string_ranks
        if cached is None or cached[0] != len(self.vocab):
            pairs = sorted((v, c) for (kind, v), c in self.vocab.items() if kind == "str")
            rank_of_code = np.full(len(self.vocab) + 1, -1, np.int32)  # [code + 1]: code -1 is absent
            rank_of_code[[c + 1 for _, c in pairs]] = np.arange(len(pairs), dtype=np.int32)
            cached = self._string_ranks = (len(self.vocab), [v for v, _ in pairs], rank_of_code)
        return cached[1], cached[2][self.codes.view + 1]

    def put(self, slots: list[int], values: list[Any]) -> None:
        vocab = self.vocab
        codes = []
        for v in values:
            key = value_key(v)
            code = vocab.get(key)
            if code is None:
                code = vocab[key] = len(self.values)
                self.values.append(v)
            codes.append(code)
        numbers = [
            float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan for v in values
        ]
        self.codes.view[slots] = codes
        self.numbers.view[slots] = numbers
        self._drop_elements(slots)
        for slot, v in zip(slots, values):
            if type(v) is list and v:
                keys = self._slot_elements[slot] = {value_key(e) for e in v}
                for key in keys:
                    self.elements.setdefault(key, set()).add(slot)

    def clear(self, slots: list[int]) -> None:
        """The key is absent from ``slots``."""
        self.codes.view[slots] = -1
        self.numbers.view[slots] = np.nan
        self._drop_elements(slots)

    def keep(self, mask: np.ndarray) -> None:
        """Drop the slots where ``mask`` is False and renumber the rest in order."""
        self.codes.keep(mask)
        self.numbers.keep(mask)
        renumber = np.cumsum(mask) - 1
        kept = {int(renumber[s]): keys for s, keys in self._slot_elements.items() if mask[s]}
        self._slot_elements, self.elements = kept, {}
        for slot, keys in kept.items():
            for key in keys:
                self.elements.setdefault(key, set()).add(slot)

    def _drop_elements(self, slots: list[int]) -> None:
        if not self._slot_elements:
            return
        for slot in slots:
            for key in self._slot_elements.pop(slot, ()):
                holders = self.elements[key]
                holders.discard(slot)
                if not holders:
                    del self.elements[key]


class Columns:
    """A :class:`Column` for each metadata key filters have named: what filters are evaluated
    on, with no per-query pass over the metadata."""

    def __init__(self, n_slots: int = 0) -> None:
        self.n_slots = n_slots
        self._columns: dict[str, Column] = {}

    def get(self, key: str) -> Column | None:
        """The key's column, or None if it has not been built."""
        return self._columns.get(key)

    def build(self, key: str, dicts: list[dict[str, Any] | None]) -> None:
        """A column for ``key`` from the metadata of every slot."""
        column = Column(self.n_slots)
        slots = [s for s, d in enumerate(dicts) if d is not None and key in d]
        column.put(slots, [dicts[s][key] for s in slots])  # type: ignore[index]
        self._columns[key] = column

    def append(self, dicts: list[dict[str, Any] | None]) -> None:
        """Columns for new slots at the end."""
        first = self.n_slots
        self.n_slots += len(dicts)
        if not self._columns:  # no filter has named a key yet: nothing to keep up to date
            return
        for column in self._columns.values():
            column.codes.append(None, count=len(dicts))
            column.numbers.append(None, count=len(dicts))
        self.put(range(first, self.n_slots), dicts)

    def put(self, slots: Iterable[int], dicts: list[dict[str, Any] | None]) -> None:
        """Set the values of ``slots`` to those of ``dicts`` (None: no values)."""
        slots = list(slots)
        for key, column in self._columns.items():
            column.clear(slots)
            present = [(s, d[key]) for s, d in zip(slots, dicts) if d is not None and key in d]
            if present:
                column.put([s for s, _ in present], [v for _, v in present])

    def keep(self, mask: np.ndarray) -> None:
        for column in self._columns.values():
            column.keep(mask)
        self.n_slots = int(mask.sum())
