"""A filter as data: the dict language parsed once into a small immutable tree.

:func:`parse` checks a filter and returns a tree of the node classes below; every error is an
:class:`~parag.errors.InvalidFilterError` naming the offending part (``filter['$or'][1]...``).
The tree is what evaluators read: :mod:`parag.filters.numpy_eval` evaluates it over a
store's metadata columns, and a backend with its own expression language translates it, one
function per node class, without knowing the dict syntax (a sketch follows).

The tree is normalised to seven node classes: ``$ne`` becomes ``Not(Compare("$eq"))``,
``$nin`` ``Not(In)``, ``{"$exists": False}`` ``Not(Exists)``, several keys or operators in
one dict an ``And`` (a single part stands alone), and a callable filter a ``Predicate``. As in
MongoDB, a field that a vector lacks matches no comparison, ``In`` or ``Exists`` (so
``$ne`` and ``$nin`` match it).

Examples
--------
>>> parse({"source": "a", "year": {"$ne": 2022}})
And(parts=(Compare(field='source', op='$eq', value='a'), Not(part=Compare(field='year', op='$eq', value=2022))))

A translator walks the tree, e.g. to a SQL-like string:

>>> def to_text(node):
...     match node:
...         case And(parts) | Or(parts):
...             joiner = " and " if isinstance(node, And) else " or "
...             return "(" + joiner.join(map(to_text, parts)) + ")" if parts else "true"
...         case Not(part):
...             return f"not {to_text(part)}"
...         case Compare(field, op, value):
...             return f"{field} {COMPARISONS[op]} {value!r}"
...         case In(field, values):
...             return f"{field} in {list(values)!r}"
...         case Exists(field):
...             return f"exists({field})"
...     raise ValueError(f"{node!r} has no translation")  # e.g. a Predicate
>>> to_text(parse({"$or": [{"lang": {"$in": ["en", "fr"]}}, {"year": {"$lt": 2000}}]}))
"(lang in ['en', 'fr'] or year < 2000)"
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Union

from parag.errors import InvalidFilterError
from parag.metadata import value_key

#: How deeply ``$and`` / ``$or`` / ``$not`` may nest (a filter is checked and evaluated by
#: recursion; real filters nest a few levels, and a limit turns a runaway one into a clear
#: error instead of a ``RecursionError``).
MAX_DEPTH = 100

#: The comparison operators of :class:`Compare`, with their usual symbols.
COMPARISONS = {"$eq": "==", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}

_FIELD_OPERATORS = ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$not"]

#: The type of a search's ``filter=`` argument: a dict of the language, or a function.
Filter = Union[dict[str, Any], Callable[[dict[str, Any]], Any]]


@dataclass(frozen=True)
class And:
    """Every part holds (no parts: always true)."""

    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    """At least one part holds (there is always one)."""

    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    """``part`` does not hold (including for vectors that lack its field)."""

    part: Node


@dataclass(frozen=True)
class Compare:
    """``field op value``, op one of :data:`COMPARISONS`.

    ``$eq`` takes any JSON value; numbers equal by value (``1 == 1.0``) but ``True`` is not
    ``1``, lists and dicts equal as whole values. The ranges take a number (compared with
    numbers) or a string (compared lexicographically with strings).
    """

    field: str
    op: str
    value: Any


@dataclass(frozen=True)
class In:
    """The field equals (as ``$eq`` does) one of ``values``."""

    field: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Exists:
    """The vector's metadata has the field (with any value, null included)."""

    field: str


@dataclass(frozen=True)
class Predicate:
    """A Python function of a vector's metadata dict (truthy: it matches). Only the numpy
    evaluator runs these; another engine cannot."""

    function: Callable[[dict[str, Any]], Any]


Node = Union[And, Or, Not, Compare, In, Exists, Predicate]


def parse(spec: Filter) -> Node:
    """Check the filter ``spec`` and return it as a tree.

    Raises
    ------
    InvalidFilterError
        For a malformed filter, naming the offending part: not a dict, an unknown operator,
        an operand of the wrong type, a number beyond float range, nesting deeper than
        :data:`MAX_DEPTH`.

    Examples
    --------
    >>> parse({"tags": {"$nin": [["a"], []]}})
    Not(part=In(field='tags', values=(['a'], [])))
    >>> parse({"year": {"$in": 2020}})
    Traceback (most recent call last):
    ...
    parag.errors.InvalidFilterError: filter['year']['$in'] must be a list of values, got int
    """
    if callable(spec) and not isinstance(spec, dict):
        return Predicate(spec)
    return _parse(spec, "filter", 0)


