"""Import a folder written by LangChain's ``FAISS.save_local`` without running its pickle.

AUDITED EXCEPTION: the one module of parag that touches :mod:`pickle` (the no-pickle scan,
``tests/test_persistence_nopickle.py``, names it). LangChain saves ``index.faiss`` (a FAISS
index) and ``index.pkl``: a pickle of ``(InMemoryDocstore, {position: document id})``.
Unpickling that file the usual way runs whatever code it names. Here a restricted
:class:`pickle.Unpickler` resolves no global but these, each to an inert stand-in that only
keeps the plain data pickle hands it:

- the docstore class ``InMemoryDocstore`` (``langchain_community.docstore.in_memory``, or
  ``langchain.docstore.in_memory`` before langchain-community existed);
- the ``Document`` class (``langchain_core.documents.base``, ``langchain_core.documents``,
  ``langchain.schema.document``, ``langchain.schema``, ``langchain.docstore.document``);
- ``set``, ``frozenset``, ``object`` and ``copyreg._reconstructor`` (older pickle protocols),
  which build only sets and stand-ins.

Any other global (``os.system``, ``builtins.eval``, a ``datetime`` in metadata...) is refused
with :class:`~parag.errors.NotAStoreError` before anything is called. Nor can the pickle make
parag allocate far beyond its size: its opcodes are scanned first, and a memo index beyond the
file's length (the unpickler would reserve 16 bytes per index) or more objects than
:data:`EXPANSION_LIMIT` times its size (plus 1 MiB) holds is refused; so are ids, texts and
metadata that decode to more than that, shared references counted once per use as the store
will hold them. The FAISS file is walked by parag's header checker (every size it claims must
fit the file) before FAISS parses it, and its internal references are checked after.
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
from pathlib import Path
from collections.abc import Callable
from typing import Any, BinaryIO

import faiss
import numpy as np

from parag._faiss_header import check_index_file
from parag._faiss_integrity import check_hnsw_structure, check_ivf_structure
from parag.errors import CorruptStoreError, InvalidArgumentError, NotAStoreError, ParagError, StoreNotFoundError
from parag.persistence import as_path, open_regular
from parag.vectorstore import FAISSVectorStore

__all__ = ["EXPANSION_LIMIT", "read_langchain_faiss"]

#: How many times its own size an ``index.pkl`` may decode to (ids, texts and metadata, plus
#: 1 MiB). A real docstore decodes to about its size (its texts dominate) and builds 2.4 to 12
#: times its size in Python objects (four shapes measured); pickle's shared references let a
#: crafted one double per level of nesting (438 bytes -> 16 MiB).
EXPANSION_LIMIT = 32
_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
#: The least memory (CPython, 64-bit) the object an opcode builds takes, for those that build
#: a container from a byte or two; any other opcode counts 8 bytes (a stack slot) plus 56 and
#: its length for a string or bytes argument.
_OBJECT_BYTES = {
    "EMPTY_SET": 216, "FROZENSET": 216, "EMPTY_DICT": 64, "DICT": 64, "EMPTY_LIST": 56, "LIST": 56,
    "TUPLE": 48, "TUPLE1": 48, "TUPLE2": 56, "TUPLE3": 64, "NEWOBJ": 48, "NEWOBJ_EX": 48, "REDUCE": 48,
}  # fmt: skip


class _Inert:
    """Stands in for a LangChain class: keeps the state pickle gives it, runs nothing."""

    __slots__ = ("state",)

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _Docstore(_Inert):
    __slots__ = ()


class _Document(_Inert):
    __slots__ = ()


def _reconstructor(cls: type, base: type, state: Any) -> _Inert:
    """``copyreg._reconstructor`` for protocols 0 and 1: only ever makes a stand-in."""
    if cls not in (_Docstore, _Document) or base is not object or state is not None:
        raise pickle.UnpicklingError("copyreg._reconstructor is admitted only for the docstore and its documents")
    return cls()


_DOCUMENT_MODULES = (
    "langchain_core.documents.base",
    "langchain_core.documents",
    "langchain.schema.document",
    "langchain.schema",
    "langchain.docstore.document",
)
_ADMITTED: dict[tuple[str, str], Any] = {
    ("langchain_community.docstore.in_memory", "InMemoryDocstore"): _Docstore,
    ("langchain.docstore.in_memory", "InMemoryDocstore"): _Docstore,
    **{(module, "Document"): _Document for module in _DOCUMENT_MODULES},
    # Pickles of protocols 0 to 2 name Python 2's modules (copy_reg, __builtin__) too.
    **{(module, name): value for module in ("builtins", "__builtin__")
       for name, value in (("set", set), ("frozenset", frozenset), ("object", object))},
    ("copyreg", "_reconstructor"): _reconstructor,
    ("copy_reg", "_reconstructor"): _reconstructor,
}


class _DocstoreUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ADMITTED[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("a persistent id")


class _Refused(Exception):
    """A global (or persistent id) the docstore of a LangChain FAISS folder never holds."""


def read_langchain_faiss(
    folder: str | os.PathLike[str], *, index_name: str = "index", **store_options: Any
) -> FAISSVectorStore:
    """A parag store holding what a LangChain FAISS folder holds, read without unpickling it.

    Parameters
    ----------
    folder : path
        The folder given to LangChain's ``FAISS.save_local`` (``index.faiss``, ``index.pkl``).
    index_name : str, default "index"
        The ``index_name`` given to ``save_local``.
    **store_options
        Of the new :class:`~parag.vectorstore.FAISSVectorStore`: ``index_type`` (default
        ``"Flat"``, LangChain's own), index parameters, and ``metric`` (default: the FAISS
        index's, ``"L2"`` or ``"IP"``: the same scores and order as LangChain gave).

    Returns
    -------
    FAISSVectorStore
        A string-id store: each document's LangChain id, its ``page_content`` as the
        document, its ``metadata`` as metadata, its vector from the index.

    Raises
    ------
    InvalidTypeError
        ``folder`` is not a str or os.PathLike.
    StoreNotFoundError
        ``folder`` is not a folder, or a file is missing.
    NotAStoreError
        ``index.pkl`` names a class or function other than the docstore's (a malicious file,
        or metadata holding objects): nothing of it was run.
    CorruptStoreError
        The files are damaged or disagree (sizes, ids, counts), would decode to far more than
        their size, or one is a link, a FIFO or a device rather than a regular file.
    StoreReadError
        The file system refuses to open a file (permissions).
    """
    base = as_path(folder, "folder")
    if not isinstance(index_name, str) or not index_name or any(c in index_name for c in "/\\\0"):
        raise InvalidArgumentError(f"index_name must be a file name stem, as given to save_local, got {index_name!r}")
    if not base.is_dir():
        raise StoreNotFoundError(f"{folder} is not a folder: pass the folder given to FAISS.save_local")
    index = _read_index(base / f"{index_name}.faiss")
    where = str(base / f"{index_name}.pkl")
    data = _read_file(base / f"{index_name}.pkl")
    docstore, positions = _read_docstore(data, where)
    ids, texts, metadata = _records(docstore, positions, index.ntotal, where)
    _check_expansion((ids, texts, metadata), len(data), where)
    metric = "IP" if index.metric_type == faiss.METRIC_INNER_PRODUCT else "L2"
    store = FAISSVectorStore(dimension=index.d, **{"metric": metric, **store_options})
    if ids:
        store.add(index.reconstruct_n(0, index.ntotal), metadata, ids=ids, documents=texts)
    return store


def _read_file(path: Path, check: Callable[[BinaryIO, int], object] | None = None) -> bytes:
    """A regular file's bytes, ``check``-ed on its open handle first; opened as a parag
    store's files are (no link followed: it could lead outside the folder; no FIFO waited on)."""
    try:
        f = open_regular(path.parent, path.name)
    except FileNotFoundError:
        raise StoreNotFoundError(f"{path} does not exist: is this a folder written by LangChain's FAISS.save_local?") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        if check is not None:
            check(f, size)
        data = f.readall()
    if len(data) != size:
        raise CorruptStoreError(f"{path} changed while it was read")
    return data


