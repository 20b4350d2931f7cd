"""Auto-tuning: the smallest ``ef_search`` (HNSW) or ``nprobe`` (IVFFlat) that reaches a recall.

:meth:`parag.FAISSVectorStore.tune` calls :func:`tune` under the store's write lock, so
nothing changes the store between the measurement and the new setting. It measures recall@k of the
store's own search (tombstones and all) against its exact search over the live vectors, one
query at a time, for increasing values of the index's search parameter (the ladder
1, 2, 3, 4, 6, 8, 12, 16, 24... from :func:`candidates`), stops at the first value whose
recall reaches the target, and makes that value the store's default.

The idea is FAISS's AutoTune (``faiss.ParameterSpace``, which keeps the Pareto-optimal
``(recall, time)`` operating points) cut down to the one question users ask: "how low can
the parameter go and still find 95% of the true neighbours?". Unlike AutoTune it searches
through the store, so deleted vectors are excluded from the ground truth and the results,
and the latency it reports is the single-query latency a caller sees.

A compressed store (``storage`` float16, sq8, pq) has a second search parameter, ``rerank``
(candidates re-scored exactly = ``rerank * k``). Its tune sweeps ``ef_search`` / ``nprobe``
for each ``rerank`` of :data:`RERANKS` in turn (each sweep stops below the value the previous
one needed: more re-ranking never needs a wider search) and keeps the pair that reaches the
target with the lowest median latency. A compressed Flat store tunes ``rerank`` alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from parag._validation import as_vectors, check_int, check_k, check_real, normalised
from parag.errors import InvalidArgumentError
from parag.vectorstore._faiss_state import FAISSState

#: The ``rerank`` values a compressed store's tune tries.
RERANKS = (1, 2, 4, 8, 16)


class Setting(NamedTuple):
    """One measured value of the search parameter."""

    value: int
    recall: float  #: mean recall@k over the queries
    latency_ms: float  #: median single-query search time, in milliseconds
    rerank: int | None = None  #: the ``rerank`` it was measured with (compressed storage)


class TuneResult(NamedTuple):
    """What :meth:`FAISSVectorStore.tune` measured and chose.

    ``param`` is ``"ef_search"``, ``"nprobe"``, ``"rerank"`` (a compressed Flat store), or
    None when there is nothing to tune (a float32 Flat store, or a store not trained yet:
    both search exactly, recall 1.0). ``value`` is the setting now in force, ``recall`` its
    recall@k, ``reached`` whether that meets the target (when no value does, the one with
    the best recall is chosen), and ``settings`` every value measured, in increasing order
    (by ``rerank``, then value). ``rerank`` is the ``rerank`` now in force on a compressed
    store (None on a float32 one).
    """

    param: str | None
    value: int | None
    recall: float
    reached: bool
    settings: list[Setting]
    rerank: int | None = None


def check_target(target_recall: Any) -> float:
    """``target_recall`` as a float in (0, 1], or a parag error.

    Examples
    --------
    >>> check_target(0.9)
    0.9
    >>> check_target(0)
    Traceback (most recent call last):
    ...
    parag.errors.InvalidArgumentError: target_recall must be in (0, 1], got 0
    """
    return check_real(target_recall, "target_recall", low_open=True)


def check_arguments(
    queries: Any, target_recall: Any, k: Any, n_samples: Any, seed: Any, dimension: int, metric: str
) -> tuple[np.ndarray | None, float, int, int, int]:
    """A ``tune`` call's arguments checked, the queries as the store searches them (unit rows
    for cosine), in the order given; a parag error naming the first bad one. Every backend's
    ``tune`` checks its arguments here."""
    target_recall, k = check_target(target_recall), check_k(k)
    n_samples, seed = check_int(n_samples, "n_samples"), check_int(seed, "seed", 0, 2**63 - 1)
    q = None if queries is None else normalised(as_vectors(queries, dimension, "queries")[0], "queries", metric)
    return q, target_recall, k, n_samples, seed


def measured_k(k: int, n_live: int, sampled: bool) -> int:
    """The k that recall is measured on in a store of ``n_live`` vectors: at most their number,
    less the query itself when queries are sampled from them; a parag error when there is
    nothing to measure. Every backend's ``tune`` asks it before sampling.

    Examples
    --------
    >>> measured_k(10, 5, sampled=True)
    4
    >>> measured_k(10, 1, sampled=True)
    Traceback (most recent call last):
    ...
    parag.errors.InvalidArgumentError: the store holds too few vectors to measure recall: add more first
    """
    if not n_live:
        raise InvalidArgumentError("the store is empty: add vectors before tuning it")
    k = min(k, n_live - sampled)
    if k < 1:
        raise InvalidArgumentError("the store holds too few vectors to measure recall: add more first")
    return k


def candidates(low: int, high: int) -> list[int]:
    """The values to try, from ``low`` to ``high`` (both included): ``low``, then the ladder
    1, 2, 3, 4, 6, 8, 12, 16... (powers of two and halfway points) in between.

    Examples
    --------
    >>> candidates(10, 64)
    [10, 12, 16, 24, 32, 48, 64]
    >>> candidates(1, 20)
    [1, 2, 3, 4, 6, 8, 12, 16, 20]
    """
    ladder = {low, high}
    power = 1
    while power < high:
        ladder.update(v for v in (power, 3 * power // 2) if low < v < high)
        power *= 2
    return sorted(ladder)


def recall_at_k(found: npt.ArrayLike, truth: npt.ArrayLike) -> float:
    """Mean over queries of ``|found ∩ truth| / k``, rows of labels (``-1``: no result).

    Examples
    --------
    >>> recall_at_k([[1, 2, 3], [4, 5, -1]], [[3, 2, 1], [4, 6, 7]])
    0.6666666666666666
    """
    found, truth = np.asarray(found), np.asarray(truth)
    hits = (found[:, :, None] == truth[:, None, :]).any(axis=2) & (found >= 0)
    return float(hits.sum(axis=1).mean() / truth.shape[1])


def drop_self(labels: npt.ArrayLike, own: npt.ArrayLike, k: int) -> np.ndarray:
    """The first ``k`` labels of each row that are not the row's own label.

    A stored vector used as a query finds itself: the tuner searches ``k + 1`` and drops it,
    so that recall is measured on its ``k`` true neighbours.

    Examples
    --------
    >>> drop_self([[7, 3, 5], [2, 9, 4]], own=[7, 4], k=2)
    array([[3, 5],
           [2, 9]])
    """
    labels, own = np.asarray(labels), np.asarray(own)
    kept_first = np.argsort(labels == own[:, None], axis=1, kind="stable")
    return np.take_along_axis(labels, kept_first, axis=1)[:, :k]


def sweep(
    search: Callable[[int, int], np.ndarray],
    truth: np.ndarray,
    values: Sequence[int],
    target_recall: float,
) -> list[Setting]:
    """Measure each of ``values`` in turn until one reaches ``target_recall``.

    ``search(i, value)`` searches query ``i`` alone and returns the labels it found;
    ``truth[i]`` holds its true labels.

    Examples
    --------
    >>> truth = np.array([[0, 1], [2, 3]])
    >>> def search(i, value):  # a fake index that finds the right labels from value 4 on
    ...     return truth[i] if value >= 4 else np.array([9, 9])
    >>> [(s.value, s.recall) for s in sweep(search, truth, [1, 2, 4, 8], 0.9)]
    [(1, 0.0), (2, 0.0), (4, 1.0)]
    """
    settings = []
    for value in values:
        found, seconds = [], []
        for i in range(len(truth)):
            start = time.perf_counter()
            found.append(search(i, value))
            seconds.append(time.perf_counter() - start)
        settings.append(Setting(value, recall_at_k(np.stack(found), truth), 1000 * float(np.median(seconds))))
        if settings[-1].recall >= target_recall:
            break
    return settings


def choose(settings: Sequence[Setting], target_recall: float) -> Setting:
    """The smallest value that reaches the target; if none does, the best recall.

    Examples
    --------
    >>> choose([Setting(8, 0.9, 0.1), Setting(16, 0.97, 0.2), Setting(32, 0.99, 0.3)], 0.95).value
    16
    >>> choose([Setting(8, 0.9, 0.1), Setting(16, 0.91, 0.2)], 0.95).value
    16
    """
    reaching = [s for s in settings if s.recall >= target_recall]
    return reaching[0] if reaching else max(settings, key=lambda s: (s.recall, -s.value))


def tune(
    state: FAISSState, queries: np.ndarray | None, target_recall: float, k: int, n_samples: int, seed: int
) -> TuneResult:
    """Tune ``state`` in place (its caller holds the store's write lock).

    ``queries`` are checked and normalised already; None samples ``n_samples`` stored vectors.
    See :meth:`parag.FAISSVectorStore.tune`.
    """
    param = state.kind.tunable if state.is_trained else None
    compressed = state.is_trained and "rerank" in state.kind.params
    if param is None and not compressed:
        return TuneResult(None, None, 1.0, True, [])
    k = measured_k(k, state.slots.n_live, sampled=queries is None)
    q, own = _queries(state, queries, n_samples, seed)
    extra = 0 if own is None else 1  # a sampled query finds itself: search one more and drop it
    truth = state.exact_slots(q, k + extra)
    truth = truth if own is None else drop_self(truth, own, k)

    def searcher(name: str, fixed: dict[str, int]) -> Callable[[int, int], np.ndarray]:
        def search(i: int, value: int) -> np.ndarray:
            slots = state.search_slots(q[i : i + 1], k + extra, {**fixed, name: value})[1]
            return slots[0] if own is None else drop_self(slots, own[i : i + 1], k)[0]

        return search

    if not compressed:
        settings = sweep(searcher(param, {}), truth, candidates(*state.kind.tune_range(k)), target_recall)
        best = choose(settings, target_recall)
        state.set_search_default(param, best.value)
        return TuneResult(param, best.value, best.recall, best.recall >= target_recall, settings)
    if param is None:  # a compressed Flat store: the scan is exact, only rerank to choose
        settings = [s._replace(rerank=s.value) for s in sweep(searcher("rerank", {}), truth, RERANKS, target_recall)]
        best = choose(settings, target_recall)
        state.set_search_default("rerank", best.value)
        return TuneResult("rerank", best.value, best.recall, best.recall >= target_recall, settings, best.value)
    settings, best = _sweep_with_rerank(searcher, param, truth, candidates(*state.kind.tune_range(k)), target_recall)
    state.set_search_default(param, best.value)
    state.set_search_default("rerank", best.rerank)  # type: ignore[arg-type]
    return TuneResult(param, best.value, best.recall, best.recall >= target_recall, settings, best.rerank)


def _sweep_with_rerank(
    searcher: Callable[[str, dict[str, int]], Callable[[int, int], np.ndarray]],
    param: str,
    truth: np.ndarray,
    values: list[int],
    target_recall: float,
) -> tuple[list[Setting], Setting]:
    """Sweep ``param`` for each rerank of :data:`RERANKS`; every setting measured, and the
    one chosen: the fastest that reaches the target, else the best recall."""
    settings: list[Setting] = []
    finals = []
    for rerank in RERANKS:
        measured = sweep(searcher(param, {"rerank": rerank}), truth, values, target_recall)
        settings += [s._replace(rerank=rerank) for s in measured]
        finals.append(settings[-1])
        if settings[-1].recall >= target_recall:
            # More re-ranking never needs a wider search: try only narrower ones from here.
            values = [v for v in values if v <= settings[-1].value]
            if len(values) == 1:
                break
    reaching = [s for s in finals if s.recall >= target_recall]
    if reaching:
        return settings, min(reaching, key=lambda s: (s.latency_ms, s.value))
    return settings, max(settings, key=lambda s: (s.recall, -(s.rerank or 0), -s.value))


def _queries(
    state: FAISSState, q: np.ndarray | None, n_samples: int, seed: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """The queries, and the slots they were sampled from (None when the caller gave them)."""
    if q is not None:
        return q, None
    live = np.flatnonzero(state.slots.live_mask())
    own = np.sort(np.random.default_rng(seed).choice(live, min(n_samples, len(live)), replace=False))
    return state.vectors(own), own
