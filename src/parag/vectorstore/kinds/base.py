"""What every index kind provides: the protocol behind ``FAISSVectorStore(index_type=...)``.

An :class:`IndexKind` is one configured kind of FAISS index (its dimension, metric and
parameter values) and knows everything that differs between kinds: its parameter table,
how to build, train and rebuild its index, how to search it with per-call parameters, how
to widen a filtered search, how to search exactly, and what FAISS type a saved index of
it must be. The store and its state call these methods and never ask which kind they hold.

Every index holds vectors at sequential labels (slots) 0, 1, 2...: vectors are only ever
appended with ``add``, never given ids, so the label FAISS returns is the slot.
"""

from __future__ import annotations

from typing import Any, ClassVar

import faiss
import numpy as np

from parag._slots import SlotMap
from parag._validation import Param
from parag.errors import InvalidArgumentError

FAISS_METRIC = {"L2": faiss.METRIC_L2, "IP": faiss.METRIC_INNER_PRODUCT, "cosine": faiss.METRIC_INNER_PRODUCT}
# A filter that allows few vectors is answered by exact search over just those (recall 1.0,
# and cheaper than an ANN search the filter starves) while that scores at most this many
# vector components (allowed vectors x dimension): about a millisecond, 2,600 vectors at
# 384 dimensions. Measured on 59k-100k x 384 stores: beyond it HNSW's widened graph search
# and IVF's widened probe (which scores only allowed vectors) are faster.
EXACT_FILTER_BUDGET = 1_000_000
# A filter that lets a share s of the vectors through multiplies ef_search / nprobe by
# s**-WIDEN_POWER: on debian-minilm, 0.4 keeps filtered recall@10 at the unfiltered level
# (0.97 at 5%-50% selectivity) for ~25% less time than 0.5.
WIDEN_POWER = 0.4