def _read_index(path: Path) -> faiss.Index:
    """The FAISS index, its sizes walked before FAISS parses a byte and its references checked after."""
    where = str(path)
    data = _read_file(path, lambda f, size: check_index_file(f, size, where))
    try:
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
    except (RuntimeError, MemoryError) as e:
        raise CorruptStoreError(f"FAISS cannot read {where}: {str(e).splitlines()[0][:300]}") from None
    if isinstance(index, faiss.IndexHNSW):
        check_hnsw_structure(index, where)
    elif isinstance(index, faiss.IndexIVF):
        try:
            index.make_direct_map()  # parag's check and reconstruct_n need it
        except RuntimeError as e:
            raise CorruptStoreError(f"{where} is not a consistent FAISS index: {str(e).splitlines()[0][:300]}") from None
        check_ivf_structure(index, where)
    return index


def _read_docstore(data: bytes, where: str) -> tuple[_Docstore, dict[Any, Any]]:
    try:
        _check_opcodes(data, where)
        loaded = _DocstoreUnpickler(io.BytesIO(data)).load()
    except _Refused as e:
        raise NotAStoreError(
            f"{where} names {e}, which parag refuses to load: a LangChain FAISS docstore holds only "
            "InMemoryDocstore, Document and plain data (str, int, float, list, dict). The file may be "
            "malicious, or its metadata holds objects; nothing in it was run"
        ) from None
    except ParagError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure of a damaged pickle is the same error
        raise CorruptStoreError(f"{where} is not a readable LangChain docstore pickle ({type(e).__name__}: {e})") from None
    if not (isinstance(loaded, tuple) and len(loaded) == 2 and isinstance(loaded[0], _Docstore) and isinstance(loaded[1], dict)):
        raise CorruptStoreError(f"{where} does not hold (InMemoryDocstore, index_to_docstore_id) as LangChain saves it")
    return loaded


