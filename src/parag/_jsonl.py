"""Columns of optional strings as JSON lines: how string ids and documents are saved.

One line per slot, each a JSON string or ``null``, joined by ``\\n`` with no newline after
the last (an empty column is an empty file). JSON strings cannot hold a raw newline, so
line ``s`` is always slot ``s``; reading is one ``orjson`` parse of the whole file.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from parag.errors import CorruptStoreError, InvalidArgumentError


def dump_strings(values: Iterable[str | None]) -> bytes:
    """``values`` as JSON lines (None as ``null``)."""
    # A store without documents saves a column of nulls: no encoder call per slot for them.
    return b"\n".join([b"null" if v is None else orjson.dumps(v) for v in values])


def load_strings(data: bytes, n: int, where: str) -> list[str | None]:
    """The ``n`` strings (or None) of ``data``; CorruptStoreError naming ``where`` otherwise.

    Examples
    --------
    >>> load_strings(dump_strings(["a\\nb", None]), 2, "the test file")
    ['a\\nb', None]
    """
    lines = data.split(b"\n") if data else []
    if len(lines) != n:
        raise CorruptStoreError(f"{where} has {len(lines)} lines, expected {n} (one per slot)")
    try:
        values = orjson.loads(b"[" + b",".join(lines) + b"]")
    except orjson.JSONDecodeError as e:
        raise CorruptStoreError(f"{where} is not one JSON string or null per line: {e}") from None
    if len(values) != n or not all(v is None or type(v) is str for v in values):
        raise CorruptStoreError(f"{where} must hold one JSON string or null per line")
    return values


def check_utf8(values: list[str | None], name: str) -> None:
    """Raise InvalidArgumentError naming the first string that UTF-8 cannot encode (a lone
    surrogate): it could not be saved."""
    try:
        orjson.dumps(values)
    except orjson.JSONEncodeError:
        for i, v in enumerate(values):
            if v is not None and not encodable(v):
                raise InvalidArgumentError(
                    f"{name}[{i}] is not valid Unicode (it holds a lone surrogate) and cannot be saved as UTF-8"
                ) from None
        raise


def encodable(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8 (it holds no lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
