"""The ids users give their vectors: all ints or all strings, one kind per store.

A store's kind is fixed by the first ids it holds: generated ids (``add`` without ids) and
int ids make an int store, string ids a string store. Int ids are non-negative int64; string
ids are non-empty, at most :data:`MAX_STR_ID_LENGTH` characters of valid Unicode (they are
saved as UTF-8 JSON). An int store generates ids from 0 upward, never reused; a string store
generates ``uuid.uuid4().hex`` (32 lowercase hex digits, random: unique in practice, and
checked against the stored ids like any other new id).

In memory a store keeps the id of each slot in one numpy array: int64 with ``-1`` on deleted
slots, or numpy's variable-width ``StringDType`` with ``""`` on deleted slots (an empty
string is never a valid id). See :class:`parag._slots.SlotMap`.
"""

from __future__ import annotations

import numbers
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, Union

import numpy as np
import numpy.typing as npt

from parag._jsonl import check_utf8
from parag._validation import as_ids
from parag.errors import DuplicateIdError, InvalidArgumentError, InvalidTypeError

# Pinecone's limit; long enough for a path plus a chunk number, short enough that an id
# is never mistaken for a document.
MAX_STR_ID_LENGTH = 512


class IdKind(NamedTuple):
    """One kind of id: its name (as saved in the manifest), its array dtype, and the id a
    deleted slot holds."""

    name: str
    dtype: np.dtype
    dead: Any


INT_IDS = IdKind("int", np.dtype(np.int64), -1)
STR_IDS = IdKind("str", np.dtypes.StringDType(), "")
ID_KINDS = {kind.name: kind for kind in (INT_IDS, STR_IDS)}
# What public methods take as ids: one id, or a sequence (or array) of ids of one kind.
Ids = Union[int, str, Sequence[int], Sequence[str], npt.NDArray[Any]]


def as_store_ids(ids: Any, kind: IdKind | None, name: str = "ids", unique: bool = True) -> np.ndarray:
    """``ids`` (one id, or an iterable such as a list, a numpy array of any int, str or object
    dtype, or a pandas Series) as an array of ``kind``: int64 or StringDType.

    ``kind`` None accepts either kind (a store that holds no id yet). Raises InvalidTypeError
    for a mix of ints and strings, for ids of the other kind than ``kind``, or for a value
    that is neither; InvalidArgumentError for a negative int, an empty or too long string;
    DuplicateIdError for a repeated id when ``unique``.

    Examples
    --------
    >>> as_store_ids(["a", "b"], None).tolist()
    ['a', 'b']
    >>> as_store_ids([1, "b"], None)
    Traceback (most recent call last):
    ...
    parag.errors.InvalidTypeError: ids mix ints and strings (ids[0] is 1, ids[1] is 'b'): a store's ids are all ints or all strings
    """
    if isinstance(ids, np.ndarray) and ids.dtype == object:
        ids = ids.tolist()  # pandas' df["id"].to_numpy(): the list path checks each element
    elif isinstance(ids, Iterable) and not isinstance(ids, (str, bytes, np.ndarray, list, tuple)):
        ids = list(ids)  # read a generator (or a pandas Series) once
    given = _kind_of(ids, name)
    if given is None:  # an empty list
        return np.empty(0, (kind or INT_IDS).dtype)
    if kind is not None:
        _check_kind(given, kind, name)
    if given == INT_IDS:
        return as_ids(ids, name, unique)
    return _as_str_ids([ids] if isinstance(ids, str) else list(ids), name, unique)


def check_kind(ids: np.ndarray, kind: IdKind, name: str = "ids") -> None:
    """Raise InvalidTypeError unless ``ids`` (from :func:`as_store_ids`) are of ``kind``."""
    if len(ids):
        _check_kind(STR_IDS if ids.dtype == STR_IDS.dtype else INT_IDS, kind, name)


def _check_kind(given: IdKind, kind: IdKind, name: str) -> None:
    if given is not kind:
        raise InvalidTypeError(
            f"{name} must be {kind.name}s like every id of this store, got {given.name} ids; "
            "a store's ids are all ints or all strings"
        )


def generated_str_ids(n: int) -> np.ndarray:
    """``n`` new random string ids (uuid4 hex)."""
    return np.array([uuid.uuid4().hex for _ in range(n)], STR_IDS.dtype)


def _kind_of(ids: Any, name: str) -> IdKind | None:
    """The kind of ``ids``, checked to be one kind (None for an empty collection)."""
    if isinstance(ids, str):
        return STR_IDS
    if isinstance(ids, np.ndarray):
        if ids.size and ids.dtype.kind in "UT":
            return STR_IDS
        return INT_IDS if ids.size else None  # as_ids reports any other dtype
    if isinstance(ids, (bytes, bool)) or not isinstance(ids, (numbers.Integral, Iterable)):
        raise InvalidTypeError(f"{name} must be ints or strings, got {type(ids).__name__} {ids!r}"[:300])
    if isinstance(ids, numbers.Integral):
        return INT_IDS
    values = ids
    first_str = first_int = None
    for i, v in enumerate(values):
        if isinstance(v, str):
            first_str = i if first_str is None else first_str
        elif isinstance(v, numbers.Integral) and not isinstance(v, bool):
            first_int = i if first_int is None else first_int
        else:
            raise InvalidTypeError(f"{name}[{i}] must be an int or a string, got {type(v).__name__} {v!r}"[:300])
        if first_str is not None and first_int is not None:
            a, b = sorted((first_int, first_str))
            raise InvalidTypeError(
                f"{name} mix ints and strings ({name}[{a}] is {values[a]!r}, {name}[{b}] is "
                f"{values[b]!r}): a store's ids are all ints or all strings"
            )
    if first_str is not None:
        return STR_IDS
    return INT_IDS if first_int is not None else None


def _as_str_ids(values: list[str], name: str, unique: bool) -> np.ndarray:
    for i, v in enumerate(values):
        if not v:
            raise InvalidArgumentError(f"{name}[{i}] is an empty string: string ids must be non-empty")
        if len(v) > MAX_STR_ID_LENGTH:
            raise InvalidArgumentError(
                f"{name}[{i}] has {len(v)} characters: string ids have at most {MAX_STR_ID_LENGTH}"
            )
    check_utf8(values, name)
    if unique and len(set(values)) != len(values):
        seen: set[str] = set()
        repeated = [v for v in values if v in seen or seen.add(v)]  # type: ignore[func-returns-value]
        raise DuplicateIdError(f"{name} contain duplicates: {repeated[:10]}")
    return np.array(values, STR_IDS.dtype)