def _parse(spec: Any, where: str, depth: int) -> Node:
    _check_depth(where, depth)
    if not isinstance(spec, dict):
        raise InvalidFilterError(f"{where} must be a dict such as {{'source': 'a'}}, got {type(spec).__name__}")
    parts = []
    for key, value in spec.items():
        if not isinstance(key, str):
            raise InvalidFilterError(f"{where} has a key {key!r}: field names must be str")
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise InvalidFilterError(f"{where}[{key!r}] must be a non-empty list of filters")
            subs = tuple(_parse(v, f"{where}[{key!r}][{i}]", depth + 1) for i, v in enumerate(value))
            parts.append(_all(subs) if key == "$and" else Or(subs))
        elif key == "$not":
            parts.append(Not(_parse(value, f"{where}['$not']", depth + 1)))
        elif key.startswith("$"):
            raise InvalidFilterError(
                f"unknown operator {key!r} in {where}; at the top level use $and, $or, $not, or a field name"
            )
        else:
            parts.append(_parse_field(key, value, f"{where}[{key!r}]", depth))
    return _all(tuple(parts))


def _parse_field(field: str, condition: Any, where: str, depth: int) -> Node:
    is_operators = isinstance(condition, dict) and any(isinstance(k, str) and k.startswith("$") for k in condition)
    if not is_operators:
        return _parse_operator(field, "$eq", condition, where, depth)
    if not all(isinstance(k, str) and k.startswith("$") for k in condition):
        raise InvalidFilterError(f"{where} mixes operators and plain keys: {condition!r}")
    return _all(tuple(_parse_operator(field, op, operand, where, depth) for op, operand in condition.items()))


def _parse_operator(field: str, op: str, operand: Any, where: str, depth: int) -> Node:
    where = f"{where}[{op!r}]"
    if op in ("$eq", "$ne"):
        node: Node = Compare(field, "$eq", _json_value(operand, where))
        return node if op == "$eq" else Not(node)
    if op in ("$in", "$nin"):
        if not isinstance(operand, (list, tuple, set, frozenset)):
            raise InvalidFilterError(f"{where} must be a list of values, got {type(operand).__name__}")
        node = In(field, tuple(_json_value(v, f"{where}[{i}]") for i, v in enumerate(operand)))
        return node if op == "$in" else Not(node)
    if op in COMPARISONS:
        return Compare(field, op, _range_bound(operand, where))
    if op == "$exists":
        if not isinstance(operand, bool):
            raise InvalidFilterError(f"{where} must be True or False, got {operand!r}")
        return Exists(field) if operand else Not(Exists(field))
    if op == "$not":
        if not isinstance(operand, dict):
            raise InvalidFilterError(f"{where} must be a dict of operators, such as {{'$gt': 5}}")
        _check_depth(where, depth + 1)
        return Not(_parse_field(field, operand, where, depth + 1))
    raise InvalidFilterError(f"unknown operator {op!r} in {where}; valid: {', '.join(_FIELD_OPERATORS)}")


def _check_depth(where: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise InvalidFilterError(
            f"{where[:60]}... nests $and/$or/$not deeper than {MAX_DEPTH} levels; flatten the filter"
        )


def _json_value(value: Any, where: str) -> Any:
    try:
        value_key(value)  # the check: a value metadata could hold
    except TypeError:
        raise InvalidFilterError(f"{where} must be a JSON value, got {type(value).__name__}") from None
    # A list or dict is copied: the tree must not change when the caller's filter does.
    return copy.deepcopy(value) if isinstance(value, (list, dict)) else value


def _range_bound(value: Any, where: str) -> int | float | str:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidFilterError(f"{where} must be a number or a string, got {value!r}")
    if isinstance(value, str):
        return value
    try:
        number = float(value)
    except OverflowError:
        raise InvalidFilterError(f"{where} is beyond the float range (about ±1.8e308): {value!r}") from None
    if math.isnan(number):
        raise InvalidFilterError(f"{where} is NaN, which no value compares with")
    return value


def _all(parts: tuple[Node, ...]) -> Node:
    return parts[0] if len(parts) == 1 else And(parts)
