"""parag's filter tree (:mod:`parag.filters`) as a Milvus boolean expression.

Metadata lives in a JSON field (``meta``); a field ``k`` is ``meta["k"]``. Every key and
value is written as an escaped literal, never spliced: a value such as ``'x" or 1==1 or "'``
stays one string. The expression says parag's semantics outright instead of leaning on the
server's: a field that a vector lacks matches no comparison, ``In`` or ``Exists``, so under
a ``not`` each comparison is guarded by ``exists`` (``$ne`` and ``$nin`` then match vectors
that lack the field, as in the FAISS store, whatever the server does with a missing key;
whether ``!=`` should match them is an open question upstream, milvus#47164).

The list operators ``$contains`` / ``$all`` / ``$any`` are ``json_contains`` /
``json_contains_all`` / ``json_contains_any``, which on a 2.3 server agree with parag (tested
on the server: tests/test_milvus_filters.py): a field that is missing or not a list holds
nothing, and elements compare as ``$eq`` does, ``true`` not ``1``, where a number is written
as a float literal (the server compares ``1`` with ``1.0`` only then) of magnitude below
2**53 (``9007199254740992.0`` matches the element 2**53 + 1).

What Milvus 2.3 cannot evaluate exactly raises :class:`NotOnServer` (a
:class:`~parag.errors.InvalidFilterError`): ``$document`` and ``$substring`` (its ``like``
has no escape for ``%`` and ``_``), list values of ``$eq`` / ``$in`` and list elements that
are lists, objects or null, numbers beyond 2**53, and ``null`` or an object (dict) as a
value. The store then evaluates such a filter itself, exactly, with
parag's numpy evaluator over the collection's metadata and documents (:func:`client_mask`).
A callable filter is an InvalidFilterError: it would run Python over every vector's
metadata on each search.

Examples
--------
>>> from parag.filters import parse
>>> to_expression(parse({"source": "a", "year": {"$gte": 2020}}))
'(meta["source"] == "a") and (meta["year"] >= 2020)'
>>> to_expression(parse({"lang": {"$nin": ["en", 1]}}))
'not (((exists meta["lang"]) and meta["lang"] in ["en"]) or ((exists meta["lang"]) and meta["lang"] in [1]))'
>>> to_expression(parse({"q": 'x" or 1==1 or "'}))
'meta["q"] == "x\\\\" or 1==1 or \\\\""'
>>> to_expression(parse({"tags": {"$any": ["a", 1]}}))
'json_contains_any(meta["tags"], ["a", 1.0])'
>>> to_expression(parse({})) is None
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from parag.documents import DocumentStore
from parag.errors import InvalidFilterError
from parag.filters import COMPARISONS, And, Compare, Contains, Exists, In, Node, Not, Or, Predicate, evaluate
from parag.metadata import MetadataStore, encode_metadata

JSON_FIELD = "meta"
EXACT_FLOAT_INT = 2**53
# True for every row; Milvus 2.3 has no ``true`` literal in a filter (ids are >= 0).
EVERYTHING = "id >= 0"


class NotOnServer(InvalidFilterError):
    """The filter has no exact Milvus expression (the store evaluates it itself)."""


def to_expression(node: Node) -> str | None:
    """The Milvus expression for a parsed filter; None when it matches everything.

    Raises InvalidFilterError for a callable, NotOnServer for what has no exact expression.
    """
    _refuse_callables(node)
    if isinstance(node, And) and not node.parts:
        return None
    return _expr(node, negated=False)


def server_plan(node: Node) -> str | None | NotOnServer:
    """The server expression of a parsed filter (None: everything), or the NotOnServer
    that says parag must evaluate it (:func:`client_mask`)."""
    try:
        return to_expression(node)
    except NotOnServer as e:
        return e


def client_mask(node: Node, metadata: list[dict[str, Any]], documents: list[str | None]) -> np.ndarray:
    """parag's own evaluation of ``node`` over rows read from the server: a mask."""
    store = MetadataStore()
    store.append(encode_metadata(metadata, len(metadata)))
    return evaluate(node, store, DocumentStore(documents))


