"""Checks of a store's small files that their parsers do not make.

* Metadata: exactly one JSON object per line. Lines are decoded lazily at search time, and
  columns are built by decoding lines joined into one JSON array, so a line holding two
  objects (``{"i":0},{"i":"X"}``) would shift every later slot's metadata onto the wrong id,
  and a line that is not an object would fail a search with a foreign exception.
* The ids ``.npy`` header: numpy parses it with ``ast.literal_eval``, which a header of
  thousands of unary operators drives into RecursionError. Only a header of the shape numpy
  writes (a dict of a dtype string, a bool and a tuple of ints) reaches numpy's parser.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import orjson

from parag.errors import CorruptStoreError

_CHUNK = 10_000  # lines decoded at once: bounded memory, few calls
_NPY_MAGIC = re.compile(rb"\x93NUMPY(\x01\x00|\x02\x00)")
# The header numpy writes: a dict of three simple fields (a literal_eval of it cannot recurse).
_NPY_HEADER = re.compile(
    rb"\{'descr': '[<>|=]?[a-zA-Z][a-zA-Z0-9]{0,7}', 'fortran_order': (True|False), "
    rb"'shape': \(([0-9]{1,19}, ?){0,32}[0-9]{0,19}\), \} *\n"
)
_MAX_NPY_HEADER = 4096  # numpy pads to 64 bytes; an int64 vector's header takes ~70


def check_metadata_lines(lines: Callable[[int, int], list[bytes]], n_lines: int, where: str) -> None:
    """Raise CorruptStoreError unless every line is ``null`` or exactly one JSON object.

    ``lines(start, stop)`` gives the lines from ``start`` to ``stop`` (numbered from 0),
    asked for ``_CHUNK`` lines at a time: memory stays bounded. Each line is decoded on its
    own: lines joined into one array could hide a value split across two of them
    (``{"a":[{}`` and ``{}]},{}`` join into two objects), which later reads of the lines
    would then fail on."""
    for start in range(0, n_lines, _CHUNK):
        chunk = lines(start, start + _CHUNK)
        try:
            values = list(map(orjson.loads, chunk))
        except orjson.JSONDecodeError:
            values = []
        # Counted, not looped over in Python: every value a dict or None, and a None only
        # where the line is exactly "null" (" null" also decodes to None).
        if (
            len(values) != len(chunk)
            or not set(map(type, values)) <= {dict, type(None)}
            or values.count(None) != chunk.count(b"null")
        ):
            _raise_for_first_bad_line(chunk, start, where)


def _raise_for_first_bad_line(chunk: list[bytes], start: int, where: str) -> None:
    for offset, line in enumerate(chunk):
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            problem = f"is not one JSON value ({e})"
        else:
            if type(value) is dict or line == b"null":
                continue
            if value is None:
                raise CorruptStoreError(f'{where}: line {start + offset + 1} is null spelled {line[:40]!r}, not "null"')
            problem = f"holds a {type(value).__name__}, not a JSON object"
        raise CorruptStoreError(f"{where}: line {start + offset + 1} {problem}")


def check_npy_header(data: bytes, where: str) -> None:
    """Raise CorruptStoreError unless ``data`` starts with a ``.npy`` header as numpy writes it."""
    magic = _NPY_MAGIC.match(data)
    if not magic:
        raise CorruptStoreError(f"{where} is not a valid .npy file: no format 1.0 or 2.0 magic")
    length_size = 2 if magic.group(1) == b"\x01\x00" else 4
    start = 8 + length_size
    header_length = int.from_bytes(data[8:start], "little")
    header = data[start : start + header_length]
    if header_length > _MAX_NPY_HEADER or len(header) != header_length or (start + header_length) % 16:
        raise CorruptStoreError(f"{where} is not a valid .npy file: header length {header_length}")
    if not _NPY_HEADER.fullmatch(header):
        raise CorruptStoreError(f"{where} is not a valid .npy file: numpy writes no header {header[:200]!r}")
