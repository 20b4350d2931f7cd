"""Per-vector metadata, kept as JSON in one buffer, with each slot's offsets into it.

Each ``add`` encodes its batch's metadata once (:func:`~parag.metadata.encode_metadata`)
and the store appends that JSON, rows separated by newlines, to one ``bytearray``; two int64
arrays give each slot's row as ``data[starts[slot]:ends[slot]]``. (``array.array``s, not
numpy arrays: a search reads its k hits' offsets by plain indexing, ~1 us less per 10 hits.)
A row thus costs its JSON and 17 bytes (a bytes object per row would add ~33 bytes of
header and an 8-byte pointer), an add copies its batch once, and saving is a few slices of
the buffer. Keeping JSON rather than dicts has three more payoffs: the store cannot be
changed through a dict a caller holds, a search decodes only the k hits it returns, and
filter columns come from one parse.

A row set later (``update_metadata``) is appended to the buffer and its slot pointed there;
a deleted slot points at the ``null`` the buffer starts with. The bytes no slot points at
any more are dropped when the store compacts, or when they outgrow half the buffer.
"""

from __future__ import annotations

import threading
import traceback
import warnings
from array import array
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, overload

import numpy as np
import orjson

from parag.errors import CorruptStoreError
from parag.metadata.columns import Columns
from parag.metadata.encoding import Encoded

_DEAD = b"null\n"  # the first bytes of every buffer: where the rows of deleted slots point
_DEAD_END = len(_DEAD) - 1
_NEWLINE = ord("\n")
_CHUNK = 65536  # slots parsed at once when every slot's metadata is read (memory stays bounded)
_Runs = tuple[list[int], list[int]]  # byte ranges of the buffer: (firsts, lasts)
_Buffer = TypeVar("_Buffer", bytearray, "array[int]")
# (buffer, starts, ends, bytes in the buffer, slots, unused bytes, the saved slots, their offsets):
# see MetadataStore.savepoint
RowsPoint = tuple[bytearray, "array[int]", "array[int]", int, int, int, "list[int] | np.ndarray",
                  tuple[np.ndarray, np.ndarray] | None]


