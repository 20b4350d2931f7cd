"""User code that calls back into the store never deadlocks it; copies are independent;
pickling is refused; odd arguments get parag errors (issue 10)."""

from __future__ import annotations

import copy
import pickle
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from parag import FAISSVectorStore
from parag.errors import (
    InvalidArgumentError,
    InvalidTypeError,
    ParagError,
    ReentrantWriteError,
    UncopyableStoreError,
)

KINDS = {"Flat": {}, "HNSW": {"M": 8}, "IVFFlat": {"nlist": 4, "nprobe": 4}}


def make_store(kind: str = "Flat", n: int = 300) -> FAISSVectorStore:
    store = FAISSVectorStore(4, kind, **KINDS[kind])
    store.add(np.random.default_rng(0).standard_normal((n, 4)), [{"i": i} for i in range(n)])
    return store


def finishes(fn: Callable[[], Any], seconds: float = 20) -> Any:
    """Run ``fn`` in a thread; fail (rather than hang the suite) if it does not return in time."""
    outcome: list[Any] = []
    thread = threading.Thread(target=lambda: outcome.append(_capture(fn)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "deadlock: the call never returned"
    return outcome[0]


def _capture(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except BaseException as e:  # noqa: BLE001 - handed to the test
        return e


# --------------------------------------------------------------------------- callbacks


WRITES: dict[str, Callable[[FAISSVectorStore, Any], Any]] = {
    "add": lambda s, path: s.add(np.ones(4)),
    "delete": lambda s, path: s.delete([1]),
    "upsert": lambda s, path: s.upsert([1], np.ones((1, 4))),
    "update_metadata": lambda s, path: s.update_metadata([1], {"x": 1}),
    "compact": lambda s, path: s.compact(),
    "load into": lambda s, path: s.load(path),
}


FILTERED_CALLS: dict[str, Callable[[FAISSVectorStore, Callable[[dict[str, Any]], bool]], Any]] = {
    "search": lambda s, f: s.search(np.zeros(4), k=3, filter=f),
    "get": lambda s, f: s.get(filter=f),
    "delete": lambda s, f: s.delete(filter=f),
}


@pytest.mark.parametrize("call", list(FILTERED_CALLS))
@pytest.mark.parametrize("write", list(WRITES))
def test_a_filter_that_writes_gets_a_reentrant_write_error(tmp_path: Any, write: str, call: str) -> None:
    store = make_store()
    store.save(tmp_path / "s")

    def writing_filter(meta: dict[str, Any]) -> bool:
        WRITES[write](store, tmp_path / "s")
        return True

    error = finishes(lambda: FILTERED_CALLS[call](store, writing_filter))
    # README: a RuntimeError (ReentrantWriteError), not wrapped in the filter's InvalidFilterError.
    assert isinstance(error, ReentrantWriteError) and isinstance(error, RuntimeError), repr(error)
    assert "inside one of its own calls" in str(error), error
    with pytest.raises(ReentrantWriteError):
        with store._lock.read():  # what the filter ran under
            WRITES[write](store, tmp_path / "s")
    assert len(store) == 300 and store.get([1]).metadata == [{"i": 1}]  # unchanged
    store.add(np.ones(4))  # and the lock is free again
    assert len(store) == 301


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_filter_that_reads_works(kind: str) -> None:
    store = make_store(kind)
    seen: list[int] = []

    def reading_filter(meta: dict[str, Any]) -> bool:
        if not seen:
            seen.append(len(store.search(np.ones(4), k=2).ids) + len(store.get([3]).ids) + len(store.ids()))
        return meta["i"] % 2 == 0

    result = finishes(lambda: store.search(np.zeros(4), k=5, filter=reading_filter))
    assert all(i % 2 == 0 for i in result.ids) and seen == [2 + 1 + 300]


def test_a_filter_that_reads_while_another_thread_waits_to_write() -> None:
    """The filter's inner search must not queue behind the waiting writer (which waits for
    the outer search): that was a deadlock."""
    store = make_store()
    writer_waiting = threading.Event()
    inner: list[int] = []

    def filter_(meta: dict[str, Any]) -> bool:
        if not inner:
            threading.Thread(target=lambda: (writer_waiting.set(), store.add(np.ones(4))), daemon=True).start()
            writer_waiting.wait()
            time.sleep(0.2)  # the writer is now queued behind this search
            inner.append(len(store.search(np.ones(4), k=3).ids))
        return True

    result = finishes(lambda: store.search(np.zeros(4), k=3, filter=filter_))
    assert len(result.ids) == 3 and inner == [3]
    finishes(lambda: [time.sleep(0.05) for _ in range(20) if len(store) != 301])
    assert len(store) == 301  # the writer ran once the search ended


def test_many_threads_reading_and_writing_with_reentrant_filters() -> None:
    store = make_store(n=500)
    errors: list[BaseException] = []

    def reader() -> None:
        for _ in range(20):
            store.search(np.zeros(4), k=3, filter=lambda m: len(store.get([0]).ids) == 1)

    def writer() -> None:
        for j in range(20):
            store.add(np.ones(4), {"i": 1000 + j})

    threads = [threading.Thread(target=lambda f=f: _record(f, errors), daemon=True) for f in (reader, reader, writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "deadlock"
    assert not errors and len(store) == 520


def _record(fn: Callable[[], None], errors: list[BaseException]) -> None:
    try:
        fn()
    except BaseException as e:  # noqa: BLE001
        errors.append(e)


# --------------------------------------------------------------------------- copies and pickling


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("how", [copy.copy, copy.deepcopy])
def test_copies_are_independent(kind: str, how: Callable[[Any], Any]) -> None:
    store = make_store(kind)
    before = store.search(np.zeros(4), k=5)
    clone = how(store)
    assert clone.search(np.zeros(4), k=5) == before and clone.params == store.params
    clone.add(np.zeros(4), {"new": True})
    clone.delete([0, 1])
    clone.update_metadata([2], {"changed": True})
    assert len(store) == 300 and store.search(np.zeros(4), k=5) == before
    assert store.get([2]).metadata == [{"i": 2}] and clone.get([2]).metadata == [{"changed": True}]
    store.add(np.ones(4))
    assert len(clone) == 299


def test_copy_of_a_read_only_store_stays_read_only(tmp_path: Any) -> None:
    make_store("IVFFlat").save(tmp_path / "s")
    mapped = FAISSVectorStore.load(tmp_path / "s", mmap=True)
    clone = copy.deepcopy(mapped)
    assert clone.read_only and clone.search(np.zeros(4), k=3) == mapped.search(np.zeros(4), k=3)


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_pickling_a_store_is_refused(protocol: int) -> None:
    with pytest.raises(UncopyableStoreError, match="save") as info:
        pickle.dumps(make_store(), protocol=protocol)
    assert isinstance(info.value, (ParagError, TypeError))


# --------------------------------------------------------------------------- arguments


@pytest.mark.parametrize("dimension", [2**63, 2**40, (1 << 20) + 1, -(2**63), 0])
def test_dimension_out_of_range(dimension: int) -> None:
    with pytest.raises(InvalidArgumentError, match="dimension"):
        FAISSVectorStore(dimension)


@pytest.mark.parametrize("seed, error", [(-1, InvalidArgumentError), (2**63, InvalidArgumentError), ("1", InvalidTypeError), (True, InvalidTypeError)])
def test_tune_seed(seed: Any, error: type) -> None:
    store = make_store("HNSW")
    with pytest.raises(error, match="seed"):
        store.tune(seed=seed)


@pytest.mark.parametrize("value", [1, 0, None, "False", np.bool_(False)])
def test_bool_flags(value: Any) -> None:
    store = make_store()
    with pytest.raises(InvalidTypeError, match="missing_ok"):
        store.delete([1], missing_ok=value)
    with pytest.raises(InvalidTypeError, match="include_vectors"):
        store.get([1], include_vectors=value)
    assert len(store) == 300
