"""An independent model of a vector store for the lifecycle and filter tests.

:class:`Model` keeps what a store should hold (id -> vector as given, metadata, document) in
plain Python, with int or str ids, :func:`matches` evaluates the filter language of
:mod:`parag.filters` from its documentation (not from its code), and the ``check_*`` helpers
compare a store's search results with a numpy brute force over the live vectors that match a
filter. Nothing here reads the store's internals or its own search output to build the
expected answer.
"""

from __future__ import annotations

import functools
import hashlib
import json
import operator
from collections import OrderedDict
from typing import Any

import numpy as np
import pytest

from tests.conftest import clustered

TOL = 1e-4
METRICS = ("L2", "IP", "cosine")
N, D = 5000, 32


# ----------------------------------------------------------------------------- data


def dataset(n: int = N, d: int = D, n_queries: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Clustered vectors (100 overlapping clusters: ANN indexes are good, not trivially exact)
    and queries from the same distribution."""
    x = clustered(n + n_queries, d, centres=100, spread=0.8, seed=seed)
    return x[:n], x[n:]


def rich_metadata(x: np.ndarray, seed: int = 0) -> list[dict[str, Any]]:
    """Metadata with every kind of value the filter language handles.

    ``rank`` is a permutation of 0..n-1, so ``{"rank": {"$lt": m}}`` allows exactly m
    vectors; ``side`` splits the space in two halves (a filter correlated with the
    geometry); the rest mixes ints and floats, bools, strings, nulls, lists and missing keys.
    """
    rng = np.random.default_rng(seed + 1000)
    n = len(x)
    rank = rng.permutation(n)
    median = float(np.median(x[:, 0]))
    out = []
    for i in range(n):
        m: dict[str, Any] = {
            "id": i,
            "rank": int(rank[i]),
            "source": f"s{int(rng.integers(100)):02d}",
            "side": "pos" if x[i, 0] > median else "neg",
            "score": float(rng.random()),
            "date": f"2024-{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d}",
        }
        year = 2000 + int(rng.integers(25))
        m["year"] = float(year) if rng.random() < 0.1 else year  # 2020.0 must equal 2020
        r = rng.random()
        if r < 0.8:
            m["lang"] = ["en", "fr", "de", "es"][int(rng.integers(4))]
        flag = int(rng.integers(5))
        if flag < 4:
            m["flag"] = [True, False, 1, 0][flag]  # True is not 1
        if rng.random() < 0.3:
            m["note"] = None
        if rng.random() < 0.3:
            m["tags"] = [["a"], ["a", "b"], ["b", "a"]][int(rng.integers(3))]
        out.append(m)
    return out


# ----------------------------------------------------------------------------- filter semantics


_RANGES = {"$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _key(v: Any) -> tuple:
    """Equal JSON values (as documented: numbers by value, bools apart from numbers,
    containers as whole values, their numbers by value too: [1] is [1.0]) share a key."""
    if isinstance(v, bool):
        return ("bool", v)
    if _is_number(v):
        return ("number", v)  # Python compares ints and floats exactly: 2**53 + 1 != 2.0**53
    if isinstance(v, list):
        return ("list", tuple(_key(e) for e in v))
    if isinstance(v, dict):
        return ("dict", frozenset((k, _key(e)) for k, e in v.items()))
    return (type(v).__name__, v)


def same_value(a: Any, b: Any) -> bool:
    return _key(a) == _key(b)


def _field(meta: dict[str, Any], field: str, condition: Any) -> bool:
    if isinstance(condition, dict) and condition and all(k.startswith("$") for k in condition):
        return all(_operator(meta, field, op, operand) for op, operand in condition.items())
    return _operator(meta, field, "$eq", condition)


def _operator(meta: dict[str, Any], field: str, op: str, operand: Any) -> bool:
    present = field in meta
    value = meta.get(field)
    if op == "$eq":
        return present and same_value(value, operand)
    if op == "$ne":  # MongoDB: also true when the field is missing
        return not (present and same_value(value, operand))
    if op in ("$in", "$nin"):
        keys = _key_set(operand)
        return (present and _key(value) in keys) == (op == "$in")
    if op == "$exists":
        return present == operand
    if op == "$not":
        return not _field(meta, field, operand)
    if op in _RANGES:
        if not present:
            return False
        if isinstance(operand, str):
            return isinstance(value, str) and _RANGES[op](value, operand)
        return _is_number(value) and _RANGES[op](value, operand)  # exact for ints of any size
    if op == "$substring":  # string fields only
        return present and isinstance(value, str) and operand in value
    if op in ("$contains", "$all", "$any"):  # list fields only: any other value never matches
        if not isinstance(value, list):
            return False
        held = {_key(v) for v in value}
        if op == "$contains":
            return _key(operand) in held
        wanted = [_key(o) for o in operand]
        return all(w in held for w in wanted) if op == "$all" else any(w in held for w in wanted)
    raise AssertionError(f"the model does not know {op}")


def _document(document: str | None, condition: dict[str, Any]) -> bool:
    """The ``$document`` key: substring tests on the vector's document (None: no document).
    ``$not_contains`` is the negation of ``$contains``, so it matches a missing document."""
    for op, text in condition.items():
        if op == "$contains":
            ok = document is not None and text in document
        elif op == "$not_contains":
            ok = document is None or text not in document
        else:
            raise AssertionError(f"the model does not know $document {op}")
        if not ok:
            return False
    return True


_KEY_SETS: dict[int, tuple[Any, frozenset]] = {}


def _key_set(operand: Any) -> frozenset:
    """The keys of an $in list, memoised by identity (filters reuse one list for every row)."""
    hit = _KEY_SETS.get(id(operand))
    if hit is None or hit[0] is not operand:
        hit = _KEY_SETS[id(operand)] = (operand, frozenset(_key(o) for o in operand))
    return hit[1]


def matches(meta: dict[str, Any], spec: Any, document: str | None = None) -> bool:
    """Whether a vector with metadata ``meta`` and ``document`` matches the filter ``spec``
    (a dict, or a callable of the metadata, alone or as a branch of ``$and`` / ``$or``)."""
    if spec is None:
        return True
    if callable(spec) and not isinstance(spec, dict):
        return bool(spec(meta))
    for key, value in spec.items():
        if key == "$and":
            ok = all(matches(meta, s, document) for s in value)
        elif key == "$or":
            ok = any(matches(meta, s, document) for s in value)
        elif key == "$not":
            ok = not matches(meta, value, document)
        elif key == "$document":
            ok = _document(document, value)
        else:
            ok = _field(meta, key, value)
        if not ok:
            return False
    return True


# ----------------------------------------------------------------------------- the model

# The ids a filter selects, shared by every model in the same state: a conformance test makes
# the same writes on every store kind and metric, and evaluating the filters in Python over
# 5,000 metadata dicts was half the time of tests/conformance/test_lifecycle.py. The key is
# the model's history (every write, in order, with its ids, metadata and documents: what
# decides ``where``) and the filter's repr; a filter holding a callable is never shared.
_WHERE: OrderedDict[tuple[bytes, str], list[Any]] = OrderedDict()
_WHERE_SIZE = 1024


def _shareable(spec: Any) -> str | None:
    """The memo key of ``spec``: its repr, or None where it holds a callable (or another
    object whose repr does not say what it matches)."""
    try:
        json.dumps(spec)
    except (TypeError, ValueError):
        return None
    return repr(spec)


class Model:
    """What the store should hold: id -> (vector as given, metadata, document), in ids() order.

    Ids are ints or strs (one kind per model, as per store); ``next_id`` follows int ids only.
    """

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.vectors: dict[Any, np.ndarray] = {}
        self.meta: dict[Any, dict[str, Any]] = {}
        self.documents: dict[Any, str | None] = {}
        self.next_id = 0
        self.ever: set[Any] = set()
        self._history = hashlib.blake2b(digest_size=16)  # every write so far (see _WHERE)
        self._touch()

    def add(self, ids, vectors, metadata, documents=None) -> None:
        ids, metadata = list(ids), [dict(m) for m in metadata]
        documents = [None] * len(ids) if documents is None else list(documents)
        self._touch("add", ids, metadata, documents)
        for i, v, m, d in zip(ids, vectors, metadata, documents, strict=True):
            assert i not in self.vectors
            assert not self.ever or type(i) is type(next(iter(self.ever))), "one id kind per store"
            self.vectors[i] = np.array(v, np.float32)
            self.meta[i] = m
            self.documents[i] = d
            self.ever.add(i)
            if isinstance(i, int):
                self.next_id = max(self.next_id, i + 1)

    def delete(self, ids) -> None:
        ids = list(ids)
        self._touch("delete", ids)
        for i in ids:
            del self.vectors[i], self.meta[i], self.documents[i]

    def upsert(self, ids, vectors, metadata, documents=None) -> None:
        ids = list(ids)
        self._touch("upsert", ids)  # the add below records the rest
        for i in ids:
            self.vectors.pop(i, None)  # an upsert moves the id to the newest slot
            self.meta.pop(i, None)
            self.documents.pop(i, None)
        self.add(ids, vectors, metadata, documents)

    def update_metadata(self, ids, metadata) -> None:
        ids, metadata = list(ids), [dict(m) for m in metadata]
        self._touch("update_metadata", ids, metadata)
        for i, m in zip(ids, metadata):
            assert i in self.meta
            self.meta[i] = m

    def ids(self) -> list[Any]:
        return list(self.vectors)

    def where(self, spec: Any = None, limit: int | None = None, offset: int = 0) -> list[Any]:
        """Ids matching ``spec``, oldest first, ``offset`` skipped, at most ``limit``: what
        ``get(filter=spec, limit=limit, offset=offset)`` returns."""
        key = _shareable(spec)
        if key is None:
            found = [i for i in self.vectors if matches(self.meta[i], spec, self.documents[i])]
        else:
            key = (self._history.digest(), key)
            found = _WHERE.get(key)
            if found is None:
                found = _WHERE[key] = [i for i in self.vectors if matches(self.meta[i], spec, self.documents[i])]
                if len(_WHERE) > _WHERE_SIZE:
                    _WHERE.popitem(last=False)
            _WHERE.move_to_end(key)
        return found[offset:] if limit is None else found[offset : offset + limit]

    def _touch(self, *change: Any) -> None:
        """Forget what was worked out for the state before ``change`` (a write and its
        arguments), and add it to the history."""
        if change:
            self._history.update(repr(change).encode())
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._all: tuple[dict[int, int], np.ndarray] | None = None

    def _matrix(self) -> tuple[dict[int, int], np.ndarray]:
        """Row of each live id, and every live vector as float64 (unit length for cosine)."""
        if self._all is None:
            ids = list(self.vectors)
            b = np.stack([self.vectors[i] for i in ids]).astype(np.float64) if ids else np.empty((0, 1))
            if self.metric == "cosine" and ids:
                b /= np.linalg.norm(b, axis=1, keepdims=True)
            self._all = ({i: r for r, i in enumerate(ids)}, b)
        return self._all

    def matching(self, spec: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """(ids of the live vectors matching ``spec``, their vectors as float64, normalised for
        cosine), cached until the next change."""
        key = _shareable(spec)
        if key is not None and key in self._cache:
            return self._cache[key]
        ids = np.array(self.where(spec))
        row, b = self._matrix()
        result = (ids, b[[row[i] for i in ids.tolist()]] if len(ids) else np.empty((0, 1)))
        if key is not None:
            self._cache[key] = result
        return result

    def expected(self, queries: np.ndarray, spec: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """(matching ids, scores (n_queries, n_matching)) in float64: the exact answer's raw material."""
        ids, b = self.matching(spec)
        q = np.atleast_2d(np.asarray(queries, np.float64))
        if not len(ids):
            return ids, np.empty((len(q), 0))
        if self.metric == "cosine":
            q = q / np.linalg.norm(q, axis=1, keepdims=True)
        # einsum, not BLAS: on a busy machine OpenBLAS threads make this small product 4x slower
        dots = np.einsum("qd,nd->qn", q, b)
        if self.metric == "L2":
            return ids, (q**2).sum(1)[:, None] - 2 * dots + np.einsum("nd,nd->n", b, b)[None, :]
        return ids, dots


# ----------------------------------------------------------------------------- checks


def _rows(result, n_queries: int, single: bool):
    dist, ids, meta = result
    if single:
        dist, ids, meta = [dist], [ids], [meta]
    assert len(dist) == len(ids) == len(meta) == n_queries
    return dist, ids, meta


def check_search(
    store: Any,
    model: Model,
    queries: np.ndarray,
    k: int = 10,
    spec: Any = None,
    *,
    exact: bool,
    min_recall: float = 0.95,
    deleted: set[int] | frozenset[int] = frozenset(),
    **search_kw: Any,
) -> float:
    """Search ``store`` and check it against the model; return the recall.

    Always: ``min(k, matches)`` results per query, distinct ids, each id live in the model,
    matching ``spec``, with its own metadata and its true score, none of ``deleted``, best
    first. ``exact``: the scores are the exact top-k and the ids those of the oracle (as
    sets, ties at the k-th score aside). Otherwise: mean recall@k >= ``min_recall``, where a
    hit counts when its score is at least as good as the exact k-th best.
    """
    single = np.asarray(queries).ndim == 1
    q = np.atleast_2d(queries)
    result = store.search(queries, k, filter=spec, **search_kw)
    dists, idss, metas = _rows(result, len(q), single)
    ids, scores = model.expected(q, spec)
    want_n = min(k, len(ids))
    for qi in range(len(q)):
        got = idss[qi]
        assert len(got) == len(dists[qi]) == want_n, f"query {qi}: {len(got)} results, expected min({k}, {len(ids)})"
        assert len(set(got)) == len(got), f"query {qi}: repeated ids {got}"
        assert all(type(i) is type(model_id) for i in got for model_id in ids[:1].tolist())
        assert all(type(d) is float for d in dists[qi])
        assert metas[qi] == [model.meta.get(i) for i in got], f"query {qi}: metadata does not belong to its id"
    if not want_n:
        return 1.0
    got = np.array(idss, ids.dtype)  # (n_queries, want_n)
    dist = np.array(dists, np.float64)
    assert not set(got.ravel().tolist()) & set(deleted), f"deleted ids {set(got.ravel().tolist()) & set(deleted)}"
    order = np.argsort(ids)
    pos = np.searchsorted(ids, got, sorter=order).clip(max=len(ids) - 1)
    cols = order[pos]
    known = ids[cols] == got
    assert known.all(), f"ids {got[~known].tolist()} are deleted or do not match {spec!r}"
    own = np.take_along_axis(scores, cols, 1)
    np.testing.assert_allclose(dist, own, rtol=TOL, atol=TOL, err_msg="distance is not the id's own score")
    sign = -1.0 if model.metric != "L2" else 1.0  # work with "smaller is better"
    steps = np.diff(sign * dist, axis=1)
    assert (steps >= -TOL).all(), "results are not best first"
    best = np.sort(np.partition(sign * scores, want_n - 1, axis=1)[:, :want_n], axis=1)
    kth = best[:, -1:]
    slack = TOL * (1 + np.abs(kth))
    if exact:
        np.testing.assert_allclose(sign * dist, best, rtol=TOL, atol=TOL, err_msg="scores are not the exact top-k")
        sure = sign * scores < kth - slack
        found = np.zeros_like(sure)
        np.put_along_axis(found, cols, True, 1)
        missing = sure & ~found
        assert not missing.any(), f"exact neighbours missing: {ids[np.nonzero(missing)[1]].tolist()[:10]}"
        return 1.0
    hits = np.minimum((sign * own <= kth + slack).sum(1), want_n)
    recall = float(hits.mean() / want_n)
    assert recall >= min_recall, f"recall@{k} {recall:.3f} < {min_recall} (filter {spec!r})"
    return recall


def snapshot(store: Any, queries: np.ndarray, spec: Any = None) -> tuple:
    """Everything observable about a store, to check that a failed call changed nothing:
    len, ids(), get() of every id with vectors and documents, and search results (as
    records) with and without ``spec``."""
    ids = store.ids()
    got = store.get(ids, include_vectors=True) if ids else None
    return (
        len(store),
        ids,
        None if got is None else (got.ids, got.metadata, got.documents, got.vectors.tobytes()),
        store.search(queries, 10).records(),
        store.search(queries, 10, filter=spec).records(),
    )


# ----------------------------------------------------------------------------- stores

FILTERS = [
    {"side": "pos"},  # 50%, correlated with the vectors
    {"rank": {"$lt": 50}},  # 1%
    {"$or": [{"lang": "fr"}, {"year": {"$lte": 2004}}]},
]


@functools.lru_cache(maxsize=None)
def base_data(seed: int) -> tuple[np.ndarray, np.ndarray, list]:
    x, q = dataset(seed=seed)
    x.flags.writeable = q.flags.writeable = False  # shared between tests
    return x, q, rich_metadata(x, seed=seed)


def filled(kind: Any, metric: str, seed: int = 0) -> tuple[Any, Model, np.ndarray, np.ndarray]:
    """A store of ``kind`` (a ``tests.conformance.kinds.StoreKind``) holding N clustered
    vectors with rich metadata (ids 0..N-1), its model, base, and queries: 20 to measure an
    approximate index's recall, 8 for an exact one (each query is checked exactly)."""
    x, q, meta = base_data(seed)
    store, model = kind(D, metric), Model(metric)
    assert store.add(x, meta) == list(range(N))
    model.add(range(N), x, meta)
    kind.expect_trained(store, N)
    return store, model, x, q[:8] if kind.exact else q


def check_state(store: Any, model: Model) -> None:
    assert len(store) == len(model.vectors)
    assert store.ids() == model.ids()
    for i in list(model.vectors)[:5]:
        assert i in store and np.int64(i) in store


def check_all(store: Any, model: Model, exact: bool, q: np.ndarray, deleted=frozenset(), filters=FILTERS,
              ks=(10,)) -> None:
    """State, unfiltered search (batch and single query), and filtered searches."""
    check_state(store, model)
    if exact:
        q = q[:8]  # each query is checked exactly: fewer suffice
    for k in ks:
        # recall@100 is checked but held to less: HNSW searches with ef = max(ef_search, k),
        # so at k=100 > ef_search=64 its recall is that of ef=k (~0.9 on this data).
        check_search(store, model, q, k, exact=exact, deleted=deleted, min_recall=0.95 if k <= 10 else 0.8)
    check_search(store, model, q[0], 10, exact=exact, deleted=deleted)
    for spec in filters:
        check_search(store, model, q, 10, spec, exact=exact, deleted=deleted)
