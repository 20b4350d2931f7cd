"""Filter columns: the values of each metadata key filters name, by slot, as numpy arrays.

A key's column is built the first time a filter names it, from the metadata of every slot,
and kept up to date by every write from then on; keys no filter names never get one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np
import orjson

from parag._arrays import GrowableArray


# orjson writes ints in [-2**63, 2**64) and refuses containers nested deeper than 255 levels.
_JSON_INTS = (-(2**63), 2**64)
_MAX_NESTING = 255
# orjson writes every float as digits then "." or "e" (1.0, -0.0, 1e+16); text without that has none.
_FLOAT_IN_JSON = re.compile(rb"\d[.e]")


def value_key(value: Any) -> tuple[str, Any]:
    """A hashable key under which equal JSON values meet: 1 and 1.0 share one, True does not,
    and so do ``[1]`` and ``[1.0]`` or ``{"x": 0}`` and ``{"x": -0.0}``.

    Raises TypeError for a value no JSON metadata can hold.
    """
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("number", value)
    if isinstance(value, str):
        return ("str", value)
    if value is None:
        return ("null", None)
    text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    # No float to rewrite (the common case): the search costs ~0.15 us per list or dict value,
    # a column build over 100k of them ~1.1x the old key's time (rewriting all: ~1.4x); a value
    # holding a float is rewritten, ~1 us.
    if _FLOAT_IN_JSON.search(text) is None:
        return ("json", text)
    return ("json", orjson.dumps(_canonical(value, 0), option=orjson.OPT_SORT_KEYS))


def _canonical(value: Any, depth: int) -> Any:
    """``value`` with every integral float written as the int it equals (-0.0 as 0), so that
    equal numbers inside lists and dicts dump to the same JSON text; bools stay bools."""
    if type(value) is float:
        # Outside orjson's int range no int equals the float: it stays a float.
        return int(value) if value.is_integer() and _JSON_INTS[0] <= value < _JSON_INTS[1] else value
    if depth > _MAX_NESTING:  # fail as orjson would, not with a RecursionError
        raise TypeError(f"nested more than {_MAX_NESTING} levels deep")
    if isinstance(value, dict):
        return {k: _canonical(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v, depth + 1) for v in value]
    return value


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
        """Set the value of each of ``slots`` (the key is present there) to that of ``values``."""
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
        """Forget the list elements of ``slots`` (their values are being replaced)."""
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

    def build(self, keys: list[str], chunks: Iterable[tuple[int, list[dict[str, Any] | None]]]) -> None:
        """Columns for ``keys`` from the metadata of every slot, given in consecutive chunks:
        (first slot, the chunk's dicts; None for a deleted slot)."""
        columns = {key: Column(self.n_slots) for key in keys}
        for first, dicts in chunks:
            for key, column in columns.items():
                _put_values(column, key, range(first, first + len(dicts)), dicts)
        self._columns.update(columns)

    def append(self, dicts: list[dict[str, Any] | None]) -> None:
        """Columns for new slots at the end."""
        first = self.n_slots
        self.n_slots += len(dicts)
        if not self._columns:  # no filter has named a key yet: nothing to keep up to date
            return
        slots = range(first, self.n_slots)
        for key, column in self._columns.items():
            # New slots start absent (-1, NaN) with no list elements: nothing to clear first.
            column.codes.append(None, count=len(dicts))
            column.numbers.append(None, count=len(dicts))
            _put_values(column, key, slots, dicts)

    def put(self, slots: Iterable[int], dicts: list[dict[str, Any] | None]) -> None:
        """Set the values of ``slots`` to those of ``dicts`` (None: no values)."""
        slots = list(slots)
        for key, column in self._columns.items():
            column.clear(slots)
            _put_values(column, key, slots, dicts)

    def keep(self, mask: np.ndarray) -> None:
        """Drop the slots where ``mask`` is False and renumber the rest in order."""
        for column in self._columns.values():
            column.keep(mask)
        self.n_slots = int(mask.sum())


def _put_values(column: Column, key: str, slots: Iterable[int], dicts: list[dict[str, Any] | None]) -> None:
    """Put into ``column`` the value of ``key`` in each of ``dicts`` that has one (at its slot)."""
    present = [(s, d[key]) for s, d in zip(slots, dicts) if d is not None and key in d]
    if present:
        column.put([s for s, _ in present], [v for _, v in present])
