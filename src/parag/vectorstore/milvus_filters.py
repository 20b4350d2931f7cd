"""parag's filter tree (:mod:`parag.filters`) as a Milvus boolean expression.

Metadata lives in a JSON field (``meta``); a field ``k`` is ``meta["k"]``. Every key and
value is written as an escaped literal, never spliced: a value such as ``'x" or 1==1 or "'``
stays one string. The expression says parag's semantics outright instead of leaning on the
server's: a field that a vector lacks matches no comparison, ``In`` or ``Exists``, so under
a ``not`` each comparison is guarded by ``exists`` (``$ne`` and ``$nin`` then match vectors
that lack the field, as in the FAISS store, whatever the server does with a missing key;
whether ``!=`` should match them is an open question upstream, milvus#47164).

What Milvus 2.3 cannot express exactly is an :class:`~parag.errors.InvalidFilterError`,
never a different answer: a callable filter, ``null`` or an object (dict) as a value,
an int beyond int64.

Examples
--------
>>> from parag.filters import parse
>>> to_expression(parse({"source": "a", "year": {"$gte": 2020}}))
'(meta["source"] == "a") and (meta["year"] >= 2020)'
>>> to_expression(parse({"lang": {"$nin": ["en", 1]}}))
'not (((exists meta["lang"]) and meta["lang"] in ["en"]) or ((exists meta["lang"]) and meta["lang"] in [1]))'
>>> to_expression(parse({"q": 'x" or 1==1 or "'}))
'meta["q"] == "x\\\\" or 1==1 or \\\\""'
>>> to_expression(parse({})) is None
True
"""

from __future__ import annotations

import math
from typing import Any

from parag.errors import InvalidFilterError
from parag.filters import COMPARISONS, And, Compare, Exists, In, Node, Not, Or, Predicate

JSON_FIELD = "meta"
INT64 = (-(2**63), 2**63 - 1)
# True for every row; Milvus 2.3 has no ``true`` literal in a filter (ids are >= 0).
EVERYTHING = "id >= 0"


def to_expression(node: Node) -> str | None:
    """The Milvus expression for a parsed filter; None when it matches everything."""
    if isinstance(node, And) and not node.parts:
        return None
    return _expr(node, negated=False)


def _expr(node: Node, negated: bool) -> str:
    match node:
        case And(parts) | Or(parts):
            if not parts:
                return EVERYTHING
            joiner = " and " if isinstance(node, And) else " or "
            return joiner.join(f"({_expr(p, negated)})" for p in parts)
        case Not(part):
            return f"not ({_expr(part, True)})"
        case Exists(field):
            return f"(exists {_key(field)})"
        case Compare(field, op, value):
            leaf = f"{_key(field)} {COMPARISONS[op]} {_literal(value, field)}"
            return _guarded(field, leaf, negated)
        case In(field, values):
            return _in(field, values, negated)
        case Predicate():
            raise InvalidFilterError(
                "a callable filter runs Python on each vector's metadata, which a Milvus server "
                "cannot; write it in the dict language, e.g. {'year': {'$gte': 2020}}"
            )
    raise InvalidFilterError(f"{node!r} is not a filter node; build filters with parag.filters.parse")


def _guarded(field: str, leaf: str, negated: bool) -> str:
    """``leaf``, false (not unknown) for a vector without ``field`` where a ``not`` reads it."""
    return f"(exists {_key(field)}) and {leaf}" if negated else leaf


def _in(field: str, values: tuple[Any, ...], negated: bool) -> str:
    # Milvus refuses an `in` list of mixed types: one list per type, lists compared whole.
    groups: dict[str, list[str]] = {}
    wholes = []
    for v in values:
        if isinstance(v, list):
            wholes.append(_literal(v, field))
        else:
            kind = "bool" if isinstance(v, bool) else "str" if isinstance(v, str) else "number"
            groups.setdefault(kind, []).append(_literal(v, field))
    key = _key(field)
    parts = [f"{key} in [{', '.join(g)}]" for g in groups.values()] + [f"{key} == {w}" for w in wholes]
    if not parts:
        parts = [f"{key} in []"]
    parts = [_guarded(field, p, negated) for p in parts]
    return parts[0] if len(parts) == 1 else " or ".join(f"({p})" for p in parts)


def _key(field: str) -> str:
    return f"{JSON_FIELD}[{_string(field, field)}]"


def _literal(value: Any, field: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _string(value, field)
    if isinstance(value, int):
        if INT64[0] <= value <= INT64[1]:
            return str(value)
        if math.isfinite(float(value)):  # compared by value, as parag does
            return repr(float(value))
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v, field) for v in value) + "]"
    raise InvalidFilterError(
        f"filter value {value!r} for field {field!r} has no exact Milvus expression "
        "(null, objects and non-finite numbers cannot be compared on the server)"
    )


def _string(text: str, field: str) -> str:
    """A double-quoted Milvus string literal: backslash, quote and control characters escaped."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidFilterError(f"filter string {text!r} (field {field!r}) is not valid Unicode") from None
    out = []
    for ch in text:
        if ch in '\\"':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