class MetadataStore:
    """Metadata of every slot, as JSON rows (``null`` for a deleted slot), plus the
    :class:`~parag.metadata.columns.Columns` that filters read: a key's column is built the
    first time a filter names the key, and kept up to date from then on.

    Examples
    --------
    >>> from parag.metadata import encode_metadata
    >>> meta = MetadataStore()
    >>> meta.append(encode_metadata([{"year": 2023}, {"year": 2024}, {}], 3))
    >>> meta.kill([1])
    >>> meta.get_many([2, 0]), meta.to_jsonl()
    ([{}, {'year': 2023}], b'{"year":2023}\\nnull\\n{}')
    """

    def __init__(self) -> None:
        self._use(bytearray(_DEAD), np.empty(0, np.int64), np.empty(0, np.int64))
        self._columns = Columns()
        self._columns_lock = threading.Lock()  # concurrent searches may race to build them

    def _use(self, data: bytearray, starts: np.ndarray, ends: np.ndarray) -> None:
        """Hold the rows ``data[starts[slot]:ends[slot]]`` (``data`` starting with ``null``).
        Every piece is made before any is replaced: a rewrite that runs out of memory changes nothing."""
        new_starts, new_ends = _extend(array("q"), starts), _extend(array("q"), ends)
        self._data, self._starts, self._ends = data, new_starts, new_ends
        self._unused = 0  # bytes of the buffer that no slot points at

    def __len__(self) -> int:
        return len(self._starts)

    def append(self, encoded: Encoded, replacing: list[int] | None = None) -> None:
        """New slots at the end, with the metadata ``encoded``, and the ``replacing`` slots
        marked deleted (an upsert); all or nothing: if it raises (out of memory), the store
        is as it was. The bytes of the replaced rows are dropped by :meth:`tidy`, later."""
        killed = replacing or []
        with self._undone_on_error(killed):
            if killed:
                self._point_dead(killed)
            starts, ends = self._appended(encoded)
            self._starts = _extend(self._starts, starts)
            self._ends = _extend(self._ends, ends)
            self._columns.append(encoded.dicts)

    def append_dead(self, n: int) -> None:
        """``n`` deleted slots at the end."""
        self._starts = _extend(self._starts, np.zeros(n, np.int64))
        self._ends = _extend(self._ends, np.full(n, _DEAD_END, np.int64))
        self._columns.append([None] * n)

    def set(self, slots: list[int], encoded: Encoded) -> None:
        """Replace the metadata of (live) ``slots``; all or nothing. The bytes of the old rows
        are dropped by :meth:`tidy`, later."""
        with self._undone_on_error(slots):
            self._point(slots, *self._appended(encoded))
            self._columns.put(slots, encoded.dicts)

    def kill(self, slots: list[int]) -> None:
        """Mark ``slots`` deleted; all or nothing. The bytes of their rows are dropped by
        :meth:`tidy`, later."""
        with self._undone_on_error(slots):
            self._point_dead(slots)

    def _point_dead(self, slots: list[int]) -> None:
        self._point(slots, 0, _DEAD_END)
        self._columns.put(slots, [None] * len(slots))

    @contextmanager
    def _undone_on_error(self, slots: list[int]) -> Iterator[None]:
        """Undo what the ``with`` block did if it raises (out of memory): see :meth:`roll_back`."""
        point = self.savepoint(slots)
        try:
            yield
        except BaseException as e:
            # The failed step's frame, kept by the traceback, may hold numpy views of the
            # offsets (as _point's does), and an array is cut back in place only while none lives.
            traceback.clear_frames(e.__traceback__)
            self.roll_back(point)
            raise

    def savepoint(self, slots: list[int] | np.ndarray) -> RowsPoint:
        """What :meth:`roll_back` needs to undo the writes that follow: appends, changes to
        the rows of ``slots`` (the only existing slots they may change) and a :meth:`keep`.
        (Their offsets are gathered ~10-20x faster through an int64 array than a list.)"""
        data, starts, ends = self._data, self._starts, self._ends
        offsets = (_view(starts)[slots], _view(ends)[slots]) if len(slots) else None  # (copies)
        return data, starts, ends, len(data), len(starts), self._unused, slots, offsets

    def roll_back(self, point: RowsPoint) -> None:
        """Undo the writes made since ``point`` (a write that failed part way, or a write
        whose caller failed after it). A keep left the old buffer and offsets as they were
        (it made new ones); the other writes changed them in place, or grew copies while a
        view of them lived: either way the point's own buffer and offsets are put back, cut
        to their lengths, with the saved offsets of its slots. The filter columns, which may
        be half changed, are dropped (the next filter builds them again from the JSON)."""
        data, starts, ends, n_bytes, n_slots, unused, slots, offsets = point
        data, starts, ends = _cut(data, n_bytes), _cut(starts, n_slots), _cut(ends, n_slots)
        if offsets is not None:
            _view(starts)[slots], _view(ends)[slots] = offsets
        self._data, self._starts, self._ends, self._unused = data, starts, ends, unused
        if len(slots) or self._columns.n_slots != n_slots:
            self._columns = Columns(n_slots)

    def tidy(self) -> None:
        """Drop the bytes no slot points at any more once they outgrow half the buffer.

        Housekeeping after a write that is complete: a rewrite that runs out of memory
        changes nothing (see :meth:`_use`), and the bytes wait for a later one.
        """
        if self._unused > max(len(self._data) // 2, 1 << 20):
            try:
                self._rewrite(None)
            except MemoryError as e:
                warnings.warn(f"parag: dropping the metadata no slot uses any more failed ({e!r}); it is "
                              "kept until a later write or compact() succeeds", RuntimeWarning, stacklevel=2)

    def keep(self, mask: np.ndarray) -> None:
        """Drop the slots where ``mask`` is False (compaction renumbers the rest in order);
        all or nothing: if it raises (out of memory), the rows are as they were."""
        try:
            self._columns.keep(mask)
            self._rewrite(mask)  # (makes every piece before it replaces any: see _use)
        except BaseException:
            self._columns = Columns(len(self))  # half kept, or kept when the rows were not: dropped
            raise

    def get_many(self, slots: Iterable[int]) -> list[dict[str, Any]]:
        """Fresh dicts for live ``slots``: the caller may change them freely. One JSON parse
        of them all costs half as much as a parse per dict."""
        data, starts, ends = self._data, self._starts, self._ends
        rows = [data[starts[s] : ends[s]] for s in slots]
        return orjson.loads(b"[" + b",".join(rows) + b"]")  # type: ignore[no-any-return]

    def get_rows(self, slots: np.ndarray) -> list[list[dict[str, Any]]]:
        """Fresh dicts for a 2-D array of live slots, row by row (search results of a batch)."""
        k = slots.shape[1]
        if not k:
            return [[] for _ in range(len(slots))]
        flat = self.get_many(slots.ravel().tolist())
        return [flat[i : i + k] for i in range(0, len(flat), k)]

    def items(self, slots: np.ndarray | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
        """(slot, fresh metadata dict) of every live slot, or of the live ones among the
        slot numbers ``slots``: only those are parsed."""
        if slots is None:
            for first, dicts in self._parsed():
                yield from ((slot, d) for slot, d in enumerate(dicts, first) if d is not None)
            return
        for first in range(0, len(slots), _CHUNK):  # a chunk at a time: memory stays bounded
            chunk = slots[first : first + _CHUNK].tolist()
            yield from ((slot, d) for slot, d in zip(chunk, self.get_many(chunk)) if d is not None)

    def columns(self, keys: Iterable[str]) -> Columns:
        """The columns, with one for each of ``keys`` (those missing are built together, in
        one pass over the JSON)."""
        with self._columns_lock:
            missing = [key for key in keys if self._columns.get(key) is None]
            if missing:
                self._columns.build(missing, self._parsed())
            return self._columns

    def lines(self, first: int, stop: int) -> list[bytes]:
        """The JSON line of each slot from ``first`` to ``stop`` (``null``: deleted), a bytes
        object each (to check a loaded file a chunk at a time). The lines are joined in one
        copy and split in C: no row holds a newline, whether orjson wrote it or a file's split."""
        runs = _runs(_view(self._starts)[first:stop], _view(self._ends)[first:stop])
        return _joined(self._data, runs).split(b"\n") if runs[0] else []

    def null_rows(self) -> np.ndarray:
        """A mask over slots: those whose line is exactly ``null`` (deleted)."""
        starts, ends = _view(self._starts), _view(self._ends)
        four = np.flatnonzero(ends - starts == 4)
        data = np.frombuffer(self._data, np.uint8)
        at = starts[four, None] + np.arange(4)
        mask = np.zeros(len(starts), bool)
        mask[four] = (data[at] == np.frombuffer(b"null", np.uint8)).all(axis=1)
        return mask

    def to_jsonl(self) -> bytes:
        """One JSON line per slot, ``null`` for a deleted slot."""
        return _joined(self._data, _runs(_view(self._starts), _view(self._ends)))

    @classmethod
    def from_jsonl(cls, data: bytes, n_slots: int, where: str = "metadata") -> MetadataStore:
        """The store of ``data``, JSON lines (checked by the caller) for ``n_slots`` slots;
        CorruptStoreError naming ``where`` if it has another number of lines."""
        newlines = np.flatnonzero(np.frombuffer(data, np.uint8) == _NEWLINE)
        n_lines = len(newlines) + 1 if data else 0
        if n_lines != n_slots:
            raise CorruptStoreError(
                f"{where} has {n_lines} lines but the ids file has {n_slots} slots (one line a slot): "
                "the store is damaged; restore it from a backup (parag verify names the damaged file)"
            )
        store = cls()
        if n_slots:
            starts = np.concatenate([[0], newlines + 1]) + len(_DEAD)
            ends = np.concatenate([newlines, [len(data)]]) + len(_DEAD)
            store._use(bytearray(_DEAD) + data + b"\n", starts, ends)
            store._columns = Columns(n_slots)
        return store

    def copy(self) -> MetadataStore:
        """An independent copy: the buffer and offsets copied as they are (no JSON is parsed
        or written); its filter columns are built again when a filter names a key."""
        copied = MetadataStore()
        copied._use(bytearray(self._data), _view(self._starts), _view(self._ends))
        copied._unused = self._unused
        copied._columns = Columns(len(self))
        return copied

    def _appended(self, encoded: Encoded) -> tuple[np.ndarray, np.ndarray]:
        """Append the JSON of ``encoded``'s rows to the buffer, each followed by a newline
        (written over the comma between two rows); where their rows are in it."""
        if not len(encoded.starts):
            return encoded.starts, encoded.ends
        first, last = int(encoded.starts[0]), int(encoded.ends[-1])
        shift = len(self._data) - first
        starts, ends = encoded.starts + shift, encoded.ends + shift
        try:
            self._data += memoryview(encoded.json)[first:last]
        except BufferError:  # a view of the buffer lives on (see _extend): grow a copy
            self._data = self._data + memoryview(encoded.json)[first:last]
        self._data.append(_NEWLINE)
        # (a view held by no name: the buffer cannot grow, or be cut back, while one lives)
        np.frombuffer(self._data, np.uint8)[ends[:-1]] = _NEWLINE
        return starts, ends

    def _point(self, slots: list[int], starts: np.ndarray | int, ends: np.ndarray | int) -> None:
        """Point ``slots`` at new rows; the rows they leave are bytes no slot points at (which
        :meth:`tidy` drops)."""
        starts_view, ends_view = _view(self._starts), _view(self._ends)
        left = starts_view[slots]
        self._unused += int((ends_view[slots] - left + 1)[left != 0].sum())
        starts_view[slots], ends_view[slots] = starts, ends

    def _rewrite(self, mask: np.ndarray | None) -> None:
        """A new buffer holding the rows of the slots ``mask`` keeps (None: all), in order."""
        starts, ends = _view(self._starts), _view(self._ends)
        if mask is not None:
            starts, ends = starts[mask], ends[mask]
        lengths = ends - starts
        data = _joined(self._data, _runs(starts, ends), bytearray(_DEAD), newline_at_end=True)
        new_ends = len(_DEAD) + np.cumsum(lengths + 1) - 1
        self._use(data, new_ends - lengths, new_ends)

    def _parsed(self) -> Iterator[tuple[int, list[dict[str, Any] | None]]]:
        """Every slot's metadata (None for a deleted slot), parsed in chunks of consecutive
        slots: (first slot, its chunk's dicts)."""
        for first in range(0, len(self), _CHUNK):
            runs = _runs(_view(self._starts)[first : first + _CHUNK], _view(self._ends)[first : first + _CHUNK])
            yield first, orjson.loads(b"[" + _joined(self._data, runs).replace(b"\n", b",") + b"]")


def _view(offsets: array[int]) -> np.ndarray:
    """A numpy view of ``offsets``, which cannot grow in place while the view lives: keep
    views to the call that makes them (never across a ``yield``). (One an interrupted call
    leaves alive, in a kept traceback, makes the next growth a copy: :func:`_extend`.)"""
    return np.frombuffer(offsets, np.int64)


def _extend(offsets: array[int], values: np.ndarray) -> array[int]:
    """``offsets`` with ``values`` appended: in place, or, while a view of ``offsets`` lives
    (a kept traceback's frame may hold one: an interactive session keeps the last), in a copy."""
    appended = memoryview(np.ascontiguousarray(values, np.int64)).cast("B")
    try:
        offsets.frombytes(appended)
        return offsets
    except BufferError:
        grown = offsets[:]
        grown.frombytes(appended)
        return grown


def _cut(items: _Buffer, n: int) -> _Buffer:
    """``items`` cut to their first ``n``: in place, or, while a view of them lives (see
    :func:`_extend`), as a copy."""
    if len(items) == n:
        return items
    try:
        del items[n:]
        return items
    except BufferError:
        return items[:n]


def _runs(starts: np.ndarray, ends: np.ndarray) -> _Runs:
    """The byte ranges (firsts, lasts) of the buffer that hold the rows ``[starts, ends)``,
    each with its newline, in order: one range per run of rows that lie one after another."""
    if not len(starts):
        return [], []
    breaks = np.flatnonzero(starts[1:] != ends[:-1] + 1) + 1
    firsts = starts[np.concatenate([[0], breaks])]
    lasts = ends[np.concatenate([breaks - 1, [len(starts) - 1]])] + 1
    return firsts.tolist(), lasts.tolist()


@overload
def _joined(data: bytearray, runs: _Runs, head: bytearray, newline_at_end: bool = False) -> bytearray: ...
@overload
def _joined(data: bytearray, runs: _Runs, head: bytes = b"", newline_at_end: bool = False) -> bytes: ...
def _joined(
    data: bytearray, runs: _Runs, head: bytes | bytearray = b"", newline_at_end: bool = False
) -> bytes | bytearray:
    """``head`` followed by the byte ranges ``runs`` (see :func:`_runs`) of ``data``, the
    last newline left out unless ``newline_at_end``; of ``head``'s type (a rewrite's new
    buffer is made as the ``bytearray`` it stays, with no copy)."""
    firsts, lasts = runs
    if not firsts:
        return head
    if not newline_at_end:
        lasts = [*lasts[:-1], lasts[-1] - 1]
    with memoryview(data) as view:
        return type(head)().join([head, *(view[a:b] for a, b in zip(firsts, lasts))])
