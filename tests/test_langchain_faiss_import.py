"""Folders written by LangChain's FAISS import into parag without running their pickle: the
same search results as LangChain's own store; a malicious index.pkl runs nothing."""

from __future__ import annotations

import contextlib
import os
import pickle
import struct
import sys
import threading
import tracemalloc
import types
import warnings

import numpy as np
import pytest

pytest.importorskip("langchain_community")

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # langchain-community announces its sunset
    from langchain_community.vectorstores import FAISS
    from langchain_community.vectorstores.utils import DistanceStrategy

from parag.errors import (  # noqa: E402
    CorruptStoreError,
    InvalidArgumentError,
    InvalidTypeError,
    NotAStoreError,
    ParagError,
    StoreNotFoundError,
)
from parag.integrations.langchain import ParagVectorStore  # noqa: E402
from parag.integrations.langchain_faiss_import import read_langchain_faiss  # noqa: E402
from tests.rag_support import Lookup, corpus, langchain_embeddings, queries  # noqa: E402

TEXTS, META, VECTORS = corpus(300)
QUERY_TEXTS, QUERY_VECTORS = queries()
EMBEDDINGS = langchain_embeddings(Lookup(TEXTS + QUERY_TEXTS, np.vstack([VECTORS, QUERY_VECTORS])))


@pytest.mark.parametrize("strategy", [DistanceStrategy.EUCLIDEAN_DISTANCE, DistanceStrategy.MAX_INNER_PRODUCT])
def test_a_langchain_folder_imports_with_identical_results(tmp_path, strategy):
    theirs = FAISS.from_texts(TEXTS, EMBEDDINGS, META, distance_strategy=strategy)
    theirs.delete([theirs.index_to_docstore_id[7]])  # a folder after a delete: positions renumbered
    theirs.save_local(str(tmp_path))
    ours = ParagVectorStore.from_langchain_faiss(tmp_path, EMBEDDINGS)
    assert len(ours.store) == len(TEXTS) - 1
    for text in QUERY_TEXTS:
        expected = theirs.similarity_search_with_score(text, k=10)
        found = ours.similarity_search_with_score(text, k=10)
        assert [(d.id, d.page_content, d.metadata) for d, _ in found] == [
            (d.id, d.page_content, d.metadata) for d, _ in expected
        ]
        assert [s for _, s in found] == pytest.approx([float(s) for _, s in expected], abs=1e-5)


@pytest.mark.parametrize("kind", ["HNSW", "IVFFlat"])
def test_hnsw_and_ivf_folders_import_with_their_vectors(tmp_path, kind):
    import faiss
    from langchain_community.docstore.in_memory import InMemoryDocstore

    d = VECTORS.shape[1]
    index = faiss.IndexHNSWFlat(d, 16) if kind == "HNSW" else faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, 4)
    index.train(VECTORS)
    theirs = FAISS(EMBEDDINGS, index, InMemoryDocstore(), {})
    theirs.add_texts(TEXTS, META)
    theirs.save_local(str(tmp_path))
    store = read_langchain_faiss(tmp_path)
    got = store.get(include_vectors=True)
    assert got.ids == [theirs.index_to_docstore_id[i] for i in range(len(TEXTS))]
    assert (got.documents, got.metadata) == (TEXTS, META)
    assert np.allclose(got.vectors, VECTORS, atol=1e-6)


def test_options_choose_the_new_index(tmp_path):
    FAISS.from_texts(TEXTS, EMBEDDINGS, META).save_local(str(tmp_path), index_name="docs")
    store = read_langchain_faiss(tmp_path, index_name="docs", index_type="HNSW", metric="cosine")
    assert (store.index_type, store.metric, len(store)) == ("HNSW", "cosine", len(TEXTS))
    assert store.get(["missing"] * 0).ids == []


