"""The float32 vector of every slot of a compressed store, in RAM or in a raw file.

A compressed store (``storage`` float16, sq8 or pq) keeps each slot's full-precision vector
beside its compressed index (:mod:`.rerank`). :class:`FullVectors` holds them in one of two
places:

- **RAM**: a growable float32 array (a store built in memory, or loaded without ``mmap``).
- **a file**: raw little-endian float32 rows, nothing else. A store loaded with ``mmap=True``
  uses its saved ``vectors`` file; a store given ``vectors_dir`` uses an unnamed temporary
  file in that directory (the kernel deletes it when the store is gone), appended to by each
  add. The file is never mapped: every read is a ``preadv`` into a buffer of the process.
  Re-ranking and ``get(include_vectors=True)`` read just the rows they need; an exact search
  over a filter's few allowed slots reads just those rows (each run of consecutive ones with
  one call: a system call costs far more than the row it copies); an exact search over all of them
  (a wide filter's fallback, ``tune``'s ground truth), a save, a copy and a rebuild read the
  file a block at a time. The pages read stay the kernel's page cache, which serves the
  next read of the same rows from RAM, but they are not mapped into the process, so its
  resident memory does not grow with the queries it answers (a memory map of the rows it
  read would keep them resident and counted, a whole large page-cache folio per fault).

``preadv`` reads at an offset, with no shared file position, so any number of threads
may read at once.
"""

from __future__ import annotations

import os
import tempfile
import weakref
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import faiss
import numpy as np

from parag._slots import bitmap_selector
from parag.errors import StoreWriteError, UnsupportedOperationError, VectorsNotInMemoryError, cause_of
from parag.persistence import read_into_at, read_pieces_at

# Grow the in-RAM array by a quarter at a time: adds stay amortised O(1) while the slack
# (capacity not yet used) stays under a quarter of the vectors.
GROWTH = 1.25
# FAISS's distance for "no result" (label -1): the worst score of each metric.
NO_RESULT = float(np.finfo(np.float32).max)
#: The byte order and type of a vectors file's components.
DTYPE = "<f4"
# Copy vectors (to a file, out of one) in pieces of about this many bytes: no full-size copy.
BLOCK_BYTES = 1 << 24
# Reading one row of a file (a system call each) and scoring it costs about four times its share
# of reading and scoring the whole file a block at a time (200k x 384, page cache warm): an exact
# search over more than this share of the rows reads every row instead.
SCAN_SHARE = 0.25
# Reads of at least this many rows look for runs of consecutive slots, each read with one call.
RUNS_FROM = 100
# The end of the StoreClosedError a read of a closed file raises: the store hands this object
# out (store.faiss_index) and closes its file on close, a load or a rebuild of its index.
CLOSED = ("the store it belongs to was closed, loaded again or has rebuilt its index (a compaction, "
          "a retraining) since this index was taken; take store.faiss_index again")


