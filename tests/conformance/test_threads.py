"""Real threads: 4 searching threads while writers add (and delete, update, upsert,
compact, save) for a few seconds. No exception, no crash, and every result is one the
store could have given in some state it passed through.

Each run takes seconds: these run over one kind per index type (IVF16 trains while the
searches run) and one metric per kind, rotating, rather than every kind x metric."""

from __future__ import annotations

import random
import threading
import time
import traceback
from typing import Any

import numpy as np
import pytest

from tests.conftest import clustered, oracle

D = 16
INITIAL = 300
BATCH = 10
# Each run: thousands of searches (a server's: ~100) across hundreds of writes, IVF16 training
# midway, several saves; 3 s gave twice what the checks below need. A run lasts SECONDS and
# then until it has done what its checks count (on a loaded machine a slow fsync may hold
# the saves back), at most CAP seconds: the counts then fail the test, not a clock.
SECONDS = 1.5
CAP = 30.0
X = clustered(8_000, D, centres=30, seed=31)
QUERIES = clustered(50, D, centres=30, seed=32)
KINDS = ("Flat", "IVF16", "HNSW")  # IVF16 trains at 624 vectors, during the run
METRICS = ("L2", "IP", "cosine")


def rotating_metric(kind, shift: int) -> str:
    """One metric per kind (a run takes seconds), each metric on some kind; a server kind
    runs its own (kinds.py: each Milvus metric is a collection to make)."""
    if kind.metrics:
        return kind.metrics[0]
    return METRICS[((KINDS.index(kind.name) if kind.name in KINDS else 0) + shift) % len(METRICS)]


def readers_min(kind) -> int:
    """Searches the readers must have made in SECONDS: a server answers each in a round trip."""
    return 20 if kind.server else 100


def meta_of(i: int) -> dict:
    return {"id": i, "tag": f"t{i}"}


def true_scores(q: np.ndarray, ids: list[int], metric: str) -> np.ndarray:
    v = X[ids].astype(np.float64)
    q = q.astype(np.float64)
    if metric == "cosine":
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
        q = q / np.linalg.norm(q)
    if metric == "L2":
        return ((v - q) ** 2).sum(1)
    return v @ q