def _refuse_callables(node: Node) -> None:
    match node:
        case And(parts) | Or(parts):
            for part in parts:
                _refuse_callables(part)
        case Not(part):
            _refuse_callables(part)
        case Predicate():
            raise InvalidFilterError(
                "a callable filter runs Python on each vector's metadata, which a Milvus server "
                "cannot; write it in the dict language, e.g. {'year': {'$gte': 2020}}"
            )


def _expr(node: Node, negated: bool) -> str:
    match node:
        case And(parts) | Or(parts):
            if not parts:
                return EVERYTHING
            joiner = " and " if isinstance(node, And) else " or "
            return joiner.join(f"({_expr(p, negated)})" for p in parts)
        case Not(Not(inner)):  # the server's parser has a depth limit: cancel pairs
            return _expr(inner, negated)
        case Not(part):
            return f"not ({_expr(part, True)})"
        case Exists(field):
            return f"(exists {_key(field)})"
        case Compare(field, op, value):
            leaf = f"{_key(field)} {COMPARISONS[op]} {_literal(value, field)}"
            return _guarded(field, leaf, negated)
        case In(field, values):
            return _in(field, values, negated)
        case Contains(field, values, every):
            return _guarded(field, _contains(field, values, every), negated)
    raise NotOnServer(f"{type(node).__name__} has no exact Milvus 2.3 expression")


def _guarded(field: str, leaf: str, negated: bool) -> str:
    """``leaf``, false (not unknown) for a vector without ``field`` where a ``not`` reads it."""
    return f"(exists {_key(field)}) and {leaf}" if negated else leaf


def _in(field: str, values: tuple[Any, ...], negated: bool) -> str:
    # Milvus refuses an `in` list of mixed types: one list per type.
    groups: dict[str, list[str]] = {}
    for v in values:
        kind = "bool" if isinstance(v, bool) else "str" if isinstance(v, str) else "number"
        groups.setdefault(kind, []).append(_literal(v, field))
    key = _key(field)
    parts = [f"{key} in [{', '.join(g)}]" for g in groups.values()]
    if not parts:
        parts = [f"{key} in []"]
    parts = [_guarded(field, p, negated) for p in parts]
    return parts[0] if len(parts) == 1 else " or ".join(f"({p})" for p in parts)


def _contains(field: str, values: tuple[Any, ...], every: bool) -> str:
    elements = [_element(v, field) for v in values]
    if len(elements) == 1:
        return f"json_contains({_key(field)}, {elements[0]})"
    return f"json_contains_{'all' if every else 'any'}({_key(field)}, [{', '.join(elements)}])"


def _element(value: Any, field: str) -> str:
    """A list element as a literal ``json_contains`` compares exactly as parag does."""
    if isinstance(value, (bool, str)):
        return _literal(value, field)
    if isinstance(value, (int, float)) and abs(value) < EXACT_FLOAT_INT:  # False for NaN
        return repr(float(value))  # a float: the server then compares 1 with 1.0
    raise NotOnServer(
        f"list element {value!r} for field {field!r} has no exact Milvus expression "
        "(null, lists, objects and numbers from 2**53 on are compared by parag, not the server)"
    )


_UNNAMEABLE = frozenset("\b\t\n\f\r\x7f")  # characters a server JSON path cannot name (see _key)


def _key(field: str) -> str:
    # The 2.3 server does not decode the \uXXXX escapes of a JSON path (a key holding a
    # backspace, tab, newline, form feed, carriage return or DEL would name another key,
    # silently), and cannot parse meta[""].
    if not field or any(ch in _UNNAMEABLE for ch in field):
        raise NotOnServer(f"the key {field!r} has no exact Milvus path (parag evaluates the filter)")
    return f"{JSON_FIELD}[{string_literal(field, field)}]"


def _literal(value: Any, field: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return string_literal(value, field)
    # The server compares an int with a float as two doubles: exact only up to 2**53. So an
    # integral bound is written as an int (int64 against int64 is exact) and a bound beyond
    # 2**53 is compared by parag.
    if isinstance(value, (int, float)) and abs(value) <= EXACT_FLOAT_INT:  # False for NaN
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    raise NotOnServer(
        f"filter value {value!r} for field {field!r} has no exact Milvus expression "
        "(null, lists, objects and numbers beyond 2**53 are compared by parag, not the server)"
    )


def string_literal(text: str, field: str = "id") -> str:
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
