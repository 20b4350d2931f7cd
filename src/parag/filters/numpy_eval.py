"""Evaluate a filter tree (:mod:`parag.filters.parse`) over a store's metadata with numpy.

Field nodes read :class:`parag.metadata.Columns` (per-key value codes and numbers), so a
filter costs a few numpy operations over the slots, never a Python pass over the metadata;
only a :class:`~parag.filters.parse.Predicate` decodes every vector's metadata.
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Callable

import numpy as np

from parag.errors import InvalidFilterError
from parag.filters.parse import And, Compare, Exists, Filter, In, Node, Not, Or, Predicate, parse
from parag.metadata import Column, MetadataStore, value_key

_RANGES = {"$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le}


def compile_filter(spec: Filter) -> Callable[[MetadataStore], np.ndarray]:
    """Parse ``spec`` once; return a function from metadata to the mask :func:`evaluate` gives.

    Examples
    --------
    >>> from parag.metadata import MetadataStore, encode_metadata
    >>> meta = MetadataStore()
    >>> meta.append(encode_metadata([{"year": 2023}, {"year": 2024}, {}], 3))
    >>> compile_filter({"year": {"$gte": 2024}})(meta)
    array([False,  True, False])
    """
    tree = parse(spec)
    return lambda meta: evaluate(tree, meta)


def evaluate(node: Node, meta: MetadataStore) -> np.ndarray:
    """A boolean mask over the slots of ``meta``: True where the metadata matches ``node``.

    Deleted slots have no fields: they match only where absence does (``Not``), so callers
    combine the mask with the live slots. A :class:`Predicate` that raises is reported as an
    InvalidFilterError.
    """
    match node:
        case And(parts):
            result = np.ones(len(meta), bool)
            for part in parts:
                result &= evaluate(part, meta)
            return result
        case Or(parts):
            result = np.zeros(len(meta), bool)
            for part in parts:
                result |= evaluate(part, meta)
            return result
        case Not(part):
            return ~evaluate(part, meta)
        case Compare(field, "$eq", value):
            return _equal(meta, field, [value_key(value)])
        case Compare(field, op, value):
            return _in_range(meta, field, op, value)
        case In(field, values):
            return _equal(meta, field, [value_key(v) for v in values])
        case Exists(field):
            column = meta.columns().get(field)
            return np.zeros(len(meta), bool) if column is None else column.codes.view >= 0
        case Predicate(function):
            return _predicate(meta, function)
    raise InvalidFilterError(f"{node!r} is not a filter node; build filters with parag.filters.parse")


def _equal(meta: MetadataStore, field: str, keys: list) -> np.ndarray:
    column = meta.columns().get(field)
    codes = [] if column is None else [column.vocab[k] for k in keys if k in column.vocab]
    if not codes:
        return np.zeros(len(meta), bool)
    assert column is not None
    if len(codes) == 1:
        return column.codes.view == codes[0]
    return np.isin(column.codes.view, codes)


def _in_range(meta: MetadataStore, field: str, op: str, bound: int | float | str) -> np.ndarray:
    column: Column | None = meta.columns().get(field)
    if column is None:
        return np.zeros(len(meta), bool)
    if isinstance(bound, str):
        strings, ranks = column.string_ranks()
        low, high = {
            "$gt": (bisect.bisect_right(strings, bound), len(strings)),
            "$gte": (bisect.bisect_left(strings, bound), len(strings)),
            "$lt": (0, bisect.bisect_left(strings, bound)),
            "$lte": (0, bisect.bisect_right(strings, bound)),
        }[op]
        return (ranks >= low) & (ranks < high)  # non-strings have rank -1
    with np.errstate(invalid="ignore"):
        return _RANGES[op](column.numbers.view, float(bound))  # NaN (not a number) compares False


def _predicate(meta: MetadataStore, function: Callable) -> np.ndarray:
    result = np.zeros(len(meta), bool)
    for slot, metadata in meta.items():
        try:
            result[slot] = bool(function(metadata))
        except Exception as e:
            raise InvalidFilterError(f"the filter function raised {e!r} on {metadata!r}") from e
    return result
