"""Stores crafted by an attacker who recomputes every checksum: each is refused at load with a
CorruptStoreError naming the file, before FAISS allocates what the file claims or a search
meets the damage (docs/security.md)."""

from __future__ import annotations

import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest

from parag import FAISSVectorStore
from parag._faiss_integrity import check_hnsw_structure
from parag.errors import CorruptStoreError
from tests.crafting import data_file, reseal

D = 8
KINDS = {"Flat": {}, "HNSW": {"M": 8}, "IVFFlat": {"nlist": 4, "nprobe": 2}}


def saved(tmp_path: Path, kind: str, n: int = 300) -> Path:
    store = FAISSVectorStore(D, kind, **KINDS[kind])
    store.add(np.random.default_rng(0).standard_normal((n, D)), [{"i": i} for i in range(n)])
    store.delete([5])
    store.save(tmp_path / kind)
    return tmp_path / kind


def refused(path: Path, *words: str) -> CorruptStoreError:
    with pytest.raises(CorruptStoreError) as info:
        FAISSVectorStore.load(path)
    assert all(w in str(info.value) for w in words), info.value
    return info.value


def rewrite_index(path: Path, change: Callable[[faiss.Index], None]) -> None:
    """Parse the index with FAISS, change it in memory, write it back and re-seal the store."""
    file = data_file(path, "index")
    index = faiss.read_index(str(file))
    change(index)
    reseal(path, files={"index": faiss.serialize_index(index).tobytes()})


# --------------------------------------------------------------------------- sizes FAISS would allocate


HUGE_CLAIM = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))  # FAISS allocating 3 GiB would fail here
from parag import FAISSVectorStore
from parag._faiss_integrity import check_hnsw_structure
from parag.errors import CorruptStoreError
try:
    FAISSVectorStore.load(sys.argv[1])
except CorruptStoreError as e:
    print("refused:", e)
