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


def open_parquet(path: Path) -> Any:
    """``pyarrow.parquet.ParquetFile(path)``; a file that is not Parquet is bad input, named."""
    pq = pyarrow_parquet()
    import pyarrow as pa

    try:
        return pq.ParquetFile(path)
    except pa.ArrowException as exc:
        raise InvalidArgumentError(f"{path}: not a readable .parquet file ({exc})") from None


def parquet_batches(parquet: Any, path: Path, **options: Any) -> Iterator[Any]:
    """``parquet.iter_batches(**options)``; a damaged page is bad input, named."""
    import pyarrow as pa

    try:
        yield from parquet.iter_batches(**options)
    except pa.ArrowException as exc:
        raise InvalidArgumentError(f"{path}: cannot read the .parquet file ({exc})") from None


class Vectors:
    """The rows of a ``.npy`` file or of a ``.parquet`` list column, read in batches."""

    def __init__(self, path: Path, column: str = "vector") -> None:
        self.path = path
        self.column = column
        if path.suffix == ".parquet":
            self._parquet = open_parquet(path)
            self.rows = self._parquet.metadata.num_rows
            self.dimension = self._parquet_dimension()
            return
        self._npy = NpyFile(path, "a 2-D array of numbers (rows x dimension)", ndim=2, kinds="fiu")
        self.rows, self.dimension = self._npy.shape
        if self.dimension == 0:
            raise InvalidArgumentError(f"{path}: its rows hold no numbers (shape {self._npy.shape}): no vectors")

    def read(self) -> np.ndarray:
        """Every row at once (for small files such as queries)."""
        return np.concatenate([*self.batches(1 << 16), np.empty((0, self.dimension), np.float32)])

    def batches(self, size: int) -> Iterator[np.ndarray]:
        if self.path.suffix == ".parquet":
            first = 1  # batches may be shorter than size (they end at row groups)
            for batch in self._column_batches(size):
                rows = batch.column(0).to_pylist()
                try:
                    x = np.asarray(rows, dtype=np.float32)  # a null inside a vector becomes NaN: refused by the store
                except (ValueError, TypeError):
                    x = None
                if x is None or x.shape != (len(rows), self.dimension):
                    raise self._bad_row(rows, first)
                yield x
                first += len(rows)
            return
        for start in range(0, self.rows, size):
            yield self._npy.rows(start, min(size, self.rows - start))

    def _column_batches(self, size: int) -> Iterator[Any]:
        return parquet_batches(self._parquet, self.path, batch_size=size, columns=[self.column])

    def _parquet_dimension(self) -> int:
        """The length of the first vector, once the column is known to hold lists of numbers."""
        import pyarrow as pa

        names = self._parquet.schema_arrow.names
        if self.column not in names:
            raise InvalidArgumentError(
                f"{self.path}: no column {self.column!r} (columns: {names}): give its name as --vector-column"
            )
        kind = self._parquet.schema_arrow.field(self.column).type
        is_list = pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
        if not (is_list and (pa.types.is_integer(kind.value_type) or pa.types.is_floating(kind.value_type))):
            raise InvalidArgumentError(
                f"{self.path}: column {self.column!r} holds {kind}; it must hold one vector per row, "
                "a list of numbers (e.g. list<float>)"
            )
        first = next(self._column_batches(1), None)
        if first is None or not first.num_rows:
            raise InvalidArgumentError(f"{self.path}: column {self.column!r} has no rows: no vectors")
        vector = first.column(0)[0].as_py()
        if not vector:
            raise self._bad_row([vector], 1)
        return len(vector)

    def _bad_row(self, rows: list[Any], first: int) -> InvalidArgumentError:
        """The error for the first of ``rows`` (row ``first`` onwards, counted from 1) that is
        not a vector of ``dimension`` numbers."""
        for number, row in enumerate(rows, first):
            if row is None:
                problem = "is null"
            elif not row:
                problem = "is an empty list"
            elif len(row) != self.dimension:
                problem = f"has {len(row)} numbers, but row 1 has {self.dimension}"
            else:
                continue
            return InvalidArgumentError(
                f"{self.path}: column {self.column!r}, row {number} {problem}; every row must hold a vector "
                "of the same number of numbers"
            )
        return InvalidArgumentError(f"{self.path}: column {self.column!r}, rows {first}-{first + len(rows) - 1}: "
                                    "not vectors of numbers")


def read_ids(path: Path) -> Iterator[int | str]:
    """Ids from an ``.npy`` array of non-negative ints or of strings, one per vector row."""
    ids = NpyFile(path, "a 1-D array of ids (non-negative ints or strings)", ndim=1, kinds="iuU")
    for start in range(0, ids.shape[0], 65536):
        chunk = ids.rows(start, min(65536, ids.shape[0] - start))
        if chunk.dtype.kind in "iu":  # the store's ids are int64, from 0 up
            bad = np.flatnonzero((chunk < 0) | (chunk > np.iinfo(np.int64).max))
            if bad.size:
                raise InvalidArgumentError(
                    f"{path}: ids[{start + bad[0]}] is {chunk[bad[0]]}; int ids must be from 0 to 2**63 - 1"
                )
        yield from chunk.tolist()


class NpyFile:
    """A ``.npy`` array read some rows at a time with plain file reads. (A memory map would
    do too, but the pages it reads count as the process's memory until the OS evicts them.)"""

    def __init__(self, path: Path, what: str, *, ndim: int, kinds: str) -> None:
        with open(path, "rb") as f:  # np.load would open an .npz archive, or try a pickle
            magic = f.read(len(np.lib.format.MAGIC_PREFIX))
        if magic != np.lib.format.MAGIC_PREFIX:
            found = "empty" if not magic else "an .npz archive" if magic.startswith(b"PK") else "not a .npy file"
            raise InvalidArgumentError(f"{path}: the file is {found}; expected a .npy file (np.save) holding {what}")
        try:  # numpy parses and checks the header; no object arrays (allow_pickle=False)
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InvalidArgumentError(f"{path}: not a readable .npy array ({exc})") from None
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
        parquet = open_parquet(path)
        columns = [c for c in parquet.schema_arrow.names if c != skip_column]
        row = 0
        for batch in parquet_batches(parquet, path, batch_size=4096, columns=columns):
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