def _limit(size: int) -> int:
    """The most bytes a pickle of ``size`` bytes may build or decode to."""
    return EXPANSION_LIMIT * size + 2**20


def _refusal(where: str, size: int, what: str) -> CorruptStoreError:
    return CorruptStoreError(
        f"{where} ({size} bytes) {what}, over {EXPANSION_LIMIT} times its size (plus 1 MiB); refused so that an "
        "untrusted file cannot fill memory. If you trust the file, load it with LangChain and add its documents "
        "to a parag store"
    )


def _check_opcodes(data: bytes, where: str) -> None:
    """Read the pickle's opcodes without running any, and refuse one that would make the
    unpickler allocate far beyond its size: a memo index beyond its length (the unpickler
    reserves 16 bytes per index up to the largest), or objects beyond :func:`_limit` (an empty
    set is one byte of pickle and 216 bytes of memory)."""
    built = 0
    for opcode, arg, _ in pickletools.genops(data):
        if opcode.name in _PUTS and arg >= len(data):
            raise CorruptStoreError(
                f"{where} stores an object at memo index {arg}, beyond its {len(data)} bytes: a crafted pickle, "
                "not one LangChain wrote (it would make the unpickler reserve memory for every index); refused"
            )
        built += _OBJECT_BYTES.get(opcode.name, 8) + (56 + len(arg) if isinstance(arg, (str, bytes)) else 0)
    if built > _limit(len(data)):
        raise _refusal(where, len(data), f"would build more than {_limit(len(data))} bytes of Python objects")


def _check_expansion(value: Any, size: int, where: str) -> None:
    """Refuse ``value`` (the ids, texts and metadata decoded from a pickle of ``size`` bytes)
    when it holds more than :func:`_limit` bytes counted as the store will hold them: strings
    by length, other values by 8 bytes, each shared reference each time. The walk stops as
    soon as the budget is spent, so it costs no more than the budget."""
    budget = _limit(size)
    stack = [value]
    while stack and budget >= 0:
        item = stack.pop()
        if isinstance(item, (str, bytes)):
            budget -= len(item) + 2
        elif isinstance(item, dict):
            budget -= 2 + 2 * len(item)
            if budget >= 0:
                stack.extend(item.keys())
                stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            budget -= 2 + len(item)
            if budget >= 0:
                stack.extend(item)
        else:
            budget -= 8
    if budget < 0:
        what = f"decodes to more than {_limit(size)} bytes of ids, texts and metadata (shared or circular references)"
        raise _refusal(where, size, what)


def _records(
    docstore: _Docstore, positions: dict[Any, Any], n: int, where: str
) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """Ids, texts and metadata in index order, checked against each other."""
    state = getattr(docstore, "state", None)
    documents = state.get("_dict") if isinstance(state, dict) else None
    if not isinstance(documents, dict):
        raise CorruptStoreError(f"{where}: its InMemoryDocstore holds no document dict")
    if set(positions) != set(range(n)):
        raise CorruptStoreError(f"{where}: its index_to_docstore_id does not map the {n} positions of the index")
    ids = [positions[i] for i in range(n)]
    if len(set(ids)) != n or not all(isinstance(i, str) and i in documents for i in ids):
        raise CorruptStoreError(f"{where}: its index_to_docstore_id names ids that are repeated or not in the docstore")
    texts, metadata = [], []
    for i in ids:
        fields = _fields(documents[i], f"{where}: document {i!r}")
        texts.append(fields["page_content"])
        metadata.append(fields["metadata"])
    return ids, texts, metadata


def _fields(document: Any, where: str) -> dict[str, Any]:
    """A stand-in Document's fields (pydantic v2 and v1 pickle them under ``__dict__``)."""
    state = getattr(document, "state", None) if isinstance(document, _Document) else None
    fields = state.get("__dict__", state) if isinstance(state, dict) else None
    if not (isinstance(fields, dict) and isinstance(fields.get("page_content"), str)):
        raise CorruptStoreError(f"{where} is not a Document with a page_content string")
    metadata = fields.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise CorruptStoreError(f"{where} has metadata that is not a dict")
    return {"page_content": fields["page_content"], "metadata": metadata}
