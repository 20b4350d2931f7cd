"""Check what FAISS does not when it reads an index: that its internal references hold.

FAISS trusts the ids in an IVF index's lists, its direct map and an HNSW graph's neighbour
lists; a crafted file with an id out of range makes searches read outside arrays or fail
late with a foreign exception. These checks run on the parsed index, over views of FAISS's
own arrays (no copies of the vectors), before a store is built around it. Each index kind
calls the check for its index (``IndexKind.check_structure``).
"""

from __future__ import annotations

import faiss
import numpy as np

from parag.errors import CorruptStoreError


def _fail(where: str, problem: str) -> CorruptStoreError:
    return CorruptStoreError(f"{where} is not a consistent FAISS index: {problem}")


def check_ivf_structure(index: faiss.IndexIVF, where: str) -> None:
    """Raise CorruptStoreError naming ``where`` unless every slot is in exactly one list, and
    the direct map says where."""
    n, lists = index.ntotal, index.invlists
    if index.direct_map.type != faiss.DirectMap.Array:
        raise _fail(where, "its direct map is not an array (parag always keeps one)")
    direct = faiss.vector_to_array(index.direct_map.array)
    if len(direct) != n:
        raise _fail(where, f"its direct map has {len(direct)} entries for {n} vectors")
    expected = np.full(n, -1, np.int64)
    for list_no in range(index.nlist):
        size = lists.list_size(list_no)
        if not size:
            continue
        ids = faiss.rev_swig_ptr(lists.get_ids(list_no), size)
        if int(ids.min()) < 0 or int(ids.max()) >= n:
            raise _fail(where, f"list {list_no} holds ids outside 0..{n - 1}")
        if (expected[ids] != -1).any():
            raise _fail(where, f"list {list_no} holds an id that is already in a list")
        expected[ids] = (list_no << 32) | np.arange(size, dtype=np.int64)
    if (expected == -1).any():
        raise _fail(where, "some vectors are in no inverted list")
    if not np.array_equal(direct, expected):
        raise _fail(where, "its direct map disagrees with its inverted lists")


def check_hnsw_structure(index: faiss.IndexHNSW, where: str) -> None:
    """Raise CorruptStoreError naming ``where`` unless levels, offsets and neighbour ids are in
    range and the entry point is on the top level."""
    hnsw, n = index.hnsw, index.ntotal
    levels = faiss.vector_to_array(hnsw.levels)
    offsets = faiss.vector_to_array(hnsw.offsets).astype(np.int64)
    cum = faiss.vector_to_array(hnsw.cum_nneighbor_per_level).astype(np.int64)
    size = hnsw.neighbors.size()
    neighbors = faiss.rev_swig_ptr(hnsw.neighbors.data(), size) if size else np.empty(0, np.int32)
    if len(levels) != n or len(offsets) != n + 1:
        raise _fail(where, "its graph has not one level and one offset per vector")
    if not n:
        return
    top = int(levels.max())
    if int(levels.min()) < 1 or len(cum) <= top or cum[0] != 0 or (np.diff(cum) < 0).any():
        raise _fail(where, "its graph levels are invalid")
    if offsets[0] != 0 or offsets[-1] != size or not np.array_equal(np.diff(offsets), cum[levels]):
        raise _fail(where, "its neighbour lists do not match the levels of their vectors")
    if size and (int(neighbors.min()) < -1 or int(neighbors.max()) >= n):
        raise _fail(where, f"its graph links to vectors outside 0..{n - 1}")
    entry = hnsw.entry_point
    if not 0 <= entry < n or hnsw.max_level != top - 1 or levels[entry] != top:
        raise _fail(where, "its entry point is not a vector on the top level")