class Recorder:
    """Runs worker loops in threads for a while, collecting exceptions."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def spawn(self, loop) -> None:
        def body():
            try:
                while not self.stop.is_set():
                    if loop() is False:
                        return
            except BaseException:  # noqa: BLE001 - reported below
                self.errors.append(traceback.format_exc())
                self.stop.set()

        self.threads.append(threading.Thread(target=body, daemon=True))

    def run(self, enough) -> None:
        """Run the loops for SECONDS, then until ``enough()`` (at most CAP seconds in all)."""
        for t in self.threads:
            t.start()
        self.stop.wait(SECONDS)
        deadline = time.monotonic() + CAP - SECONDS
        while not self.stop.is_set() and not enough() and time.monotonic() < deadline:
            self.stop.wait(0.05)
        self.stop.set()
        for t in self.threads:
            t.join(60)
            assert not t.is_alive(), "a thread is stuck (deadlock?)"
        assert not self.errors, "\n".join(self.errors)


def reader(store: Any, records: list, seed: int, ks: tuple[int, ...]):
    rng = random.Random(seed)

    def loop():
        qi = rng.sample(range(len(QUERIES)), rng.choice([1, 3]))
        single = len(qi) == 1 and rng.random() < 0.7
        k = rng.choice(ks)
        q = QUERIES[qi[0]] if single else QUERIES[qi]
        c0, t0 = len(store), time.perf_counter_ns()
        result = store.search(q, k=k)
        t1, c1 = time.perf_counter_ns(), len(store)
        records.append((qi, single, k, c0, c1, t0, t1, result))

    return loop


def check_record(record, metric: str) -> list[tuple[list[int], list[int], list[float]]]:
    """Shape, metadata, sorting and scores of one search; returns its rows."""
    qi, single, k, c0, c1, t0, t1, (dist, ids, meta) = record
    rows = [(ids, meta, dist)] if single else list(zip(ids, meta, dist))
    assert len(rows) == len(qi)
    for q, (row_ids, row_meta, row_dist) in zip(qi, rows):
        assert len(row_ids) == len(row_meta) == len(row_dist)
        assert len(set(row_ids)) == len(row_ids)
        assert all(type(i) is int and i >= 0 for i in row_ids)
        assert [{"id": m["id"], "tag": m["tag"]} for m in row_meta] == [meta_of(i) for i in row_ids]
        d = np.asarray(row_dist)
        assert np.all(np.abs(d) < 1e30)
        steps = np.diff(d) if metric == "L2" else -np.diff(d)
        assert np.all(steps >= -1e-4), f"distances not sorted: {row_dist}"
        np.testing.assert_allclose(d, true_scores(QUERIES[q], row_ids, metric), rtol=1e-4, atol=1e-4)
    return rows


@pytest.mark.kinds(*KINDS)
def test_searches_during_adds(make_store):
    metric = rotating_metric(make_store, 0)
    store = make_store(D, metric)
    store.add(X[:INITIAL], [meta_of(i) for i in range(INITIAL)])
    records: list = []
    added = [INITIAL]
    rec = Recorder()

    def add_loop():
        start = added[0]
        if start + BATCH > len(X):
            return False
        ids = store.add(X[start : start + BATCH], [meta_of(i) for i in range(start, start + BATCH)])
        assert ids == list(range(start, start + BATCH))
        added[0] = start + BATCH
        time.sleep(0.0005)  # let readers in between writes

    # k up to beyond the initial count: result lengths follow the store's size.
    ks = (1, 10, 50, INITIAL - 5, INITIAL + 15, INITIAL + 200)
    for r in range(4):
        rec.spawn(reader(store, records, seed=r, ks=ks))
    rec.spawn(add_loop)
    rec.run(lambda: added[0] >= INITIAL + 5 * BATCH and len(records) >= readers_min(make_store))

    n = added[0]
    assert len(store) == n and store.ids() == list(range(n))
    assert n >= INITIAL + 5 * BATCH, f"the writer hardly ran in {CAP} s: {n}"
    assert len(records) >= readers_min(make_store), f"the readers hardly ran in {CAP} s: {len(records)}"
    make_store.expect_trained(store, n)  # IVF16 crossed 39 * nlist during the run

    exact_checks = 0
    for record in records:
        qi, single, k, c0, c1 = record[:5]
        assert INITIAL <= c0 <= c1 <= n
        rows = check_record(record, metric)
        states = range(c0, c1 + 1, BATCH)  # the store's sizes while this search ran
        for row_ids, _, row_dist in rows:
            assert any(len(row_ids) == min(k, c) for c in states), (len(row_ids), k, c0, c1)
            assert max(row_ids) < c1
        if make_store.exact and exact_checks < 80 and len(states) <= 3:
            exact_checks += 1
            for q, (row_ids, _, row_dist) in zip(qi, rows):
                def exact_in(c):
                    if len(row_ids) != min(k, c):
                        return False
                    want, _ = oracle(X[:c], QUERIES[q], k, metric)
                    return np.allclose(row_dist, want[0], rtol=1e-4, atol=1e-4)
                assert any(exact_in(c) for c in states), f"query {q} k={k}: not exact in any state {list(states)}"

    # Afterwards the store answers exactly (or nearly, searched wide).
    _, ids, _ = store.search(QUERIES, k=10, **make_store.wide)
    _, truth = oracle(X[:n], QUERIES, 10, metric)
    hits = np.mean([len(set(a) & set(b.tolist())) / 10 for a, b in zip(ids, truth)])
    assert hits >= (1.0 if make_store.exact else 0.98)


@pytest.mark.kinds(*KINDS)
def test_searches_during_adds_deletes_updates_and_saves(make_store, tmp_path):
    metric = rotating_metric(make_store, 2)
    store = make_store(D, metric)
    store.add(X[:INITIAL], [meta_of(i) for i in range(INITIAL)])  # never deleted: count >= INITIAL
    lock = threading.Lock()
    added_at: dict[int, int] = dict.fromkeys(range(INITIAL), 0)  # id -> ns before its add began
    deleted_at: dict[int, int] = {}  # id -> ns after its delete returned
    live_extra: list[int] = []
    next_row = [INITIAL]
    records: list = []
    saves = [0]
    rec = Recorder()
    rng = random.Random(7)

    def add_loop():
        start = next_row[0]
        if start + BATCH > len(X):
            return False
        with lock:
            added_at.update(dict.fromkeys(range(start, start + BATCH), time.perf_counter_ns()))
        assert store.add(X[start : start + BATCH], [meta_of(i) for i in range(start, start + BATCH)]) == list(
            range(start, start + BATCH))
        next_row[0] = start + BATCH
        with lock:
            live_extra.extend(range(start, start + BATCH))
        time.sleep(0.001)

    def delete_loop():
        with lock:
            if len(live_extra) < 4:
                doomed = []
            else:
                doomed = rng.sample(live_extra, min(len(live_extra) - 2, rng.randint(1, 12)))
                for i in doomed:
                    live_extra.remove(i)
        if doomed:
            assert store.delete(doomed) == len(doomed)
            t = time.perf_counter_ns()
            with lock:
                deleted_at.update(dict.fromkeys(doomed, t))
        if rng.random() < 0.05:
            store.compact()
        time.sleep(0.002)

    version = [0]

    def update_loop():
        version[0] += 1
        ids = rng.sample(range(INITIAL), 5)  # initial ids are never deleted
        if version[0] % 2:
            store.update_metadata(ids, [meta_of(i) | {"v": version[0]} for i in ids])
        else:  # same vectors, new metadata: the ids must stay findable throughout
            store.upsert(ids, X[ids], [meta_of(i) | {"v": version[0]} for i in ids])
        got = store.get(ids)
        assert [{"id": m["id"], "tag": m["tag"]} for m in got.metadata] == [meta_of(i) for i in ids]
        time.sleep(0.002)

    def save_loop():
        store.save(tmp_path / "store")
        saves[0] += 1
        time.sleep(0.1)

    for r in range(4):
        rec.spawn(reader(store, records, seed=100 + r, ks=(1, 10, 60, INITIAL)))
    for loop in (add_loop, delete_loop, update_loop, *([save_loop] if make_store.persistent else [])):
        rec.spawn(loop)

    def enough() -> bool:
        return len(records) >= readers_min(make_store) and bool(deleted_at) and (
            saves[0] >= 2 or not make_store.persistent)

    rec.run(enough)
    assert enough(), f"in {CAP} s: {len(records)} searches, {len(deleted_at)} deletes, {saves[0]} saves"
    for record in records:
        qi, single, k, c0, c1, t0, t1 = record[:7]
        for row_ids, _, _ in check_record(record, metric):
            assert len(row_ids) == k  # the store always held >= INITIAL >= k vectors
            for i in row_ids:
                assert added_at[i] < t1, f"id {i} returned before it was added"
                assert deleted_at.get(i, t1) >= t0, f"id {i} returned after its delete returned"

    # The final state is exactly what the threads did.
    live = sorted(set(range(INITIAL)) | set(live_extra))
    assert sorted(store.ids()) == live and len(store) == len(live)
    assert not set(deleted_at) & set(store.ids())
    got = store.get(live)
    assert [{"id": m["id"], "tag": m["tag"]} for m in got.metadata] == [meta_of(i) for i in live]
    _, ids, _ = store.search(QUERIES, k=10, **make_store.wide)
    _, truth = oracle(X[live], QUERIES, 10, metric)
    truth_ids = [[live[r] for r in row] for row in truth]
    hits = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, truth_ids)])
    assert hits >= (1.0 if make_store.exact else 0.98)
    assert store.add(X[0]) == [next_row[0]]  # ids never reused

    if not make_store.persistent:
        return
    # The last save is a consistent store.
    saved = make_store.load(tmp_path / "store")
    saved_ids = saved.ids()
    assert set(range(INITIAL)) <= set(saved_ids) and len(saved) == len(saved_ids)
    meta = saved.get(saved_ids).metadata
    assert [{"id": m["id"], "tag": m["tag"]} for m in meta] == [meta_of(i) for i in saved_ids]
    vectors = saved.get(saved_ids, include_vectors=True).vectors
    want = X[saved_ids]
    if metric == "cosine":
        want = want / np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, want, rtol=1e-5, atol=1e-6)


@pytest.mark.needs("callable_filters")  # the searches meet inside their callable filters
def test_two_searches_run_at_the_same_time(make_store):
    """Searches share the store: the first holds its search open (in its filter) until the
    second, from another thread, is inside its own."""
    store = make_store(D)
    store.add(X[:50], [meta_of(i) for i in range(50)])
    first_inside, second_inside = threading.Event(), threading.Event()
    overlapped: list[bool] = []

    def first(meta: dict) -> bool:  # called once per vector: waits on the first call only
        if not overlapped:
            first_inside.set()
            overlapped.append(second_inside.wait(timeout=5))
        return True

    def second(meta: dict) -> bool:
        second_inside.set()
        return True

    thread = threading.Thread(target=lambda: store.search(QUERIES[0], k=3, filter=first))
    thread.start()
    assert first_inside.wait(timeout=10)
    store.search(QUERIES[1], k=3, filter=second)
    thread.join()
    assert overlapped and all(overlapped)
