"""A filter as data: the dict language parsed once into a small immutable tree.

:func:`parse` checks a filter and returns a tree of the node classes below; every error is an
:class:`~parag.errors.InvalidFilterError` naming the offending part (``filter['$or'][1]...``).
The tree is what evaluators read: :mod:`parag.filters.numpy_eval` evaluates it over a
store's metadata columns, and a backend with its own expression language translates it, one
function per node class, without knowing the dict syntax (a sketch follows).

The tree is normalised to ten node classes: ``$ne`` becomes ``Not(Compare("$eq"))``,
``$nin`` ``Not(In)``, ``{"$exists": False}`` ``Not(Exists)``, ``$contains`` / ``$all`` /
``$any`` a ``Contains``, ``$substring`` a ``Substring``, ``{"$document": {"$contains": t}}`` a ``DocumentContains`` (and
``$not_contains`` its ``Not``), several keys or operators in one dict an ``And`` (a single
part stands alone), and a callable filter (alone, or as a branch of ``$and`` / ``$or``) a
``Predicate``. As in MongoDB, a field that a vector lacks matches no comparison, ``In``,
``Contains`` or ``Exists`` (so ``$ne`` and ``$nin`` match it).

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
...         case Contains(field, values, every):
...             return f"{field} {'contains all of' if every else 'contains any of'} {list(values)!r}"
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

_FIELD_OPERATORS = ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$not", "$contains", "$all",
                    "$any", "$substring"]
#: The reserved key of a filter on the vector's document, and its operators.
DOCUMENT = "$document"
_DOCUMENT_OPERATORS = ("$contains", "$not_contains")

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
class Contains:
    """The field's value is a list holding every one (``every``) or at least one of
    ``values``, elements compared as ``$eq`` compares; any other value holds nothing."""

    field: str
    values: tuple[Any, ...]
    every: bool


@dataclass(frozen=True)
class Substring:
    """The field's value is a string containing ``text`` (case-sensitive); any other value
    does not."""

    field: str
    text: str


@dataclass(frozen=True)
class DocumentContains:
    """The vector's document contains ``text`` (case-sensitive; a vector without a
    document does not)."""

    text: str


@dataclass(frozen=True)
class Predicate:
    """A Python function of a vector's metadata dict (truthy: it matches). Only the numpy
    evaluator runs these; another engine cannot."""

    function: Callable[[dict[str, Any]], Any]


Node = Union[And, Or, Not, Compare, In, Exists, Contains, Substring, DocumentContains, Predicate]


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
    if _is_function(spec):
        return Predicate(spec)
    return _parse(spec, "filter", 0)


def fields(node: Node) -> frozenset[str]:
    """The metadata fields a tree reads (what an evaluator needs columns for).

    Examples
    --------
    >>> sorted(fields(parse({"$or": [{"a": 1}, {"b": {"$contains": 2}}], "$document": {"$contains": "x"}})))
    ['a', 'b']
    """
    match node:
        case And(parts) | Or(parts):
            return frozenset().union(*map(fields, parts))
        case Not(part):
            return fields(part)
        case Compare(field) | In(field) | Exists(field) | Contains(field) | Substring(field):
            return frozenset((field,))
    return frozenset()


def _is_function(spec: Any) -> bool:
    return callable(spec) and not isinstance(spec, dict)


def _parse_document(condition: Any, where: str) -> Node:
    if not isinstance(condition, dict) or not condition:
        raise InvalidFilterError(f"{where} must be a dict such as {{'$contains': 'text'}}")
    parts: list[Node] = []
    for op, text in condition.items():
        if op not in _DOCUMENT_OPERATORS:
            raise InvalidFilterError(f"unknown operator {op!r} in {where}; valid: {', '.join(_DOCUMENT_OPERATORS)}")
        if not isinstance(text, str):
            raise InvalidFilterError(f"{where}[{op!r}] must be a string, got {type(text).__name__}")
        node = DocumentContains(text)
        parts.append(node if op == "$contains" else Not(node))
    return _all(tuple(parts))


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
            subs = tuple(
                Predicate(v) if _is_function(v) else _parse(v, f"{where}[{key!r}][{i}]", depth + 1)
                for i, v in enumerate(value)
            )
            parts.append(_all(subs) if key == "$and" else Or(subs))
        elif key == "$not":
            parts.append(Not(_parse(value, f"{where}['$not']", depth + 1)))
        elif key == DOCUMENT:
            parts.append(_parse_document(value, f"{where}[{key!r}]"))
        elif key.startswith("$"):
            raise InvalidFilterError(
                f"unknown operator {key!r} in {where}; at the top level use $and, $or, $not, $document, "
                "or a field name"
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
    if op == "$contains":
        return Contains(field, (_json_value(operand, where),), True)
    if op in ("$all", "$any"):
        if not isinstance(operand, (list, tuple, set, frozenset)) or not operand:
            raise InvalidFilterError(f"{where} must be a non-empty list of values, got {operand!r}"[:300])
        return Contains(field, tuple(_json_value(v, f"{where}[{i}]") for i, v in enumerate(operand)), op == "$all")
    if op == "$substring":
        if not isinstance(operand, str):
            raise InvalidFilterError(f"{where} must be a string, got {type(operand).__name__}")
        return Substring(field, operand)
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
