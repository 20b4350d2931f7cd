"""Walk a FAISS index file and check every size it claims before FAISS parses it.

FAISS allocates what a file's size fields claim before it reads the bytes they describe,
so a 1 KB file that claims a 3 GB vector makes ``read_index`` allocate 3 GB. This module
reads only the headers and size fields of the index kinds parag writes (layouts from
FAISS's ``impl/index_read.cpp``), skips over the payloads, and refuses the file unless
every claimed size fits the bytes actually present and the walk ends exactly at the end of
the file. After it, everything FAISS allocates is bounded by the file's size.

===========  ==============================================================================
``IxF2``     IndexFlatL2: header, then ``ntotal * d`` float32 (a FAISS "xb vector")
``IxFI``     IndexFlatIP: the same
``IHNf``     IndexHNSWFlat: header, the HNSW graph (five vectors, five int32), its IxF2/IxFI storage
``IwFl``     IndexIVFFlat: header, nlist, nprobe, an IxF2/IxFI quantizer of nlist centroids,
             a direct map, then ``ilar`` array inverted lists (sizes, then codes and ids per list)
===========  ==============================================================================

A FAISS vector is a ``uint64`` element count followed by the elements. The header of every
index is ``d`` (int32), ``ntotal`` (int64), two unused int64, ``is_trained`` (1 byte) and
``metric_type`` (int32; a float32 ``metric_arg`` follows for metrics above 1).
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO, NamedTuple

import numpy as np

from parag.errors import CorruptStoreError

MAX_DIMENSION = 1 << 20  # FAISS's own limit on d when it reads a header
_FLAT = (b"IxF2", b"IxFI")
_METRICS = (0, 1)  # METRIC_INNER_PRODUCT, METRIC_L2: the metrics parag uses
_DIRECT_MAPS = {0: 0, 1: 0, 2: 16}  # type -> bytes per hashtable entry (NoMap, Array, Hashtable)
_MAX_SIZES_READ = 1 << 16  # list sizes are read in chunks of this many


class Header(NamedTuple):
    fourcc: bytes
    d: int
    ntotal: int
    metric: int


def check_index_file(f: BinaryIO, size: int, where: str) -> Header:
    """Walk the index file open as ``f`` (``size`` bytes); return its top-level header.

    Raises CorruptStoreError naming ``where`` if it is not an index kind parag writes, or
    any size it claims does not fit the bytes present.
    """
    walk = _Walk(f, size, where)
    header = walk.index(top=True)
    if walk.pos != size:
        walk.fail(f"the index ends at byte {walk.pos} but the file has {size} bytes")
    return header


class _Walk:
    def __init__(self, f: BinaryIO, size: int, where: str) -> None:
        self.fd, self.size, self.where, self.pos = f.fileno(), size, where, 0

    def fail(self, problem: str) -> None:
        raise CorruptStoreError(f"{self.where} is not a valid FAISS index: {problem}")

    # ------------------------------------------------------------- primitives

    def read(self, n: int, what: str) -> bytes:
        if n > self.size - self.pos:
            self.fail(f"{what} claims {n} bytes at byte {self.pos}, but only {self.size - self.pos} remain")
        data = os.pread(self.fd, n, self.pos)
        if len(data) != n:
            self.fail(f"the file ended while reading {what} (was it truncated meanwhile?)")
        self.pos += n
        return data

    def scalar(self, fmt: str, what: str) -> int:
        (value,) = struct.unpack("<" + fmt, self.read(struct.calcsize(fmt), what))
        return int(value)

    def vector(self, item_size: int, what: str, skip: bool = True) -> int:
        """Read a vector's element count, check its payload is present, skip the payload."""
        count = self.scalar("Q", f"the length of {what}")
        if count * item_size > self.size - self.pos:
            self.fail(
                f"{what} claims {count} items of {item_size} bytes at byte {self.pos}, "
                f"but only {self.size - self.pos} bytes remain"
            )
        if skip:
            self.pos += count * item_size
        return count

    def uint64s(self, count: int, what: str) -> np.ndarray:
        return np.frombuffer(self.read(8 * count, what), "<u8")

    # ------------------------------------------------------------- structures

    def header(self, fourcc: bytes) -> Header:
        d = self.scalar("i", "d")
        ntotal = self.scalar("q", "ntotal")
        self.read(16, "the header")  # two unused int64
        trained = self.scalar("B", "is_trained")
        metric = self.scalar("i", "metric_type")
        if not 0 < d <= MAX_DIMENSION or ntotal < 0 or trained > 1 or metric not in _METRICS:
            self.fail(f"its {fourcc.decode()} header is invalid (d={d}, ntotal={ntotal}, metric={metric})")
        return Header(fourcc, d, ntotal, metric)

    def index(self, top: bool = False) -> Header:
        fourcc = self.read(4, "the index type")
        if fourcc in _FLAT:
            return self.flat(fourcc)
        if top and fourcc == b"IHNf":
            return self.hnsw(fourcc)
        if top and fourcc == b"IwFl":
            return self.ivf(fourcc)
        self.fail(f"{fourcc!r} at byte {self.pos - 4} is not an index kind parag writes")
        raise AssertionError("unreachable")

    def flat(self, fourcc: bytes) -> Header:
        header = self.header(fourcc)
        floats = self.vector(4, "the vectors")
        if floats != header.ntotal * header.d:
            self.fail(f"it holds {floats} floats, not ntotal x d = {header.ntotal} x {header.d}")
        return header

    def hnsw(self, fourcc: bytes) -> Header:
        header = self.header(fourcc)
        self.vector(8, "assign_probas")
        self.vector(4, "cum_nneighbor_per_level")
        if self.vector(4, "levels") != header.ntotal:
            self.fail("its HNSW graph has not one level per vector")
        if self.vector(8, "offsets") != header.ntotal + 1:
            self.fail("its HNSW graph has not one offset per vector")
        self.vector(4, "neighbors")
        self.read(20, "the HNSW parameters")  # entry_point, max_level, efConstruction, efSearch, unused
        storage = self.index()
        if (storage.d, storage.ntotal, storage.metric) != (header.d, header.ntotal, header.metric):
            self.fail("its HNSW storage disagrees with the HNSW header")
        return header

    def ivf(self, fourcc: bytes) -> Header:
        header = self.header(fourcc)
        nlist = self.scalar("Q", "nlist")
        self.scalar("Q", "nprobe")
        quantizer = self.index()
        if (quantizer.d, quantizer.ntotal) != (header.d, nlist):
            self.fail(f"its quantizer holds {quantizer.ntotal} centroids of dimension {quantizer.d}, expected {nlist} of {header.d}")
        self.direct_map()
        self.inverted_lists(header, nlist)
        return header

    def direct_map(self) -> None:
        kind = self.scalar("B", "the direct map type")
        if kind not in _DIRECT_MAPS:
            self.fail(f"its direct map type {kind} is unknown")
        self.vector(8, "the direct map")
        if _DIRECT_MAPS[kind]:
            self.vector(_DIRECT_MAPS[kind], "the direct map's hashtable")

    def inverted_lists(self, header: Header, nlist: int) -> None:
        if self.read(4, "the inverted lists type") != b"ilar":
            self.fail("its inverted lists are not stored in the file (expected 'ilar')")
        if self.scalar("Q", "the number of lists") != nlist:
            self.fail("its inverted lists disagree with nlist")
        code_size = self.scalar("Q", "the code size")
        if code_size != 4 * header.d:
            self.fail(f"its code size is {code_size}, expected {4 * header.d} for IVFFlat")
        sizes = self.list_sizes(nlist)
        total = int(sizes.sum(dtype=object)) if len(sizes) else 0
        if total != header.ntotal:
            self.fail(f"its inverted lists hold {total} vectors, ntotal is {header.ntotal}")
        if total * (code_size + 8) > self.size - self.pos:
            self.fail(f"its inverted lists claim {total} vectors but their bytes are not all present")
        self.pos += total * (code_size + 8)

    def list_sizes(self, nlist: int) -> np.ndarray:
        kind = self.read(4, "the list sizes type")
        if kind == b"full":
            if self.vector(8, "the list sizes", skip=False) != nlist:
                self.fail("it has not one list size per list")
            return self.uint64s(nlist, "the list sizes")
        if kind == b"sprs":
            count = self.vector(8, "the sparse list sizes", skip=False)
            if count % 2:
                self.fail("its sparse list sizes are not (list, size) pairs")
            pairs = self.uint64s(count, "the sparse list sizes").reshape(-1, 2)
            if len(pairs) and int(pairs[:, 0].max()) >= nlist:
                self.fail("its sparse list sizes name a list beyond nlist")
            sizes = np.zeros(nlist, np.uint64)
            sizes[pairs[:, 0].astype(np.int64)] = pairs[:, 1]
            return sizes
        self.fail(f"its list sizes type {kind!r} is unknown")
        raise AssertionError("unreachable")
