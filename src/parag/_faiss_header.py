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
``IxSQ``     IndexScalarQuantizer: header, a scalar quantiser, ``ntotal * code_size`` code bytes
``IxPq``     IndexPQ (HNSW storage only): header, a product quantiser, code bytes, three search fields
``IHNs``     IndexHNSWSQ: as IHNf, with IxSQ storage
``IHNp``     IndexHNSWPQ: as IHNf, with IxPq storage
``IwSq``     IndexIVFScalarQuantizer: as IwFl up to the direct map, a scalar quantiser,
             code_size, by_residual, the inverted lists
``IwPQ``     IndexIVFPQ: as IwFl up to the direct map, by_residual, code_size, a product
             quantiser, the inverted lists
``IxRF``     IndexRefineFlat (compressed storage, format version 3): header, the compressed index (one of the
             above), its IxF2/IxFI float32 copy, k_factor (float32)
===========  ==============================================================================

A scalar quantiser is ``qtype``, ``rangestat`` (int32), ``rangestat_arg`` (float32), ``d``,
``code_size`` (uint64) and a float vector of trained ranges; a product quantiser ``d``, ``M``,
``nbits`` (uint64) and a float vector of ``d * 2**nbits`` centroids.

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
_HNSW = {b"IHNf": _FLAT, b"IHNs": (b"IxSQ",), b"IHNp": (b"IxPq",)}  # fourcc -> its storage's
_SQ_CODE_BYTES = {0: 1, 4: 2}  # QT_8bit, QT_fp16 (the qtypes parag writes) -> code bytes per component
_CODED = (b"IxSQ", b"IHNs", b"IHNp", b"IwSq", b"IwPQ")  # what IxRF may wrap
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

    def index(self, top: bool = False, allowed: tuple[bytes, ...] | None = None) -> Header:
        """Walk one index; ``top``: the whole file's (graphs, lists, wrappers allowed);
        ``allowed``: the fourccs this position may hold (None: any flat or coded one)."""
        at = self.pos
        fourcc = self.read(4, "the index type")
        parts = {b"IxSQ": self.sq_index, b"IxPq": self.pq_index}
        if top:
            parts.update(dict.fromkeys(_HNSW, self.hnsw))
            parts.update({b"IwFl": self.ivf, b"IwSq": self.ivf, b"IwPQ": self.ivf, b"IxRF": self.refine})
        if fourcc in _FLAT and (allowed is None or fourcc in allowed):
            return self.flat(fourcc)
        if fourcc in parts and (allowed is None or fourcc in allowed):
            return parts[fourcc](fourcc)
        self.fail(f"{fourcc!r} at byte {at} is not an index kind parag writes here")
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
        storage = self.index(allowed=_HNSW[fourcc])
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
        if fourcc == b"IwFl":
            code_size = 4 * header.d
        elif fourcc == b"IwSq":
            code_size = self.scalar_quantizer(header.d)
            if self.scalar("Q", "the code size") != code_size:
                self.fail("its code size disagrees with its scalar quantiser")
            self.scalar("B", "by_residual")
        else:
            self.scalar("B", "by_residual")
            code_size = self.scalar("Q", "the code size")
            if code_size != self.product_quantizer(header.d):
                self.fail("its code size disagrees with its product quantiser")
        self.inverted_lists(header, nlist, code_size)
        return header

    def refine(self, fourcc: bytes) -> Header:
        header = self.header(fourcc)
        for part, allowed in (("compressed index", _CODED), ("float32 copy", _FLAT)):
            inner = self.index(top=True, allowed=allowed)
            if (inner.d, inner.ntotal, inner.metric) != (header.d, header.ntotal, header.metric):
                self.fail(f"its {part} disagrees with its header")
        self.read(4, "k_factor")
        return header

    def sq_index(self, fourcc: bytes) -> Header:
        header = self.header(fourcc)
        code_size = self.scalar_quantizer(header.d)
        if self.vector(1, "the codes") != header.ntotal * code_size:
            self.fail(f"it holds codes for other than ntotal = {header.ntotal} vectors")
        return header

    def pq_index(self, fourcc: bytes) -> Header:
        header = self.header(fourcc)
        code_size = self.product_quantizer(header.d)
        if self.vector(1, "the codes") != header.ntotal * code_size:
            self.fail(f"it holds codes for other than ntotal = {header.ntotal} vectors")
        self.read(9, "the PQ search fields")  # search_type, encode_signs, polysemous_ht
        return header

    def scalar_quantizer(self, d: int) -> int:
        """Walk a scalar quantiser of dimension ``d``; return its code size."""
        qtype = self.scalar("i", "the quantiser type")
        self.read(8, "the range statistic")
        if qtype not in _SQ_CODE_BYTES or self.scalar("Q", "the quantiser's d") != d:
            self.fail(f"its scalar quantiser (type {qtype}) is not one parag writes for dimension {d}")
        code_size = self.scalar("Q", "the quantiser's code size")
        if code_size != d * _SQ_CODE_BYTES[qtype]:
            self.fail(f"its scalar quantiser's code size {code_size} does not fit dimension {d}")
        self.vector(4, "the quantiser's ranges")
        return code_size

    def product_quantizer(self, d: int) -> int:
        """Walk a product quantiser of dimension ``d``; return its code size."""
        pq_d, m, nbits = (self.scalar("Q", what) for what in ("the PQ d", "the PQ M", "the PQ nbits"))
        if pq_d != d or not 0 < m <= d or d % m or nbits != 8:
            self.fail(f"its product quantiser (d={pq_d}, M={m}, nbits={nbits}) is not one parag writes")
        if self.vector(4, "the PQ centroids") != d << nbits:
            self.fail("its product quantiser has not 2**nbits centroids per sub-quantiser")
        return m

    def direct_map(self) -> None:
        kind = self.scalar("B", "the direct map type")
        if kind not in _DIRECT_MAPS:
            self.fail(f"its direct map type {kind} is unknown")
        self.vector(8, "the direct map")
        if _DIRECT_MAPS[kind]:
            self.vector(_DIRECT_MAPS[kind], "the direct map's hashtable")

    def inverted_lists(self, header: Header, nlist: int, code_size: int) -> None:
        if self.read(4, "the inverted lists type") != b"ilar":
            self.fail("its inverted lists are not stored in the file (expected 'ilar')")
        if self.scalar("Q", "the number of lists") != nlist:
            self.fail("its inverted lists disagree with nlist")
        if self.scalar("Q", "the code size") != code_size:
            self.fail(f"its inverted lists' code size is not {code_size}, the index's")
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
