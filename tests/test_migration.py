"""parag.migrate between FAISS stores (no server): every record (id, vector, metadata,
document) arrives, with int and string ids, in any batch size, a rerun copies nothing twice,
bad arguments write nothing, and a destination that loses records fails the verification.
The Milvus directions run against the real server in tests/test_milvus.py."""

from __future__ import annotations

import numpy as np
import pytest

import parag
from parag.errors import InvalidArgumentError, InvalidTypeError, ParagError, VerificationError
from parag.vectorstore import FAISSVectorStore
from tests.conftest import clustered


def _source(ids: list, metric: str = "cosine") -> FAISSVectorStore:
    store = FAISSVectorStore(8, "Flat", metric)
    n = len(ids)
    documents = [f"doc {i} \"quoted\" \\ é" if i % 3 else None for i in range(n)]
    store.add(clustered(n, 8, seed=1), [{"n": i, "tags": ["a", str(i % 2)]} for i in range(n)], ids=ids,
              documents=documents)
    return store


def _same_records(a: FAISSVectorStore, b: FAISSVectorStore) -> None:
    assert b.get(a.ids()).records() == a.get(a.ids()).records()
    want, got = a.get(a.ids(), include_vectors=True), b.get(a.ids(), include_vectors=True)
    np.testing.assert_allclose(got.vectors, want.vectors, atol=1e-6)


@pytest.mark.parametrize("ids", [list(range(100, 350)), [f"chunk-{i}'\"" for i in range(250)]], ids=["int", "str"])
def test_every_record_arrives_and_a_rerun_copies_nothing_twice(ids):
    source = _source(ids)
    source.delete(ids[10:20])
    destination = FAISSVectorStore(8, "HNSW", "cosine", M=8)
    assert parag.migrate(source, destination, batch_size=37, progress=False) == 240
    assert parag.migrate(source, destination, batch_size=1000, progress=False) == 240  # upserts: idempotent
    assert destination.ids() == source.ids() and len(destination) == 240
    _same_records(source, destination)
    assert destination.search(source.get(ids[:1], include_vectors=True).vectors[0], k=1).ids == ids[:1]


def test_progress_bar(capsys):
    parag.migrate(_source(list(range(30))), FAISSVectorStore(8, "Flat", "cosine"), batch_size=10)
    assert "30/30" in capsys.readouterr().err


def test_bad_arguments_write_nothing():
    source, destination = _source(list(range(10))), FAISSVectorStore(8, "Flat", "cosine")
    for bad, error in [({"batch_size": 0}, InvalidArgumentError), ({"batch_size": True}, InvalidTypeError),
                       ({"batch_size": 2.5}, InvalidTypeError), ({"verify_searches": -1}, InvalidArgumentError),
                       ({"progress": "no"}, InvalidTypeError), ({"progress": None}, InvalidTypeError)]:
        with pytest.raises(error, match=next(iter(bad))):
            parag.migrate(source, destination, **bad)
    with pytest.raises(InvalidTypeError, match="destination"):
        parag.migrate(source, {})
    with pytest.raises(InvalidArgumentError, match="same store"):
        parag.migrate(source, source)
    other = FAISSVectorStore(9, "Flat", "cosine")
    with pytest.raises(InvalidArgumentError, match="dimension"):
        parag.migrate(source, other)
    assert len(other) == 0
    assert len(destination) == 0


def test_another_metric_is_a_rebuild_from_the_stored_vectors(tmp_path):
    """``parag migrate --metric``: a cosine store's unit vectors, searched by inner product."""
    from tests.cli_support import invoke_json

    source = _source(list(range(50)))
    source.save(tmp_path / "cosine")
    assert invoke_json("migrate", tmp_path / "cosine", tmp_path / "ip", "--metric", "IP")["metric"] == "IP"
    copy = FAISSVectorStore.load(tmp_path / "ip")
    _same_records(source, copy)
    q = clustered(5, 8, seed=9)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    np.testing.assert_allclose(copy.search(q, k=5).distances, source.search(q, k=5).distances, atol=1e-5)


class _LosesLastRecord(FAISSVectorStore):
    """A destination that silently drops the last record of every write (a broken backend)."""

    def upsert(self, ids, vectors, metadata=None, documents=None):
        return super().upsert(ids[:-1], np.asarray(vectors)[:-1], metadata[:-1], documents and documents[:-1])


class _ChangesMetadata(FAISSVectorStore):
    def upsert(self, ids, vectors, metadata=None, documents=None):
        return super().upsert(ids, vectors, [{**m, "n": 0} for m in metadata], documents)


@pytest.mark.parametrize("broken", [_LosesLastRecord, _ChangesMetadata])
def test_a_destination_that_loses_or_changes_records_fails_verification(broken):
    with pytest.raises(VerificationError) as caught:
        parag.migrate(_source(list(range(40))), broken(8, "Flat", "cosine"), batch_size=20, progress=False)
    assert isinstance(caught.value, ParagError)
