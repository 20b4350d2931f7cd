"""Metadata filters: the dict language users know from Chroma, MongoDB and LangChain.

A filter is compiled once per search into a function from the store's metadata to a
boolean mask over its slots. Field comparisons read :class:`parag.metadata.Columns`
(per-key value codes and numbers), so a filter costs a few numpy operations over the slots,
never a Python pass over the metadata. The search then takes the true top-k among the
slots the mask allows (a pre-filter): see ``FAISSVectorStore.search``.

The language::

    {"source": "a"}                          equality (also {"source": {"$eq": "a"}})
    {"year": {"$gte": 2020, "$lt": 2024}}    several operators on one field: all must hold
    {"source": "a", "year": 2024}            several fields: all must hold
    {"$or": [{...}, {...}]}, {"$and": [...]}, {"$not": {...}}
    {"year": {"$not": {"$gt": 2020}}}

Field operators: ``$eq $ne $gt $gte $lt $lte $in $nin $exists $not``. Numbers compare by
value (``1 == 1.0``, but ``True`` is not ``1``), ranges apply to numbers or to strings
(lexicographically, e.g. ISO dates), lists and dicts compare as whole values. As in
MongoDB, ``$ne`` and ``$nin`` also match vectors that lack the field. A callable
``filter=lambda meta: ...`` is accepted too; it decodes every vector's metadata per search,
so it is far slower.
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Callable
from typing import Any, Union

import numpy as np

from parag.errors import InvalidFilterError
from parag.metadata import MetadataStore, value_key

Filter = Union[dict[str, Any], Callable[[dict[str, Any]], Any]]
Mask = Callable[[MetadataStore], np.ndarray]

_RANGES = {"$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le}
_FIELD_OPERATORS = ["$eq", "$ne", *_RANGES, "$in", "$nin", "$exists", "$not"]


def compile_filter(spec: Filter) -> Mask:
    """Check ``spec`` and turn it into a function: metadata -> boolean mask over slots.

    Raises InvalidFilterError, naming the offending part, for a malformed filter.

    Examples
    --------
    >>> from parag.metadata import MetadataStore, encode_metadata
    >>> meta = MetadataStore()
    >>> meta.append(encode_metadata([{"year": 2023}, {"year": 2024}, {}], 3))
    >>> compile_filter({"year": {"$gte": 2024}})(meta)
    array([False,  True, False])
    """
    if callable(spec) and not isinstance(spec, dict):
        return _callable_mask(spec)
    return _compile(spec, "filter")


def _compile(spec: Any, where: str) -> Mask:
    if not isinstance(spec, dict):
        raise InvalidFilterError(
            f"{where} must be a dict such as {{'source': 'a'}}, got {type(spec).__name__}"
        )
    parts = []
    for key, value in spec.items():
        if not isinstance(key, str):
            raise InvalidFilterError(f"{where} has a key {key!r}: field names must be str")
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise InvalidFilterError(f"{where}[{key!r}] must be a non-empty list of filters")
            subs = [_compile(v, f"{where}[{key!r}][{i}]") for i, v in enumerate(value)]
            parts.append(_all(subs) if key == "$and" else _any(subs))
        elif key == "$not":
            parts.append(_negate(_compile(value, f"{where}['$not']")))
        elif key.startswith("$"):
            raise InvalidFilterError(
                f"unknown operator {key!r} in {where}; at the top level use $and, $or, $not, "
                "or a field name"
            )
        else:
            parts.append(_compile_field(key, value, f"{where}[{key!r}]"))
    return _all(parts)


def _compile_field(field: str, condition: Any, where: str) -> Mask:
    is_operators = isinstance(condition, dict) and any(
        isinstance(k, str) and k.startswith("$") for k in condition
    )
    if not is_operators:
        return _compile_operator(field, "$eq", condition, where)
    if not all(isinstance(k, str) and k.startswith("$") for k in condition):
        raise InvalidFilterError(f"{where} mixes operators and plain keys: {condition!r}")
    return _all([_compile_operator(field, op, operand, where) for op, operand in condition.items()])


def _compile_operator(field: str, op: str, operand: Any, where: str) -> Mask:
    where = f"{where}[{op!r}]"
    if op in ("$eq", "$ne"):
        keys = [_key(operand, where)]
        mask = lambda meta: _equal(meta, field, keys)  # noqa: E731
        return mask if op == "$eq" else _negate(mask)
    if op in ("$in", "$nin"):
        if not isinstance(operand, (list, tuple, set, frozenset)):
            raise InvalidFilterError(f"{where} must be a list of values, got {type(operand).__name__}")
        keys = [_key(v, f"{where}[{i}]") for i, v in enumerate(operand)]
        mask = lambda meta: _equal(meta, field, keys)  # noqa: E731
        return mask if op == "$in" else _negate(mask)
    if op in _RANGES:
        if isinstance(operand, bool) or not isinstance(operand, (int, float, str)):
            raise InvalidFilterError(f"{where} must be a number or a string, got {operand!r}")
        return lambda meta: _compare(meta, field, op, operand)
    if op == "$exists":
        if not isinstance(operand, bool):
            raise InvalidFilterError(f"{where} must be True or False, got {operand!r}")
        mask = lambda meta: _present(meta, field)  # noqa: E731
        return mask if operand else _negate(mask)
    if op == "$not":
        if not isinstance(operand, dict):
            raise InvalidFilterError(f"{where} must be a dict of operators, such as {{'$gt': 5}}")
        return _negate(_compile_field(field, operand, where))
    raise InvalidFilterError(f"unknown operator {op!r} in {where}; valid: {', '.join(_FIELD_OPERATORS)}")


def _key(value: Any, where: str) -> tuple[str, Any]:
    try:
        return value_key(value)
    except TypeError:
        raise InvalidFilterError(f"{where} must be a JSON value, got {type(value).__name__}") from None


# --------------------------------------------------------------------- evaluation


def _all(parts: list[Mask]) -> Mask:
    if len(parts) == 1:
        return parts[0]

    def mask(meta: MetadataStore) -> np.ndarray:
        result = np.ones(len(meta), bool)
        for part in parts:
            result &= part(meta)
        return result

    return mask


def _any(parts: list[Mask]) -> Mask:
    def mask(meta: MetadataStore) -> np.ndarray:
        result = np.zeros(len(meta), bool)
        for part in parts:
            result |= part(meta)
        return result

    return mask


def _negate(part: Mask) -> Mask:
    return lambda meta: ~part(meta)


def _equal(meta: MetadataStore, field: str, keys: list[tuple[str, Any]]) -> np.ndarray:
    column = meta.columns().get(field)
    codes = [] if column is None else [column.vocab[k] for k in keys if k in column.vocab]
    if not codes:
        return np.zeros(len(meta), bool)
    if len(codes) == 1:
        return column.codes.view == codes[0]  # type: ignore[union-attr]
    return np.isin(column.codes.view, codes)  # type: ignore[union-attr]


def _compare(meta: MetadataStore, field: str, op: str, operand: Any) -> np.ndarray:
    column = meta.columns().get(field)
    if column is None:
        return np.zeros(len(meta), bool)
    if isinstance(operand, str):
        strings, ranks = column.string_ranks()
        low, high = {
            "$gt": (bisect.bisect_right(strings, operand), len(strings)),
            "$gte": (bisect.bisect_left(strings, operand), len(strings)),
            "$lt": (0, bisect.bisect_left(strings, operand)),
            "$lte": (0, bisect.bisect_right(strings, operand)),
        }[op]
        return (ranks >= low) & (ranks < high)  # non-strings have rank -1
    with np.errstate(invalid="ignore"):
        return _RANGES[op](column.numbers.view, operand)  # NaN (not a number) compares False


def _present(meta: MetadataStore, field: str) -> np.ndarray:
    column = meta.columns().get(field)
    return np.zeros(len(meta), bool) if column is None else column.codes.view >= 0


def _callable_mask(predicate: Callable[[dict[str, Any]], Any]) -> Mask:
    def mask(meta: MetadataStore) -> np.ndarray:
        result = np.zeros(len(meta), bool)
        for slot, metadata in meta.items():
            try:
                result[slot] = bool(predicate(metadata))
            except Exception as e:
                raise InvalidFilterError(f"the filter function raised {e!r} on {metadata!r}") from e
        return result

    return mask
