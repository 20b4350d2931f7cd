"""Documents: their checks, their column, and their JSON-lines file."""

from __future__ import annotations

import numpy as np
import pytest

from parag.documents import DocumentStore, check_documents
from parag.errors import CorruptStoreError, InvalidArgumentError, InvalidTypeError


def test_check_documents_accepts_strings_and_none():
    assert check_documents(None, 2) == [None, None]
    assert check_documents("one", 1) == ["one"]
    assert check_documents(("a", None, ""), 3) == ["a", None, ""]
    assert check_documents(np.array(["a", "b"]), 2) == ["a", "b"]  # numpy arrays, as from pandas
    assert check_documents(np.array(["a", None], object), 2) == ["a", None]


@pytest.mark.parametrize(
    "documents, n, error, words",
    [
        (["a", 3], 2, InvalidTypeError, ["documents[1]", "str or None", "int"]),
        (["a"], 2, InvalidArgumentError, ["documents has 1 items", "2 vectors"]),
        ("one", 2, InvalidTypeError, ["list of 2 strings", "one str"]),
        ({"a": 1}, 1, InvalidTypeError, ["list of strings", "dict"]),
        (b"x", 1, InvalidTypeError, ["bytes"]),
        (["ok", "\udcff"], 2, InvalidArgumentError, ["documents[1]", "surrogate"]),
        (np.array(["a", 3], object), 2, InvalidTypeError, ["documents[1]", "str or None", "int"]),
        (np.array(["a"]), 2, InvalidArgumentError, ["documents has 1 items", "2 vectors"]),
        (np.array([b"a"]), 1, InvalidTypeError, ["documents[0]", "bytes"]),
    ],
)
def test_bad_documents_are_named(documents, n, error, words):
    with pytest.raises(error) as e:
        check_documents(documents, n)
    for word in words:
        assert word in str(e.value)


def test_document_store_round_trip_and_substring_mask():
    docs = DocumentStore()
    docs.append(["FAISS is fast", None, "line\nbreak \"quoted\" ünï", "fast"])
    assert docs.contains("fast").tolist() == [True, False, False, True]
    assert docs.get_rows(np.array([[2, 1]])) == [['line\nbreak "quoted" ünï', None]]
    docs.kill([3])
    live = np.array([True, True, True, False])
    back = DocumentStore.from_jsonl(docs.to_jsonl(), live, "documents file")
    assert back.get_many([0, 1, 2, 3]) == docs.get_many([0, 1, 2, 3])
    kept = back.kept(live)
    assert len(kept) == 3 and kept.get_many([2]) == ['line\nbreak "quoted" ünï'] and len(back) == 4
    assert DocumentStore.from_jsonl(b"", np.zeros(0, bool), "f").get_many([]) == []


@pytest.mark.parametrize(
    "data, live, words",
    [
        (b'"a"', [True, True], ["1 lines", "expected 2"]),
        (b'"a"\n3', [True, True], ["JSON string or null"]),
        (b'"a"\n"b', [True, True], ["not one JSON string"]),
        (b'"a"\n"b"', [True, False], ["deleted slot 1"]),
    ],
)
def test_damaged_documents_file_is_corrupt(data, live, words):
    with pytest.raises(CorruptStoreError) as e:
        DocumentStore.from_jsonl(data, np.array(live), "the documents file")
    for word in words:
        assert word in str(e.value)