"""


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_size_field_claiming_gigabytes_is_refused_before_allocation(tmp_path: Path, kind: str) -> None:
    path = saved(tmp_path, kind)
    data = bytearray(data_file(path, "index").read_bytes())
    # The first vector-size field: the flat vectors (Flat), assign_probas (HNSW) and nlist (IVF)
    # each sit right after the 37-byte fourcc + header.
    data[37:45] = struct.pack("<Q", 3 << 28)  # 3 GiB worth of elements
    reseal(path, files={"index": bytes(data)})
    done = subprocess.run([sys.executable, "-c", HUGE_CLAIM, str(path)], capture_output=True, text=True, timeout=60)
    assert done.stdout.startswith("refused:"), done.stdout + done.stderr
    assert "not a valid FAISS index" in done.stdout


def test_trailing_bytes_and_foreign_index_kinds(tmp_path: Path) -> None:
    path = saved(tmp_path, "Flat")
    data = data_file(path, "index").read_bytes()
    reseal(path, files={"index": data + b"\0" * 8})
    refused(path, "ends at byte")
    reseal(path, files={"index": faiss.serialize_index(faiss.IndexLSH(D, 16)).tobytes()})
    refused(path, "not an index kind parag writes")


# --------------------------------------------------------------------------- references FAISS trusts


def ivf_ids(index: faiss.Index, list_no: int) -> np.ndarray:
    ivf = faiss.extract_index_ivf(index)
    return faiss.rev_swig_ptr(ivf.invlists.get_ids(list_no), ivf.invlists.list_size(list_no))


def biggest_list(index: faiss.Index) -> int:
    ivf = faiss.extract_index_ivf(index)
    return int(np.argmax([ivf.invlists.list_size(i) for i in range(ivf.nlist)]))


IVF_DAMAGE: dict[str, tuple[Callable[[faiss.Index], None], str]] = {
    "id beyond ntotal": (lambda ix: ivf_ids(ix, biggest_list(ix)).__setitem__(0, 10**6), "outside"),
    "negative id": (lambda ix: ivf_ids(ix, biggest_list(ix)).__setitem__(0, -7), "outside"),
    "id twice": (lambda ix: ivf_ids(ix, biggest_list(ix)).__setitem__(1, ivf_ids(ix, biggest_list(ix))[0]), "inverted list"),
    "direct map entry": (
        lambda ix: faiss.rev_swig_ptr(faiss.extract_index_ivf(ix).direct_map.array.data(), 3).__setitem__(2, 123),
        "direct map",
    ),
    "no direct map": (lambda ix: faiss.extract_index_ivf(ix).set_direct_map_type(faiss.DirectMap.NoMap), "direct map"),
}


@pytest.mark.parametrize("damage", list(IVF_DAMAGE))
def test_ivf_lists_and_direct_map(tmp_path: Path, damage: str) -> None:
    path = saved(tmp_path, "IVFFlat", n=400)  # 39 x nlist: trained
    change, words = IVF_DAMAGE[damage]
    rewrite_index(path, change)
    refused(path, words)


def hnsw_neighbors(index: faiss.Index) -> np.ndarray:
    hnsw = faiss.downcast_index(index).hnsw
    return faiss.rev_swig_ptr(hnsw.neighbors.data(), hnsw.neighbors.size())


HNSW_DAMAGE: dict[str, tuple[Callable[[faiss.Index], None], str]] = {
    "neighbour beyond ntotal": (lambda ix: hnsw_neighbors(ix).__setitem__(0, 10**6), "outside"),
    "neighbour below -1": (lambda ix: hnsw_neighbors(ix).__setitem__(0, -5), "outside"),
    "entry point": (lambda ix: setattr(faiss.downcast_index(ix).hnsw, "entry_point", 10**6), "entry point"),
    "max level": (lambda ix: setattr(faiss.downcast_index(ix).hnsw, "max_level", 40), "entry point"),
}


@pytest.mark.parametrize("damage", list(HNSW_DAMAGE))
def test_hnsw_graph(tmp_path: Path, damage: str) -> None:
    """Refused at load: by FAISS's own graph check where it has one (1.15), else by parag's."""
    path = saved(tmp_path, "HNSW")
    change, words = HNSW_DAMAGE[damage]
    rewrite_index(path, change)
    refused(path, "index file")
    fresh = faiss.IndexHNSWFlat(D, 8)
    fresh.add(np.random.default_rng(0).standard_normal((300, D)).astype(np.float32))
    change(fresh)  # damaged in memory, where no FAISS reader checks it
    with pytest.raises(CorruptStoreError, match=words):
        check_hnsw_structure(fresh, "index file")


UNTRAINED = {"IVFFlat": {"index_type": "IVFFlat", "nlist": 4}, "sq8": {"storage": "sq8"},
             "HNSW-sq8": {"index_type": "HNSW", "M": 8, "storage": "sq8"}}


@pytest.mark.parametrize("kind", list(UNTRAINED))
def test_an_untrained_stores_buffer_marked_as_not_trained(tmp_path: Path, kind: str) -> None:
    """Until trained, a store keeps its vectors in a Flat buffer, which FAISS always marks as
    trained: one byte saying otherwise is refused at load (else every later add fails in FAISS)."""
    store = FAISSVectorStore(D, **UNTRAINED[kind])
    store.add(np.random.default_rng(0).standard_normal((10, D)))
    assert not store.is_trained
    store.save(tmp_path / kind)
    rewrite_index(tmp_path / kind, lambda index: setattr(index, "is_trained", False))
    refused(tmp_path / kind, "marked as not trained")


# --------------------------------------------------------------------------- the small files


@pytest.mark.parametrize(
    "line, words",
    [
        (b'{"i":0},{"i":"X"}', "line 1 is not one JSON value"),
        (b'{"i":0} {"i":1}', "line 1"),
        (b"[1, 2]", "holds a list"),
        (b"7", "holds a int"),
        (b'"text"', "holds a str"),
        (b"{", "line 1"),
        (b"[" * 5000 + b"]" * 5000, "line 1"),
        (b" null", "null spelled"),
    ],
)
@pytest.mark.parametrize("verify", [True, False])
def test_one_json_object_per_metadata_line(tmp_path: Path, line: bytes, words: str, verify: bool) -> None:
    path = saved(tmp_path, "Flat")
    lines = data_file(path, "metadata").read_bytes().split(b"\n")
    lines[0] = line
    reseal(path, files={"metadata": b"\n".join(lines)})
    with pytest.raises(CorruptStoreError, match="metadata file") as info:
        FAISSVectorStore.load(path, verify=verify)
    assert words in str(info.value)


def test_a_bad_metadata_line_past_the_first_chunk_is_refused_by_its_number(tmp_path: Path) -> None:
    """Lines are checked 10,000 at a time: a bad one in a later chunk is found and numbered."""
    path = saved(tmp_path, "Flat", n=25_000)
    lines = data_file(path, "metadata").read_bytes().split(b"\n")
    lines[20_001] = b"[1]"
    reseal(path, files={"metadata": b"\n".join(lines)})
    refused(path, "metadata file", "line 20002 holds a list")


def test_a_value_split_across_two_metadata_lines_is_refused(tmp_path: Path) -> None:
    """Two lines that decode as two objects only when joined (``{"a":[{}`` + ``{}]},{}``)."""
    path = saved(tmp_path, "Flat")
    lines = data_file(path, "metadata").read_bytes().split(b"\n")
    lines[0], lines[1] = b'{"a":[{}', b'{}]},{}'
    reseal(path, files={"metadata": b"\n".join(lines)})
    with pytest.raises(CorruptStoreError, match="metadata file.*line 1 is not one JSON value"):
        FAISSVectorStore.load(path)


@pytest.mark.parametrize(
    "header",
    [
        "{'descr': '<i8', 'fortran_order': False, 'shape': (" + "-" * 5000 + "1,), }",  # RecursionError in numpy
        "{'descr': '<i8', 'fortran_order': False, 'shape': (299,), 'x': " + "(" * 500 + ")" * 500 + "}",
        "{'descr': '<i8', 'fortran_order': False, 'shape': (2**62,), }",
    ],
)
def test_npy_header_that_numpy_would_choke_on(tmp_path: Path, header: str) -> None:
    path = saved(tmp_path, "Flat")
    body = data_file(path, "ids").read_bytes()[128:]
    text = header.encode() + b" " * (-(len(header) + 11) % 64) + b"\n"
    npy = b"\x93NUMPY\x02\x00" + struct.pack("<I", len(text)) + text + body
    reseal(path, files={"ids": npy})
    refused(path, "ids file", "not a valid .npy file")


def test_a_store_with_every_check_passes_still_loads_exactly(tmp_path: Path) -> None:
    for kind in KINDS:
        path = saved(tmp_path, kind, n=400)
        loaded = FAISSVectorStore.load(path)
        assert len(loaded) == 399 and loaded.get([7]).metadata == [{"i": 7}]
