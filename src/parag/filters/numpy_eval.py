"""Evaluate a filter tree (:mod:`parag.filters.parse`) over a store's metadata with numpy.

Field nodes read :class:`parag.metadata.Columns` (per-key value codes, numbers and list
elements), built for the fields the tree names only, so a filter costs a few numpy
operations over the slots, never a Python pass over the metadata; a
:class:`~parag.filters.parse.DocumentContains` reads the documents, and only a
:class:`~parag.filters.parse.Predicate` decodes metadata: that of the slots its ``$and`` /
``$or`` leaves undecided (see :func:`evaluate`).
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from parag.documents import DocumentStore
from parag.errors import InvalidFilterError, ParagError
from parag.filters.parse import And, Compare, Contains, DocumentContains, Exists, Filter, In, Node, Not, Or
from parag.filters.parse import Predicate, Substring, fields, parse
from parag.metadata import Column, Columns, MetadataStore, value_key

_RANGES = {"$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le}


class _Scope(NamedTuple):
    """What a tree is evaluated on: the metadata (with the columns of the tree's fields)
    and the documents (None: no vector has one)."""

    n: int
    meta: MetadataStore
    columns: Columns
    docs: DocumentStore | None


def compile_filter(spec: Filter) -> Callable[..., np.ndarray]:
    """Parse ``spec`` once; return a function from metadata (and documents) to the mask
    :func:`evaluate` gives.

    Examples
    --------
    >>> from parag.metadata import MetadataStore, encode_metadata
    >>> meta = MetadataStore()
    >>> meta.append(encode_metadata([{"year": 2023}, {"year": 2024}, {"tags": ["a"]}], 3))
    >>> compile_filter({"year": {"$gte": 2024}})(meta)
    array([False,  True, False])
    >>> compile_filter({"$or": [{"tags": {"$contains": "a"}}, lambda m: m.get("year") == 2023]})(meta)
    array([ True, False,  True])
    """
    tree = parse(spec)
    return lambda meta, docs=None: evaluate(tree, meta, docs)


def evaluate(node: Node, meta: MetadataStore, docs: DocumentStore | None = None) -> np.ndarray:
    """A boolean mask over the slots of ``meta``: True where the metadata (and document)
    matches ``node``.

    Deleted slots have no fields and no document: they match only where absence does
    (``Not``), so callers combine the mask with the live slots. A :class:`Predicate` that
    raises is reported as an InvalidFilterError, unless what it raised is a ParagError
    (e.g. the store's ReentrantWriteError), which propagates as it is.

    ``$and`` and ``$or`` short-circuit as Python's ``and`` / ``or`` and MongoDB's do: their
    parts are evaluated left to right, and a Predicate runs only on the slots whose result
    it can still change (for ``And``, those every part before it matched; for ``Or``, those
    no part before it matched), so ``{"$and": [{"k": {"$exists": True}}, lambda m: m["k"]]}``
    never calls the function on metadata without ``k``.
    """
    return _evaluate(node, _Scope(len(meta), meta, meta.columns(fields(node)), docs), None)


def _evaluate(node: Node, scope: _Scope, where: np.ndarray | None) -> np.ndarray:
    """The mask of ``node``, exact on the slots of ``where`` (None: every slot); outside
    them it may be anything. Only a Predicate reads ``where``: the other nodes cost a few
    numpy operations over every slot anyway."""
    match node:
        case And(parts) | Or(parts):
            is_and = isinstance(node, And)
            result = np.full(scope.n, is_and)
            for part in parts:
                undecided = None  # (a part without a Predicate costs the same on every slot)
                if _calls(part):
                    # The slots the part can still change: still True for And, still False for Or.
                    undecided = result.copy() if is_and else ~result
                    if where is not None:
                        undecided &= where
                    if not undecided.any():
                        break  # every slot is decided: the function is not called
                if is_and:
                    result &= _evaluate(part, scope, undecided)
                else:
                    result |= _evaluate(part, scope, undecided)
            return result
        case Not(part):
            return ~_evaluate(part, scope, where)
        case Compare(field, "$eq", value):
            return _equal(scope, field, [value_key(value)])
        case Compare(field, op, value):
            return _in_range(scope, field, op, value)
        case In(field, values):
            return _equal(scope, field, [value_key(v) for v in values])
        case Exists(field):
            return scope.columns.get(field).codes.view >= 0  # type: ignore[union-attr]
        case Contains(field, values, every):
            return _holding(scope, field, [value_key(v) for v in values], every)
        case Substring(field, text):
            strings, ranks = scope.columns.get(field).string_ranks()  # type: ignore[union-attr]
            return np.isin(ranks, [rank for rank, s in enumerate(strings) if text in s])
        case DocumentContains(text):
            return np.zeros(scope.n, bool) if scope.docs is None else scope.docs.contains(text)
        case Predicate(function):
            return _predicate(scope.meta, function, where)
    raise InvalidFilterError(f"{node!r} is not a filter node; build filters with parag.filters.parse")


def _calls(node: Node) -> bool:
    """Whether ``node`` holds a Predicate: the one node that :func:`_evaluate`'s ``where``
    spares work, and the only one a short-circuit must keep from running."""
    match node:
        case And(parts) | Or(parts):
            return any(map(_calls, parts))
        case Not(part):
            return _calls(part)
        case Predicate():
            return True
    return False


def _equal(scope: _Scope, field: str, keys: list) -> np.ndarray:
    column: Column = scope.columns.get(field)  # type: ignore[assignment]
    codes = [column.vocab[k] for k in keys if k in column.vocab]
    if not codes:
        return np.zeros(scope.n, bool)
    if len(codes) == 1:
        return column.codes.view == codes[0]
    return np.isin(column.codes.view, codes)


def _holding(scope: _Scope, field: str, keys: list, every: bool) -> np.ndarray:
    """Slots whose list value holds every one (or any) of the element ``keys``."""
    elements = scope.columns.get(field).elements  # type: ignore[union-attr]
    holders = [elements.get(k, set()) for k in keys]
    slots = set.intersection(*holders) if every else set().union(*holders)
    result = np.zeros(scope.n, bool)
    result[np.fromiter(slots, np.int64, len(slots))] = True
    return result


def _in_range(scope: _Scope, field: str, op: str, bound: int | float | str) -> np.ndarray:
    column: Column = scope.columns.get(field)  # type: ignore[assignment]
    if isinstance(bound, str):
        strings, ranks = column.string_ranks()
        low, high = {
            "$gt": (bisect.bisect_right(strings, bound), len(strings)),
            "$gte": (bisect.bisect_left(strings, bound), len(strings)),
            "$lt": (0, bisect.bisect_left(strings, bound)),
            "$lte": (0, bisect.bisect_right(strings, bound)),
        }[op]
        return (ranks >= low) & (ranks < high)  # non-strings have rank -1
    compare, rounded, numbers = _RANGES[op], float(bound), column.numbers.view
    with np.errstate(invalid="ignore"):
        result = compare(numbers, rounded)  # NaN (not a number) compares False
    # Rounding to float64 is monotonic, so only values that round to the bound's float can
    # be ordered wrongly (ints beyond 2**53): decide those exactly, by their own value.
    ties = np.flatnonzero(numbers == rounded)
    if len(ties):
        values = column.values
        result[ties] = [compare(values[c], bound) for c in column.codes.view[ties].tolist()]
    return result


def _predicate(meta: MetadataStore, function: Callable, where: np.ndarray | None) -> np.ndarray:
    """``function`` of each live slot's metadata, called on the slots of ``where`` only
    (None: every slot); False elsewhere."""
    result = np.zeros(len(meta), bool)
    for slot, metadata in meta.items(None if where is None else np.flatnonzero(where)):
        try:
            result[slot] = bool(function(metadata))
        except ParagError:
            # The store's own refusals (a write from inside the filter, a closed store) keep
            # their documented type, e.g. ReentrantWriteError is a RuntimeError, not a ValueError.
            raise
        except Exception as e:
            raise InvalidFilterError(f"the filter function raised {e!r} on {metadata!r}") from e
    return result
