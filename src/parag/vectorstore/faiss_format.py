"""The files of a saved FAISSVectorStore: what the manifest says and how each file is checked.

:mod:`parag.persistence` writes and reads the generic container (data files committed by an
atomically replaced, checksummed manifest). This module fills it for a FAISS store: the
manifest body (configuration, counts, the kind of ids) and four data files, ``index``
(FAISS's own format), ``ids`` (the id of each slot: ``.npy`` int64 with -1 for a deleted
slot, or for string ids one JSON string per line with ``null`` for a deleted slot),
``metadata`` (one JSON line per slot, ``null`` for a deleted slot) and ``documents`` (one
JSON string or ``null`` per slot); a trained compressed store adds ``vectors``, the raw
little-endian float32 vector of every slot (``n_slots x dimension``, nothing else), which a
mapped load maps instead of reading. On load it reads them back into a :class:`FAISSState`,
cross-checking every count against every other. Stores of format versions 1 and 2 have int
ids and no documents file; a compressed store of version 3 holds its float32 vectors inside
the index (``IndexRefineFlat``) and is migrated in memory. The full layout is in
``docs/format.md``.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import faiss
import numpy as np

import parag.persistence as persistence
from parag._faiss_header import check_index_file
from parag._load_checks import check_metadata_lines, check_npy_header
from parag._ids import ID_KINDS, INT_IDS, MAX_STR_ID_LENGTH, STR_IDS, IdKind
from parag._jsonl import dump_strings, load_strings
from parag._slots import SlotMap
from parag._version import __version__
from parag.documents import DocumentStore
from parag.errors import CorruptStoreError, InvalidArgumentError, NotAStoreError
from parag.metadata import MetadataStore
from parag.vectorstore._faiss_state import FAISSState
from parag.vectorstore.kinds import FAISS_METRIC, IndexKind, configure
from parag.vectorstore.kinds.storage import check_vectors_dir
from parag.vectorstore.kinds.full_vectors import DTYPE, FullVectors, read_blocks
from parag.vectorstore.kinds.rerank import Reranked

#: The manifest's ``kind``: which class wrote the store.
STORE_KIND = "FAISSVectorStore"
#: The first format version with ``id_kind`` and a ``documents`` file.
RECORDS_FORMAT = 3
#: The first format version with compressed storage's vectors in a file of their own.
VECTORS_FORMAT = 4
#: How the vectors file stores them (the manifest's ``vectors`` field says it too).
VECTORS_DTYPE = DTYPE


def save(path: str | Path, state: FAISSState) -> None:
    """Write ``state`` to the store directory ``path`` (see :func:`parag.persistence.save`)."""
    kind, index, meta, docs = state.kind, state.index, state.meta, state.docs
    body = {
        "kind": STORE_KIND,
        "parag_version": __version__,
        "dimension": kind.dimension,
        "index_type": kind.name,
        "metric": kind.metric,
        "params": kind.params,
        **({"auto_params": sorted(kind.auto)} if kind.auto else {}),
        "count": state.slots.n_live,
        "n_slots": state.slots.n_slots,
        "next_id": state.next_id,
        "trained": state.is_trained,
        "id_kind": state.slots.kind.name,
    }
    writers = {}
    if isinstance(index, Reranked):
        body["vectors"] = {"dtype": VECTORS_DTYPE, "shape": [state.slots.n_slots, kind.dimension]}
        vectors = index.vectors
        writers["vectors"] = ("f32", lambda f: _write_vectors(f, vectors))
        index = index.base
    slot_ids = np.ascontiguousarray(state.slots.slot_ids)
    if state.slots.kind is INT_IDS:
        ids_file = ("npy", lambda f: np.save(f, slot_ids, allow_pickle=False))
    else:  # a deleted slot's "" is null
        ids_file = ("jsonl", lambda f: f.write(dump_strings(i or None for i in slot_ids.tolist())))
    persistence.save(
        path,
        body,
        {
            "index": ("faiss", lambda f: faiss.write_index(index, faiss.PyCallbackIOWriter(f.write))),
            "ids": ids_file,
            "metadata": ("jsonl", lambda f: f.write(meta.to_jsonl())),
            "documents": ("jsonl", lambda f: f.write(docs.to_jsonl())),
            **writers,
        },
    )


def _write_vectors(f: Any, vectors: FullVectors) -> None:
    """The raw little-endian float32 rows, a piece at a time (read from a file, not mapped)."""
    for block in vectors.blocks():
        f.write(memoryview(np.ascontiguousarray(block, VECTORS_DTYPE)).cast("B"))


def load(path: str | Path, *, verify: bool, mmap: bool, vectors_dir: Any = None) -> FAISSState:
    """The state saved at ``path``, or a parag error saying what is wrong and where.
    ``vectors_dir``: where a compressed store loaded without ``mmap`` keeps its float32
    vectors (see the store's constructor)."""
    if mmap and vectors_dir is not None:
        raise InvalidArgumentError(
            "vectors_dir applies to a load without mmap: a mapped store reads its float32 vectors from its own file"
        )
    with persistence.load(path, verify=verify) as files:
        return restore(files, mmap, vectors_dir)


def restore(files: persistence.StoreFiles, mmap: bool, vectors_dir: Any = None) -> FAISSState:
    """Build a state from the files of a checked manifest, or raise CorruptStoreError.

    The small files are read first, so counts that disagree are reported before the big
    index is parsed; every count is then checked against every other.
    """
    manifest = files.manifest
    records = manifest["format_version"] >= RECORDS_FORMAT
    roles = {"index", "ids", "metadata"} | ({"documents"} if records else set())
    missing = roles - set(manifest["files"])
    if missing:
        raise CorruptStoreError(f"the manifest of store {str(files.path)!r} lists no {sorted(missing)} file")
    kind = _configured(manifest)
    kind.vectors_dir = check_vectors_dir(vectors_dir, kind.storage_type)
    n_slots, count, next_id = _counts(manifest)
    id_kind = ID_KINDS.get(manifest.get("id_kind")) if records else INT_IDS  # type: ignore[arg-type]
    if id_kind is None:
        raise CorruptStoreError(f"the manifest's id_kind is {manifest.get('id_kind')!r}, not 'int' or 'str'")
    slots = _read_slots(files, id_kind, n_slots, count, next_id)
    meta = _read_metadata(files, slots)
    if records:
        docs = DocumentStore.from_jsonl(files.read("documents"), slots.live_mask(), files.describe("documents"))
    else:
        docs = DocumentStore([None] * n_slots)
    trained = bool(manifest.get("trained"))
    index = _with_vectors(kind, trained, _read_index(files, mmap), files, n_slots, mmap)
    _check_index(kind, trained, index, n_slots, files.describe("index"))
    kind.check_structure(index, files.describe("index"))
    # The manifest is the record of the configuration: its search parameters rule.
    kind.apply_defaults(index)
    return FAISSState(kind, index, slots, meta, next_id, read_only=mmap, docs=docs)


def _configured(manifest: dict[str, Any]) -> IndexKind:
    """The manifest's configuration, checked as the constructor checks it."""
    if manifest.get("kind") != STORE_KIND:
        raise NotAStoreError(f"the store holds a {manifest.get('kind')!r}, not a {STORE_KIND}")
    try:
        auto = manifest.get("auto_params", [])  # absent before sizes chose parameters: all fixed
        if not isinstance(auto, list) or not all(isinstance(name, str) for name in auto):
            raise TypeError(f"auto_params must be a list of parameter names, got {auto!r}")
        params = dict(manifest["params"])
        return configure(manifest["dimension"], manifest["index_type"], manifest["metric"], params, auto)
    except (KeyError, TypeError, ValueError, InvalidArgumentError) as e:
        raise CorruptStoreError(f"the manifest's configuration is invalid: {e}") from None


def _counts(manifest: dict[str, Any]) -> tuple[int, int, int]:
    """The manifest's ``n_slots``, ``count`` and ``next_id``, checked to be plausible."""
    values = [manifest.get(name) for name in ("n_slots", "count", "next_id")]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
        raise CorruptStoreError(f"the manifest's counts are invalid: n_slots, count, next_id = {values}")
    n_slots, count, next_id = values
    if count > n_slots:
        raise CorruptStoreError(f"the manifest is inconsistent: count {count} > n_slots {n_slots}")
    return n_slots, count, next_id


def _read_slots(files: persistence.StoreFiles, kind: IdKind, n_slots: int, count: int, next_id: int) -> SlotMap:
    """The ids file as a SlotMap, checked against the manifest's counts."""
    where = files.describe("ids")
    if kind is INT_IDS:
        slot_ids = _read_slot_ids(files, n_slots)
        slots = SlotMap(slot_ids)
        largest = int(slot_ids.max(initial=-1))
        if slots.n_live != count or slots.has_duplicates() or (slots.n_live and largest >= next_id):
            raise CorruptStoreError(
                f"{where} disagrees with the manifest: it holds {slots.n_live} distinct "
                f"live ids (largest {largest}); the manifest says {count}, all below {next_id}"
            )
        return slots
    names = load_strings(files.read("ids"), n_slots, where)
    bad = next((s for s, i in enumerate(names) if i is not None and not 0 < len(i) <= MAX_STR_ID_LENGTH), None)
    if bad is not None:
        raise CorruptStoreError(f"{where} holds an empty or over-long id on slot {bad}")
    slots = SlotMap(np.array([i or "" for i in names], STR_IDS.dtype), STR_IDS)
    if slots.n_live != count or slots.has_duplicates():
        raise CorruptStoreError(
            f"{where} disagrees with the manifest: it holds {len(set(names) - {None})} distinct "
            f"live ids; the manifest says {count}"
        )
    return slots


def _read_slot_ids(files: persistence.StoreFiles, n_slots: int) -> np.ndarray:
    """The ids file: a little-endian int64 ``.npy`` vector of ``n_slots`` entries.

    Parsed by hand (header, then exactly the bytes expected) rather than by ``np.load``,
    so a damaged header can neither allocate a huge array nor be read as another shape.
    """
    data, where = files.read("ids"), files.describe("ids")
    check_npy_header(data, where)
    header = io.BytesIO(data)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        shape, fortran_order, dtype = readers[np.lib.format.read_magic(header)](header)
    except (ValueError, KeyError, SyntaxError, EOFError) as e:
        raise CorruptStoreError(f"{where} is not a valid .npy file: {e!r}") from None
    if dtype != np.dtype("<i8") or fortran_order or shape != (n_slots,):
        raise CorruptStoreError(
            f"{where} holds a {dtype} array of shape {shape}, expected int64 ({n_slots},) as the manifest says"
        )
    if len(data) - header.tell() != 8 * n_slots:
        raise CorruptStoreError(f"{where} has {len(data) - header.tell()} bytes of ids, expected {8 * n_slots}")
    slot_ids = np.frombuffer(data, "<i8", n_slots, header.tell()).astype(np.int64)  # a writable copy
    if n_slots and slot_ids.min() < -1:
        raise CorruptStoreError(f"{where} holds negative ids other than -1 (the mark of a deleted slot)")
    return slot_ids


def _read_metadata(files: persistence.StoreFiles, slots: SlotMap) -> MetadataStore:
    """The metadata file: one JSON line per slot, ``null`` exactly on the deleted slots.
    (Checked a chunk of lines at a time: no bytes object per line of the whole file.)"""
    where, live = files.describe("metadata"), slots.live_mask()
    meta = MetadataStore.from_jsonl(files.read("metadata"), len(live), where)
    deleted = meta.null_rows()
    disagree = np.flatnonzero(deleted == live)
    if len(disagree):
        slot = int(disagree[0])
        raise CorruptStoreError(
            f"{where} disagrees with the ids file on {len(disagree)} slots: slot {slot} has "
            f"{'no' if deleted[slot] else 'some'} metadata but id {slots.slot_ids[slot].item()!r}"
        )
    check_metadata_lines(meta.lines, len(meta), where)
    return meta


def _read_index(files: persistence.StoreFiles, mmap: bool) -> faiss.Index:
    """The FAISS index; FAISS sees no byte that has not passed its check."""
    check_index_file(files.handle("index"), files.size("index"), files.describe("index"))
    try:
        if mmap:
            # IO_FLAG_MMAP_IFC maps Flat and HNSW storage and IVF lists alike. Adding
            # IO_FLAG_MMAP would make FAISS refuse IVF indexes ("mmap only supported for
            # File objects"), and it maps nothing IO_FLAG_MMAP_IFC does not.
            return faiss.read_index(files.checked_path("index"), faiss.IO_FLAG_MMAP_IFC)
        return faiss.read_index(files.checked_path("index"))
    except (RuntimeError, MemoryError) as e:
        message = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
        raise CorruptStoreError(f"FAISS cannot read the {files.describe('index')}: {message}") from None


def _with_vectors(
    kind: IndexKind, trained: bool, index: faiss.Index, files: persistence.StoreFiles, n_slots: int, mmap: bool
) -> faiss.Index:
    """The store's index: a trained compressed one beside its full vectors (format 4: the
    vectors file; format 3: the float32 copy inside its IndexRefineFlat, moved out)."""
    manifest, where = files.manifest, files.describe("index")
    expected = trained and kind.storage_type != "float32" and manifest["format_version"] >= VECTORS_FORMAT
    if ("vectors" in manifest["files"]) != expected:
        raise CorruptStoreError(
            f"the manifest of store {str(files.path)!r} {'lists no' if expected else 'lists a'} vectors file: "
            f"a {'trained ' if trained else ''}{kind.storage_type} store of format version "
            f"{manifest['format_version']} {'has' if expected else 'has none'}"
        )
    if isinstance(index, faiss.IndexRefine):
        if manifest["format_version"] >= VECTORS_FORMAT:
            raise CorruptStoreError(f"{where} holds an IndexRefineFlat, which format version {VECTORS_FORMAT} never writes")
        return _from_refine(kind, index, where)
    if not expected:
        return index
    return kind.wrap(index, _read_vectors(kind, files, n_slots, mmap))


def _from_refine(kind: IndexKind, refine: faiss.IndexRefine, where: str) -> Reranked:
    """A format-3 compressed index (``IndexRefineFlat``) as the compressed index and its
    float32 copy, both now in RAM (a mapped load too: save the store again to map them)."""
    flat = faiss.downcast_index(refine.refine_index)
    base = faiss.downcast_index(refine.base_index)
    if not isinstance(flat, faiss.IndexFlat) or flat.metric_type != base.metric_type or flat.d != base.d:
        raise CorruptStoreError(f"{where} is damaged: its float32 copy is not a flat index like its compressed one")
    vectors = flat.reconstruct_n(0, flat.ntotal)
    return kind.wrap(faiss.clone_index(base), vectors)  # the clone outlives the IndexRefineFlat


def _read_vectors(kind: IndexKind, files: persistence.StoreFiles, n_slots: int, mmap: bool) -> FullVectors:
    """The vectors file: exactly ``n_slots x dimension`` little-endian float32 and nothing
    else, read into RAM or (``mmap``) left in the file, read a row or a block at a time as
    they are needed. Nothing is allocated before its size is known to match the file's."""
    where, shape = files.describe("vectors"), [n_slots, kind.dimension]
    described = files.manifest.get("vectors")
    if described != {"dtype": VECTORS_DTYPE, "shape": shape}:
        raise CorruptStoreError(
            f"the manifest describes the vectors as {described!r}, expected {VECTORS_DTYPE!r} of shape {shape}"
        )
    if files.size("vectors") != 4 * n_slots * kind.dimension:
        raise CorruptStoreError(
            f"{where} has {files.size('vectors')} bytes, expected {4 * n_slots * kind.dimension} "
            f"({n_slots} slots x {kind.dimension} float32)"
        )
    if not mmap and kind.vectors_dir is not None:  # copied, checked, into a file of vectors_dir
        files.check_whole("vectors")
        rows = read_blocks(files.handle("vectors"), n_slots, kind.dimension, where, files.CLOSED)
        return FullVectors.spilled(rows, kind.dimension, kind.faiss_metric, kind.vectors_dir)
    if not mmap:
        data = np.empty((n_slots, kind.dimension), VECTORS_DTYPE)
        if data.size:  # an empty file has nothing to read (and no buffer to read into)
            files.read_into("vectors", memoryview(data))
        return FullVectors(data, kind.faiss_metric)
    # The whole file passes its checksums before a search reads a row of it. Searches read
    # the rows they need with preadv from their own descriptor of the checked file, never
    # through a map: the pages they read stay the kernel's page cache (kept for the next
    # reads of the same rows, not the process's resident memory).
    files.check_whole("vectors")
    file = open(os.dup(files.handle("vectors").fileno()), "rb", buffering=0)  # noqa: SIM115
    return FullVectors.in_file(file, n_slots, kind.dimension, kind.faiss_metric, where=where)


def _check_index(kind: IndexKind, trained: bool, index: faiss.Index, n_slots: int, where: str) -> None:
    """Raise CorruptStoreError unless ``index`` is what the manifest describes."""
    expected = kind.expected_type(trained)
    if not isinstance(index, expected):
        raise CorruptStoreError(
            f"{where} disagrees with the manifest: it holds a {type(index).__name__}, expected {expected.__name__}"
        )
    problems = [
        (index.d != kind.dimension, f"its dimension is {index.d}, the manifest says {kind.dimension}"),
        (index.metric_type != FAISS_METRIC[kind.metric], f"its metric differs from the manifest's {kind.metric!r}"),
        (index.ntotal != n_slots, f"it holds {index.ntotal} vectors, the manifest says {n_slots}"),
    ]
    for message in [m for bad, m in problems if bad] + kind.load_problems(index):
        raise CorruptStoreError(f"{where} disagrees with the manifest: {message}")