class IndexKind:
    """One kind of FAISS index, configured: subclasses fill in the class attributes and
    override the methods where their index differs from a plain ``IndexFlat``."""

    #: The canonical name (``index_type``) and other accepted names, with the metric each implies.
    name: ClassVar[str]
    aliases: ClassVar[dict[str, str]] = {}
    #: The parameter table: every parameter the kind takes, its default and range.
    params_table: ClassVar[tuple[Param, ...]] = ()
    #: Deleted vectors stay as tombstones until they make up this share of the index.
    compact_at: ClassVar[float] = 0.1
    #: The search parameter :meth:`FAISSVectorStore.tune` sets (None: exact, nothing to tune).
    tunable: ClassVar[str | None] = None

    def __init__(self, dimension: int, metric: str, params: dict[str, int]) -> None:
        self.dimension = dimension
        self.metric = metric
        self.faiss_metric = FAISS_METRIC[metric]
        self.params = params

    # ------------------------------------------------------------- parameters

    @classmethod
    def resolve(cls, given: dict[str, Any]) -> dict[str, int]:
        """Every parameter's value: ``given`` checked against the table, defaults for the rest."""
        table = {p.name: p for p in cls.params_table}
        for name in given:
            if name not in table:
                raise InvalidArgumentError(
                    f"unknown parameter {name!r} for index_type {cls.name!r}; valid: {sorted(table) or 'none'}"
                )
        return {name: p.check(given[name]) if name in given else p.default for name, p in table.items()}

    def check_overrides(self, given: dict[str, Any]) -> dict[str, int]:
        """The per-search overrides that are not None, checked against the table."""
        per_search = {p.name: p for p in self.params_table if p.per_search}
        overrides = {}
        for name, value in given.items():
            if value is None:
                continue
            if name not in per_search:
                raise InvalidArgumentError(
                    f"{name} does not apply to a {self.name} store; "
                    f"search parameters it takes: {list(per_search) or 'none'}"
                )
            overrides[name] = per_search[name].check(value)
        return overrides

    def tune_range(self, k: int) -> tuple[int, int]:
        """The lowest and highest value of :attr:`tunable` worth trying for top-``k`` searches."""
        raise NotImplementedError(f"a {self.name} index has nothing to tune")

    def set_default(self, index: faiss.Index, name: str, value: int) -> None:
        """Make ``value`` the parameter's value from now on (saved with the store)."""
        self.params[name] = value
        self.apply_defaults(index)

    def apply_defaults(self, index: faiss.Index) -> None:
        """Give ``index`` the configured search parameters as its own (a new or loaded index)."""

    # ------------------------------------------------------------- building

    def new_index(self) -> faiss.Index:
        """An empty index."""
        return faiss.IndexFlat(self.dimension, self.faiss_metric)

    def is_trained(self, index: faiss.Index) -> bool:
        """False while the index still answers exactly until it has seen enough vectors."""
        return True

    def after_add(self, index: faiss.Index, slots: SlotMap) -> faiss.Index:
        """The index to keep after an add (a kind that trains on its first vectors swaps it)."""
        return index

    def remove_tail(self, index: faiss.Index, n_slots: int) -> bool:
        """Remove the vectors beyond slot ``n_slots`` (a failed add's); False when the index
        cannot remove vectors (they then stay as tombstones)."""
        index.remove_ids(faiss.IDSelectorRange(n_slots, index.ntotal))
        return True

    def storage(self, index: faiss.Index) -> faiss.Index:
        """The index that holds the vectors themselves, in slot order."""
        return index

    def rebuild(self, index: faiss.Index, keep: np.ndarray) -> faiss.Index:
        """An index holding only the slots where ``keep`` is True, renumbered in order."""
        vectors = self.storage(index).reconstruct_n(0, index.ntotal)[keep]
        fresh = self.new_index()
        if len(vectors):
            fresh.add(vectors)
        return fresh

    # ------------------------------------------------------------- searching

    def search_parameters(
        self, index: faiss.Index, sel: faiss.IDSelector | None, overrides: dict[str, int]
    ) -> faiss.SearchParameters | None:
        """A fresh SearchParameters for one call (FAISS must not share one between threads),
        or None when the index's own defaults and no selector will do (the fast path)."""
        return None if sel is None else faiss.SearchParameters(sel=sel)

    def splits_one_query(self, index: faiss.Index) -> bool:
        """Whether FAISS spreads the work of a single query over OpenMP threads (a Flat scan
        does, over the vectors; a graph or cluster search runs on the calling thread)."""
        return True

    def widened(self, index: faiss.Index, overrides: dict[str, int], share: float, k: int) -> dict[str, int]:
        """Search parameters scaled up for a filter that lets ``share`` of the vectors through.

        A graph or cluster search that must skip most of what it visits finds fewer true
        neighbours; visiting more keeps recall where it is unfiltered.
        """
        return overrides

    def exact_search(
        self, index: faiss.Index, q: np.ndarray, k: int, sel: faiss.IDSelector | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The true top-k among the slots ``sel`` allows (None: every slot)."""
        storage = self.storage(index)
        return storage.search(q, k, params=None if sel is None else faiss.SearchParameters(sel=sel))

    def exact_filter_limit(self, n_live: int) -> int:
        """Filters allowing at most this many vectors are answered by exact search over them."""
        return EXACT_FILTER_BUDGET // self.dimension

    def subset_search(
        self, index: faiss.Index, q: np.ndarray, k: int, slots: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k among ``slots``: only their distances are computed."""
        # A bare IndexFlat scores only an IDSelectorArray's ids.
        sel = faiss.IDSelectorArray(slots)
        return self.storage(index).search(q, k, params=faiss.SearchParameters(sel=sel))

    # ------------------------------------------------------------- loading

    def expected_type(self, trained: bool) -> type:
        """The FAISS class a saved index of this kind is (``trained`` as the manifest says)."""
        return faiss.IndexFlat

    def check_structure(self, index: faiss.Index, where: str) -> None:
        """Raise CorruptStoreError unless the loaded index's internal references hold (what
        FAISS does not check when it reads a file)."""

    def load_problems(self, index: faiss.Index) -> list[str]:
        """What is wrong with a loaded index of the expected type, beyond dimension, metric
        and count (empty: nothing)."""
        return []
