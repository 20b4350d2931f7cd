"""How many OpenMP threads FAISS may use for a piece of work: ``threads_for``."""

from __future__ import annotations

import faiss

# Below this many (queries x stored vectors), about a millisecond of work, a search or add
# runs on one OpenMP thread: starting the others would cost more than they save.
PARALLEL_MIN_WORK = 1_000_000


class threads_for:
    """Use OpenMP threads only for work big enough to gain from them (a context manager).

    One query gains nothing from OpenMP and, on a busy machine, loses several-fold waiting
    for the other threads (faiss#2823); so do small batches over small stores. So: never
    more threads than queries, and one thread while queries x stored vectors is below
    PARALLEL_MIN_WORK. The setting is per calling thread, so concurrent searches do not
    disturb each other; it is restored afterwards, and left alone when already right.
    (A class, not a generator: it runs on every search, and costs a third as much.)
    """

    __slots__ = ("_wanted", "_before")

    def __init__(self, n_queries: int, n_vectors: int) -> None:
        self._wanted = 1 if n_queries * n_vectors < PARALLEL_MIN_WORK else n_queries
        self._before = 0

    def __enter__(self) -> None:
        before = faiss.omp_get_max_threads()
        if self._wanted < before:
            self._before = before
            faiss.omp_set_num_threads(self._wanted)

    def __exit__(self, *exc: object) -> None:
        if self._before:
            faiss.omp_set_num_threads(self._before)