class Boom:
    """What an attacker pickles: unpickling it would run a command."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def langchain_folder(tmp_path, pkl: bytes):
    FAISS.from_texts(TEXTS[:5], EMBEDDINGS, META[:5]).save_local(str(tmp_path))
    (tmp_path / "index.pkl").write_bytes(pkl)
    return tmp_path


def test_a_malicious_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    folder = langchain_folder(tmp_path / "store", pickle.dumps(Boom(str(marker))))
    pickle.loads(pickle.dumps(Boom(str(tmp_path / "proof"))))  # the payload is real: plain pickle runs it
    assert (tmp_path / "proof").exists()
    with pytest.raises(NotAStoreError, match=r"(posix|os)\.system.*nothing in it was run"):
        ParagVectorStore.from_langchain_faiss(folder, EMBEDDINGS)
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload, error, match",
    [
        ((Boom("/nonexistent/x"), {}), NotAStoreError, "system"),
        (({"_dict": {}}, {}), CorruptStoreError, "InMemoryDocstore"),
        ("just a string", CorruptStoreError, "InMemoryDocstore"),
        (eval, NotAStoreError, "builtins.eval"),
    ],
)
def test_other_payloads_are_refused(tmp_path, payload, error, match):
    folder = langchain_folder(tmp_path, pickle.dumps(payload))
    with pytest.raises(error, match=match):
        read_langchain_faiss(folder)


def test_metadata_holding_objects_is_refused_by_name(tmp_path):
    import datetime

    FAISS.from_texts(TEXTS[:3], EMBEDDINGS, [{"when": datetime.date(2024, 1, 1)}] * 3).save_local(str(tmp_path))
    with pytest.raises(NotAStoreError, match="datetime.date"):
        read_langchain_faiss(tmp_path)


def test_damaged_or_missing_files(tmp_path):
    FAISS.from_texts(TEXTS[:5], EMBEDDINGS, META[:5]).save_local(str(tmp_path))
    good = (tmp_path / "index.pkl").read_bytes()
    (tmp_path / "index.pkl").write_bytes(good[: len(good) // 2])
    with pytest.raises(CorruptStoreError, match="not a readable"):
        read_langchain_faiss(tmp_path)
    (tmp_path / "index.pkl").write_bytes(good)
    index = (tmp_path / "index.faiss").read_bytes()
    (tmp_path / "index.faiss").write_bytes(index[:-8])
    with pytest.raises(CorruptStoreError):
        read_langchain_faiss(tmp_path)
    (tmp_path / "index.faiss").unlink()
    with pytest.raises(StoreNotFoundError, match="index.faiss"):
        read_langchain_faiss(tmp_path)
    (tmp_path / "elsewhere.faiss").write_bytes(index)
    (tmp_path / "index.faiss").symlink_to(tmp_path / "elsewhere.faiss")
    with pytest.raises(CorruptStoreError, match="symbolic link"):
        read_langchain_faiss(tmp_path)
    with pytest.raises(InvalidArgumentError, match="index_name"):
        read_langchain_faiss(tmp_path / "sub", index_name="../index")
    for entry in (read_langchain_faiss, lambda folder: ParagVectorStore.from_langchain_faiss(folder, EMBEDDINGS)):
        for folder in (tmp_path / "absent", tmp_path / "index.faiss"):  # missing, or a file
            with pytest.raises(StoreNotFoundError, match="is not a folder: pass the folder given to FAISS.save_local"):
                entry(folder)


@pytest.mark.parametrize(
    "pkl, match",
    [
        (b"\x80\x04N" + b"r" + struct.pack("<I", 2**24) + b".", "memo index 16777216, beyond its 9 bytes"),
        (b"\x80\x04" + b"\x8f" * 200_000 + b".", r"would build more than \d+ bytes of Python objects"),
    ],
)
def test_a_small_pickle_cannot_make_the_unpickler_allocate_much(tmp_path, pkl, match):
    """9 bytes that would make pickle reserve 16 bytes per memo index (256 MiB for 2**24);
    one byte per empty set, 216 bytes of memory each (43 MiB here)."""
    folder = langchain_folder(tmp_path, pkl)
    tracemalloc.start()
    try:
        with pytest.raises(CorruptStoreError, match=match):
            read_langchain_faiss(folder)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20


def test_shared_references_that_expand_far_beyond_the_file_are_refused(tmp_path):
    """Each level of nesting doubles what a few bytes of pickle decode to: 2**22 leaves here."""
    leaf: list = ["x"]
    for _ in range(22):
        leaf = [leaf, leaf]
    FAISS.from_texts(TEXTS[:1], EMBEDDINGS, [{"b": leaf}]).save_local(str(tmp_path))
    assert (tmp_path / "index.pkl").stat().st_size < 2000
    with pytest.raises(CorruptStoreError, match="decodes to more than .* bytes of ids, texts and metadata"):
        read_langchain_faiss(tmp_path)


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    folder = langchain_folder(tmp_path, b"")
    (folder / "index.faiss").unlink()
    os.mkfifo(folder / "index.faiss")
    raised: list[BaseException] = []

    def read() -> None:
        try:
            read_langchain_faiss(folder)
        except BaseException as e:  # noqa: BLE001 - checked below
            raised.append(e)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=60)
    if reader.is_alive():  # blocked in open(): a writer releases it, then the test fails
        with contextlib.suppress(OSError):
            os.close(os.open(folder / "index.faiss", os.O_WRONLY | os.O_NONBLOCK))
        reader.join(timeout=60)
        pytest.fail("read_langchain_faiss waited for a writer to open the FIFO index.faiss")
    assert len(raised) == 1 and isinstance(raised[0], CorruptStoreError) and "a FIFO" in str(raised[0])


def old_layout_pickle(monkeypatch, protocol: int, pydantic_v1: bool) -> bytes:
    """index.pkl as langchain (before langchain-community and pydantic 2) wrote it: classes
    under ``langchain.docstore``, Document state ``{"__dict__": ..., "__fields_set__": ...}``."""
    docstore_module = types.ModuleType("langchain.docstore.in_memory")
    document_module = types.ModuleType("langchain.schema")

    class InMemoryDocstore:
        def __init__(self, documents):
            self._dict = documents

    class Document:
        def __init__(self, text, metadata):
            fields = {"page_content": text, "metadata": metadata}
            self.__dict__.update(fields)

        def __getstate__(self):
            fields = {"page_content": self.page_content, "metadata": self.metadata}
            return {"__dict__": fields, "__fields_set__": {"page_content", "metadata"}} if pydantic_v1 else fields

    for cls, module in ((InMemoryDocstore, docstore_module), (Document, document_module)):
        cls.__module__, cls.__qualname__ = module.__name__, cls.__name__
        setattr(module, cls.__name__, cls)
        monkeypatch.setitem(sys.modules, module.__name__, module)
    for parent in ("langchain", "langchain.docstore"):  # pickle imports a module's parents first
        if parent not in sys.modules:
            monkeypatch.setitem(sys.modules, parent, types.ModuleType(parent))
    ids = [f"id-{i}" for i in range(5)]
    docstore = InMemoryDocstore({i: Document(t, m) for i, t, m in zip(ids, TEXTS, META)})
    return pickle.dumps((docstore, dict(enumerate(ids))), protocol=protocol)


@pytest.mark.parametrize("protocol", [0, 2, 5])
@pytest.mark.parametrize("pydantic_v1", [True, False])
def test_older_docstore_layouts_import(tmp_path, monkeypatch, protocol, pydantic_v1):
    folder = langchain_folder(tmp_path, old_layout_pickle(monkeypatch, protocol, pydantic_v1))
    got = read_langchain_faiss(folder).get()
    assert (got.ids, got.documents, got.metadata) == ([f"id-{i}" for i in range(5)], TEXTS[:5], META[:5])


@pytest.mark.parametrize(
    "call",
    [
        lambda: read_langchain_faiss(5),
        lambda: read_langchain_faiss(None, index_name="index"),
        lambda: ParagVectorStore.from_langchain_faiss(None, EMBEDDINGS),
        lambda: ParagVectorStore.from_langchain_faiss(b"/tmp", EMBEDDINGS),
    ],
)
def test_a_folder_that_is_not_a_path_is_named(call):
    with pytest.raises(InvalidTypeError, match="folder must be a str or os.PathLike naming a directory"):
        call()


def test_every_error_is_a_parag_error():
    assert all(issubclass(e, ParagError) for e in (NotAStoreError, CorruptStoreError, StoreNotFoundError))
