"""Reading build inputs in batches: vectors from ``.npy`` or ``.parquet``,
records from ``.jsonl`` (line by line) or ``.parquet``. Nothing is read whole, so inputs
larger than RAM stream through. A bad record names its file and line (or row)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson

from parag.errors import InvalidArgumentError, MissingDependencyError

# Keys of a record in the nested form {"id": ..., "metadata": {...}, "document": "..."};
# any other object is a flat record: everything but the id is metadata.
NESTED_KEYS = {"metadata", "document"}


class Record(NamedTuple):
    id: int | str | None
    metadata: dict[str, Any]
    document: str | None
    where: str  # "file:line" or "file: row N", for error messages


def pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependencyError("reading or writing .parquet needs pyarrow: pip install 'parag[parquet]'") from exc
    return pq


class Vectors:
    """The rows of a ``.npy`` file or of a ``.parquet`` list column, read in batches."""

    def __init__(self, path: Path, column: str = "vector") -> None:
        self.path = path
        self.column = column
        if path.suffix == ".parquet":
            self._parquet = pyarrow_parquet().ParquetFile(path)
            if column not in self._parquet.schema_arrow.names:
                raise InvalidArgumentError(f"{path}: no column {column!r} (columns: {self._parquet.schema_arrow.names})")
            self.rows = self._parquet.metadata.num_rows
            first = next(self._parquet.iter_batches(batch_size=1, columns=[column]), None)
            self.dimension = len(first.column(0)[0]) if first is not None and first.num_rows else 0
            return
        self._npy = NpyFile(path, "a 2-D array of numbers (rows x dimension)", ndim=2, kinds="fiu")
        self.rows, self.dimension = self._npy.shape

    def read(self) -> np.ndarray:
        """Every row at once (for small files such as queries)."""
        return np.concatenate([*self.batches(1 << 16), np.empty((0, self.dimension), np.float32)])

    def batches(self, size: int) -> Iterator[np.ndarray]:
        if self.path.suffix == ".parquet":
            for batch in self._parquet.iter_batches(batch_size=size, columns=[self.column]):
                try:
                    yield np.asarray(batch.column(0).to_pylist(), dtype=np.float32)
                except (ValueError, TypeError) as exc:
                    raise InvalidArgumentError(
                        f"{self.path}: column {self.column!r} must hold lists of {self.dimension} numbers ({exc})"
                    ) from None
            return
        for start in range(0, self.rows, size):
            yield self._npy.rows(start, min(size, self.rows - start))


def read_ids(path: Path) -> Iterator[int | str]:
    """Ids from an ``.npy`` array of non-negative ints or of strings, one per vector row."""
    ids = NpyFile(path, "ids: a 1-D array of ints or strings", ndim=1, kinds="iuU")
    for start in range(0, ids.shape[0], 65536):
        yield from ids.rows(start, min(65536, ids.shape[0] - start)).tolist()


class NpyFile:
    """A ``.npy`` array read some rows at a time with plain file reads. (A memory map would
    do too, but the pages it reads count as the process's memory until the OS evicts them.)"""

    def __init__(self, path: Path, what: str, *, ndim: int, kinds: str) -> None:
        try:  # numpy parses and checks the header; no object arrays (allow_pickle=False)
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InvalidArgumentError(f"{path}: not a readable .npy array ({exc})") from exc
        if array.ndim != ndim or array.dtype.kind not in kinds:
            raise InvalidArgumentError(f"{path}: expected {what}, got shape {array.shape} of {array.dtype}")
        if not array.flags.c_contiguous:
            raise InvalidArgumentError(f"{path}: the array is in Fortran order; save np.ascontiguousarray(x) instead")
        self.path, self.shape, self.dtype = path, array.shape, array.dtype
        self._offset = array.offset if isinstance(array, np.memmap) else 0
        self._row = int(np.prod(self.shape[1:]))

    def rows(self, start: int, n: int) -> np.ndarray:
        with open(self.path, "rb") as f:
            f.seek(self._offset + start * self._row * self.dtype.itemsize)
            data = np.fromfile(f, self.dtype, count=n * self._row)
        if data.size != n * self._row:
            raise InvalidArgumentError(f"{self.path}: the file is shorter than its header says (truncated?)")
        return data.reshape((n, *self.shape[1:]))


def read_records(
    path: Path, *, flat_metadata: bool, id_field: str = "id", documents_field: str | None = None,
    skip_column: str | None = None,
) -> Iterator[Record]:
    """One :class:`Record` per line of a ``.jsonl`` file or row of a ``.parquet`` file.

    ``flat_metadata``: each object is the metadata itself (``--metadata``). Otherwise
    (``--records``) an object is either nested, ``{"id": 7, "metadata": {...},
    "document": "..."}``, or flat, ``{"id": 7, "title": ...}``: everything but the id is
    metadata, except the field ``documents_field`` names, which is the record's document.
    Ids are non-negative ints or strings (the store checks that they are all of one kind).
    """
    for where, obj in _objects(path, skip_column):
        if not isinstance(obj, dict):
            raise InvalidArgumentError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        if flat_metadata:
            yield Record(None, obj, None, where)
        else:
            yield _record(obj, where, id_field, documents_field)


def _objects(path: Path, skip_column: str | None) -> Iterator[tuple[str, Any]]:
    if path.suffix == ".parquet":
        parquet = pyarrow_parquet().ParquetFile(path)
        columns = [c for c in parquet.schema_arrow.names if c != skip_column]
        row = 0
        for batch in parquet.iter_batches(batch_size=4096, columns=columns):
            for obj in batch.to_pylist():
                row += 1
                yield f"{path}: row {row}", obj
        return
    with open(path, "rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            yield where, _parse(line, where)


def _parse(text: str | bytes, where: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgumentError(f"{where}: not valid JSON ({exc})") from None


def _record(obj: dict[str, Any], where: str, id_field: str, documents_field: str | None) -> Record:
    id_ = obj.get(id_field)
    if id_ is not None and not isinstance(id_, str) and (isinstance(id_, bool) or not isinstance(id_, int) or id_ < 0):
        raise InvalidArgumentError(f"{where}: {id_field!r} must be a non-negative int or a string, got {id_!r}")
    if "metadata" in obj and set(obj) <= NESTED_KEYS | {id_field}:
        metadata = obj["metadata"] if obj["metadata"] is not None else {}
        if isinstance(metadata, str):  # a .parquet column of JSON text, as parag export writes
            metadata = _parse(metadata, f"{where}: 'metadata'")
        if not isinstance(metadata, dict):
            raise InvalidArgumentError(f"{where}: 'metadata' must be a JSON object, got {type(metadata).__name__}")
        document = obj.get("document")
        what = "'document'"
    else:
        metadata = {k: v for k, v in obj.items() if k not in (id_field, documents_field)}
        document = None if documents_field is None else obj.get(documents_field)
        what = f"the document field {documents_field!r}"
        if documents_field is not None and not isinstance(document, str):
            raise InvalidArgumentError(f"{where}: {what} must be a string")
    if document is not None and not isinstance(document, str):
        raise InvalidArgumentError(f"{where}: {what} must be a string or null, got {type(document).__name__}")
    return Record(id_, metadata, document, where)