class FullVectors:
    """The float32 vector of every slot, in slot order: a growable array in RAM, or raw rows
    in a file (``file``, made with :meth:`in_file`).

    It answers the calls the store makes of a float32 ``faiss.IndexFlat`` (``search`` with
    a selector, ``reconstruct_n``, ``ntotal``, ``metric_type``), so exact searches need no
    copy of the vectors into FAISS.

    Examples
    --------
    >>> v = FullVectors(np.eye(3, dtype=np.float32), faiss.METRIC_L2)
    >>> v.append(np.full((1, 3), 2, np.float32)); v.ntotal
    4
    >>> v.search(np.zeros((1, 3), np.float32), 2)[1].tolist()
    [[0, 1]]
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     f = FullVectors.spilled([np.eye(3, dtype=np.float32)], 3, faiss.METRIC_L2, tmp)
    ...     f.append(np.full((1, 3), 2, np.float32))
    ...     f.take(np.array([3, 0])).tolist(), f.take(np.array([], np.int64)).shape
    ([[2.0, 2.0, 2.0], [1.0, 0.0, 0.0]], (0, 3))
    """

    def __init__(self, data: np.ndarray, metric_type: int) -> None:
        """The rows of ``data`` in RAM (taken over, not copied)."""
        self._data = data  # rows beyond ntotal are spare capacity
        self.ntotal = len(data)
        self.d = data.shape[1]
        self.metric_type = metric_type
        self.file: BinaryIO | None = None  # None: the rows are in RAM
        self.directory: Path | None = None  # the vectors_dir of a temporary file: where its copy goes
        self.where = "the float32 vectors"  # the file, for error messages
        self.pid = os.getpid()  # the process whose temporary file it is

    @classmethod
    def in_file(
        cls, file: BinaryIO, n: int, d: int, metric_type: int, directory: Path | None = None, where: str = ""
    ) -> FullVectors:
        """The first ``n`` rows of ``file``: a saved store's vectors file (read-only), described
        in error messages as ``where``, or the temporary file of ``directory`` (a ``vectors_dir``,
        appended to by adds)."""
        vectors = cls(np.empty((0, d), np.float32), metric_type)
        vectors.file, vectors.directory, vectors.ntotal = file, directory, n
        # close() (IndexKind.close_files) is the prompt path; a FullVectors dropped without
        # it (a store never closed, a failed write's new temporary file) closes its file when
        # collected, quietly, rather than leave the file object to warn "unclosed file".
        weakref.finalize(vectors, file.close)
        if directory is not None:
            where = f"the temporary float32 vectors file in vectors_dir {str(directory)!r}"
        vectors.where = where or vectors.where
        if hasattr(os, "posix_fadvise"):
            # Rows are read at scattered offsets: no read-ahead around each (a cold row would
            # otherwise read several pages from disk).
            os.posix_fadvise(file.fileno(), 0, 0, os.POSIX_FADV_RANDOM)
        return vectors

    @classmethod
    def spilled(
        cls, blocks: Iterable[np.ndarray], d: int, metric_type: int, directory: str | Path
    ) -> FullVectors:
        """The rows of ``blocks``, in order, in a new unnamed temporary file in ``directory``
        (StoreWriteError naming it if it cannot be written)."""
        file = temporary_file(Path(directory))
        try:
            n = 0
            for block in blocks:
                n += _pwrite(file, block, n * 4 * d, Path(directory))
            return cls.in_file(file, n, d, metric_type, Path(directory))
        except BaseException:
            file.close()
            raise

    @property
    def array(self) -> np.ndarray:
        """The vectors in RAM, shape (ntotal, d): a view, not a copy. Rows in a file have
        none (nothing maps them): VectorsNotInMemoryError; read them with :meth:`take`,
        :meth:`blocks` or :meth:`reconstruct_n`, which work wherever they are."""
        if self.file is not None:
            raise VectorsNotInMemoryError(
                f"these float32 vectors are in a file, never mapped ({self.where}), so they have no "
                "array: read them with take(slots), blocks() or reconstruct_n(start, n)"
            )
        return self._data[: self.ntotal]

    def append(self, x: np.ndarray) -> None:
        """Add rows after the last slot (not to a saved store's mapped file: it is read-only).
        A failed write (disk full) raises StoreWriteError and adds nothing."""
        needed = self.ntotal + len(x)
        if self.directory is not None and os.getpid() != self.pid:  # both would write at one offset
            raise UnsupportedOperationError(
                f"this store keeps its float32 vectors in a temporary file of vectors_dir {str(self.directory)!r} "
                "shared with the process it was forked from: add to it there, or make or load the store anew here"
            )
        if self.file is not None:
            _pwrite(self.file, x, self.ntotal * 4 * self.d, self.directory)
        elif needed > len(self._data):
            grown = np.empty((max(needed, int(len(self._data) * GROWTH)), self.d), np.float32)
            grown[: self.ntotal] = self.array
            self._data = grown
        if self.file is None:
            self._data[self.ntotal : needed] = x
        self.ntotal = needed

    def truncate(self, n: int) -> None:
        """Forget the rows from slot ``n`` on (a failed add's)."""
        self.ntotal = min(self.ntotal, n)

    def take(self, slots: np.ndarray) -> np.ndarray:
        """Copies of the vectors at ``slots`` (in-range slot numbers, in any order). From a file,
        each run of consecutive slots (a filter on a document's chunks, added together) is
        read with one ``preadv``: a call costs microseconds, copying a row a fraction of one."""
        if self.file is None:
            return np.array(self.array[slots], np.float32)
        out = np.empty((len(slots), self.d), np.float32)
        listed = slots.tolist()
        if len(slots) < RUNS_FROM:  # a re-ranking's few rows: a call each (finding runs costs more)
            starts = list(range(len(slots)))
        else:
            starts = np.flatnonzero(np.diff(slots, prepend=-2) != 1).tolist()  # where runs begin
        view, row = memoryview(out.reshape(-1).view(np.uint8)), 4 * self.d
        ends = [*starts[1:], len(slots)]
        pieces = [(listed[i] * row, view[i * row : end * row]) for i, end in zip(starts, ends)]
        read_pieces_at(self.file, pieces, self.where, closed=CLOSED)
        return out

    def gathered(self, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Rows to score ``candidates`` (slots, -1: none) against, the candidates' row numbers
        in them, and the slot of each row (None: row numbers are slots): the whole array in
        RAM, or just the candidates' rows read from the file."""
        if self.file is None:
            return self.array, candidates, None
        flat = candidates.ravel()
        found = flat >= 0
        local = np.full(flat.shape, -1, np.int64)
        if len(candidates) == 1:  # one query's candidates are distinct
            local[found] = np.arange(int(found.sum()))
            slots = flat[found]
        else:
            # A row that several queries of a batch propose is read once (a tenth of them in a
            # batch of 1,000 clustered queries), and the reads go in file order.
            slots, local[found] = np.unique(flat[found], return_inverse=True)
        return self.take(slots), local.reshape(candidates.shape), slots

    def blocks(self) -> Iterator[np.ndarray]:
        """Every row in order, a piece at a time (read with ``preadv`` from a file: none of it mapped)."""
        if self.file is not None:
            yield from read_blocks(self.file, self.ntotal, self.d, self.where, CLOSED)
            return
        rows = max(1, BLOCK_BYTES // (4 * self.d))
        for start in range(0, self.ntotal, rows):
            yield self.array[start : start + rows]

    def copy(self) -> FullVectors:
        """An independent copy: in a new temporary file beside a temporary file's, else in
        RAM. A store loaded with ``mmap=True`` is read whole into RAM (its saved file is
        read-only, and a copy can be added to)."""
        if self.directory is not None:
            return FullVectors.spilled(self.blocks(), self.d, self.metric_type, self.directory)
        rows = self.reconstruct_n(0, self.ntotal)
        return FullVectors(rows if self.file is not None else rows.copy(), self.metric_type)

    def reconstruct_n(self, start: int, n: int) -> np.ndarray:
        """The vectors of slots ``start`` to ``start + n``: a view of those in RAM, a new
        array of those read from a file."""
        if self.file is None:
            return self.array[start : start + n]
        out = np.empty((n, self.d), np.float32)
        if n:  # (an empty array has no buffer to read into)
            read_into_at(self.file, start * 4 * self.d, memoryview(out).cast("B"), self.where, closed=CLOSED)
        return out

    def search(
        self, q: np.ndarray, k: int, params: faiss.SearchParameters | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The exact top-k among the slots ``params.sel`` allows, as ``IndexFlat.search``
        gives it (labels -1 where fewer are allowed): every row is scored, a block at a time
        (read from a file, or views of the array in RAM). A few slots are searched with
        :meth:`subset_search`."""
        q = np.ascontiguousarray(q, np.float32)
        sel = None if params is None else params.sel
        # Rows in RAM are scored in the same blocks as rows in a file: with fewer queries
        # than threads, FAISS's scan for fewer than 20 queries splits one query's rows among
        # its threads, so an array of another length (the last block) rounds differently;
        # only the same blocks give the same scores and ids, bit for bit.
        # Each block's top-k, merged: a FAISS heap keeps the earlier (lower) slot of a tie,
        # as one scan of the whole array does.
        best = faiss.ResultHeap(len(q), k, keep_max=self.metric_type != faiss.METRIC_L2)
        start, id_map = 0, faiss.Int64Vector()
        for block in self.blocks():
            block_sel = None
            if sel is not None:  # the selector asks about slots, FAISS about the block's rows
                faiss.copy_array_to_vector(np.arange(start, start + len(block)), id_map)
                block_sel = faiss.IDSelectorTranslated(id_map, sel)
            distances, rows = _knn(q, block, k, self.metric_type, block_sel)
            best.add_result(distances, np.where(rows >= 0, rows + start, -1))
            start += len(block)
        best.finalize()
        return best.D, best.I

    def subset_search(self, q: np.ndarray, k: int, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The exact top-k among ``slots`` (increasing), as :meth:`search` with a selector of
        them gives it; only their rows are scored, and only they are read from a file, a run
        of consecutive slots a call (unless they are more than ``SCAN_SHARE`` of the rows: then
        the file is scanned)."""
        q = np.ascontiguousarray(q, np.float32)
        if self.file is None:  # FAISS's by-index path: only these rows' scores are computed
            return _knn(q, self.array, k, self.metric_type, faiss.IDSelectorArray(slots))
        if len(slots) > SCAN_SHARE * self.ntotal:
            allowed = np.zeros(self.ntotal, bool)
            allowed[slots] = True
            return self.search(q, k, faiss.SearchParameters(sel=bitmap_selector(allowed)[0]))
        # The same by-index path on the rows read, numbered 0, 1, ... in slot order: the same
        # scores, and ties broken in the same order, as on the whole array.
        by_row = faiss.IDSelectorArray(np.arange(len(slots)))
        distances, rows = _knn(q, self.take(slots), k, self.metric_type, by_row)
        return distances, np.append(slots, -1)[rows]  # row -1 (none found) reads the -1 appended


def _knn(
    q: np.ndarray, xb: np.ndarray, k: int, metric_type: int, sel: faiss.IDSelector | None
) -> tuple[np.ndarray, np.ndarray]:
    """FAISS's exact top-k of each query among the rows of ``xb`` that ``sel`` allows."""
    distances = np.empty((len(q), k), np.float32)
    labels = np.empty((len(q), k), np.int64)
    n, d, ptr = len(xb), xb.shape[1], faiss.swig_ptr
    if not n:
        distances.fill(NO_RESULT if metric_type == faiss.METRIC_L2 else -NO_RESULT)
        labels.fill(-1)
    elif metric_type == faiss.METRIC_L2:
        faiss.knn_L2sqr(ptr(q), ptr(xb), d, len(q), n, k, ptr(distances), ptr(labels), None, sel)
    else:
        faiss.knn_inner_product(ptr(q), ptr(xb), d, len(q), n, k, ptr(distances), ptr(labels), sel)
    return distances, labels


def read_blocks(file: BinaryIO, n: int, d: int, where: str, closed: str) -> Iterator[np.ndarray]:
    """The first ``n`` raw float32 rows of ``file`` (``where``, for error messages; ``closed``:
    why it would be closed and what to do), in order, a piece at a time (``preadv``: none of
    it mapped, the file's position untouched)."""
    rows = max(1, BLOCK_BYTES // (4 * d))
    for start in range(0, n, rows):
        block = np.empty((min(rows, n - start), d), np.float32)
        read_into_at(file, start * 4 * d, memoryview(block).cast("B"), where, closed=closed)
        yield block


def temporary_file(directory: Path) -> BinaryIO:
    """A new unnamed temporary file in ``directory`` (``vectors_dir``), or StoreWriteError."""
    try:
        return tempfile.TemporaryFile(dir=directory)
    except OSError as e:
        raise _write_error(directory, e, "create a temporary file") from None


def _pwrite(file: BinaryIO, rows: np.ndarray, offset: int, directory: Path | None) -> int:
    """Write ``rows`` as raw float32 at byte ``offset``; return how many rows."""
    data = memoryview(np.ascontiguousarray(rows, DTYPE).reshape(-1).view(np.uint8))
    done = 0
    try:
        while done < len(data):
            done += os.pwrite(file.fileno(), data[done:], offset + done)
    except OSError as e:
        raise _write_error(directory, e, "write the float32 vectors to its temporary file") from None
    return len(rows)


def _write_error(directory: Path | None, e: OSError, doing: str) -> StoreWriteError:
    return StoreWriteError.of(
        e,
        f"could not {doing} in vectors_dir {str(directory)!r}: {cause_of(e)}; no store was changed "
        "(free space there, or give a vectors_dir this process can write to)",
        str(directory),
    )
