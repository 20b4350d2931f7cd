"""What every index kind provides: the protocol behind ``FAISSVectorStore(index_type=...)``.

An :class:`IndexKind` is one configured kind of FAISS index (its dimension, metric and
parameter values) and knows everything that differs between kinds: its parameter table,
how to build, train and rebuild its index, how to search it with per-call parameters, how
to widen a filtered search, how to search exactly, and what FAISS type a saved index of
it must be. The store and its state call these methods and never ask which kind they hold.

Every index holds vectors at sequential labels (slots) 0, 1, 2...: vectors are only ever
appended with ``add``, never given ids, so the label FAISS returns is the slot.

The storage (``float32``, ``float16``, ``sq8``, ``pq``: :mod:`.storage`) is a parameter of
every kind. A compressed index is wrapped in a :class:`.rerank.Reranked` (beside the float32
vectors that re-rank its candidates); the base class does the wrapping and unwrapping, so a
subclass only sees its own index (:meth:`IndexKind.inner`) and builds it for the storage in
:meth:`build`.
A kind that needs training (IVF, sq8, pq) starts as an exact ``IndexFlat`` and is built
and trained by :meth:`IndexKind.after_add` once it holds :meth:`IndexKind.train_at` vectors.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import faiss
import numpy as np

from parag._slots import SlotMap
from parag._validation import Param
from parag.errors import InvalidArgumentError
from parag.vectorstore.kinds.full_vectors import FullVectors
from parag.vectorstore.kinds.loading import KindLoading
from parag.vectorstore.kinds.rerank import Reranked, RerankParameters
from parag.vectorstore.kinds.storage import STORAGE_TABLE, TRAIN_AT, resolve_storage

KindPoint = tuple[dict[str, Any], set[str]]  # (params, auto): see IndexKind.savepoint

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


class IndexKind(KindLoading):
    """One kind of FAISS index, configured: subclasses fill in the class attributes and
    override the methods where their index differs from a plain ``IndexFlat``."""

    #: The canonical name (``index_type``) and other accepted names, with the metric each implies.
    name: ClassVar[str]
    aliases: ClassVar[dict[str, str]] = {}
    #: The parameter table: every parameter the kind takes, its default and range (the
    #: storage parameters of :data:`.storage.STORAGE_TABLE` come on top).
    params_table: ClassVar[tuple[Param, ...]] = ()
    #: The storages FAISS supports well with this kind, and those it supports with some metrics only.
    storages: ClassVar[tuple[str, ...]] = ("float32", "float16", "sq8", "pq")
    storage_metrics: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: Deleted vectors stay as tombstones until they make up this share of the index.
    compact_at: ClassVar[float] = 0.1
    #: The search parameter :meth:`FAISSVectorStore.tune` sets (None: exact, nothing to tune).
    tunable: ClassVar[str | None] = None
    #: The parameters whose default follows the index's size (:meth:`follow_size`).
    scaled: ClassVar[tuple[str, ...]] = ()

    def __init__(self, dimension: int, metric: str, params: dict[str, Any], auto: Iterable[str] = ()) -> None:
        self.dimension = dimension
        self.metric = metric
        self.faiss_metric = FAISS_METRIC[metric]
        self.params = params
        #: The parameters nobody set: their values in ``params`` follow the index's size. Only
        #: the constructor (for parameters not given) and a saved manifest make one automatic;
        #: setting one (``tune``) makes it fixed.
        self.auto = set(auto)
        #: Where a compressed store keeps its float32 vectors (an unnamed temporary file in
        #: this directory) rather than RAM; None: RAM. Not a parameter: never saved.
        self.vectors_dir: Path | None = None
        unknown = self.auto - set(self.scaled)
        if unknown:
            raise InvalidArgumentError(
                f"parameters {sorted(unknown)} of index_type {self.name!r} cannot follow the store's size; "
                f"those that can: {list(self.scaled)}"
            )
        self.storage_type = params.get("storage", "float32")
        metrics = self.storage_metrics.get(self.storage_type)
        if metrics and metric not in metrics:
            raise InvalidArgumentError(
                f"storage={self.storage_type!r} with index_type {self.name!r} supports metric {list(metrics)} only, "
                f"not {metric!r}; for {metric!r} use storage 'sq8' or 'float16', or index_type 'IVFFlat'"
            )

    # ------------------------------------------------------------- parameters

    @classmethod
    def params_by_name(cls) -> dict[str, Param]:
        """Every parameter of this kind (:attr:`params_table`, then the storage ones) by name."""
        return {p.name: p for p in cls.params_table + STORAGE_TABLE}

    @classmethod
    def resolve(cls, given: dict[str, Any], dimension: int) -> dict[str, Any]:
        """Every parameter's value: ``given`` checked against the table, defaults for the rest."""
        table = cls.params_by_name()
        for name in given:
            if name not in table:
                raise InvalidArgumentError(
                    f"unknown parameter {name!r} for index_type {cls.name!r}; valid: {sorted(table)}"
                )
        params = {p.name: p.check(given[p.name]) if p.name in given else p.default for p in cls.params_table}
        return {**params, **resolve_storage(cls.name, cls.storages, given, dimension)}

    def check_overrides(self, given: dict[str, Any]) -> dict[str, Any]:
        """The per-search overrides that are not None, checked against the table."""
        per_search = {n: p for n, p in self.params_by_name().items() if p.per_search and n in self.params}
        overrides = {}
        for name, value in given.items():
            if value is None:
                continue
            if name not in per_search:
                raise InvalidArgumentError(
                    f"{name} does not apply to a {self.name} store with storage={self.storage_type!r}; "
                    f"search parameters it takes: {list(per_search) or 'none'}"
                )
            overrides[name] = per_search[name].check(value)
        return overrides

    def checks_input_as(self, other: IndexKind) -> bool:
        """Whether input checked against ``other`` is checked for this kind too: it has the
        same dimension and metric (which decides normalisation), all the checks read."""
        return self.dimension == other.dimension and self.metric == other.metric

    def tune_range(self, k: int) -> tuple[int, int]:
        """The lowest and highest value of :attr:`tunable` worth trying for top-``k`` searches."""
        raise NotImplementedError(f"a {self.name} index has nothing to tune")

    def set_default(self, index: faiss.Index, name: str, value: int) -> None:
        """Make ``value`` the parameter's value from now on (saved with the store): it no
        longer follows the store's size. A failure, or an interrupt before this returns,
        undoes it (``index`` is given the old values again)."""
        point = self.savepoint()
        try:
            self.params[name] = value
            self.auto.discard(name)
            self.apply_defaults(index)
        except BaseException:
            self.roll_back(point)
            self.apply_defaults(index)
            raise

    def savepoint(self) -> KindPoint:
        """What :meth:`roll_back` needs to undo the changes to the parameters that follow."""
        return dict(self.params), set(self.auto)

    def roll_back(self, point: KindPoint) -> None:
        """Hold the parameters of ``point`` again (an index given them since keeps them)."""
        self.params, self.auto = dict(point[0]), set(point[1])

    def apply_defaults(self, index: faiss.Index) -> None:
        """Give ``index`` the configured search parameters as its own (a new or loaded index,
        or one that has grown): the automatic ones are first chosen for its size."""
        if not self.is_trained(index):
            return
        self.follow_size(index)
        if isinstance(index, Reranked):
            index.k_factor = float(self.params["rerank"])
        self.apply_own_defaults(self.inner(index))

    def apply_own_defaults(self, inner: faiss.Index) -> None:
        """:meth:`apply_defaults` on the kind's own (unwrapped, trained) index."""

    def follow_size(self, index: faiss.Index) -> None:
        """Set the automatic search parameters (:attr:`auto`) to the policy's values for a
        trained ``index`` of its size."""

    # ------------------------------------------------------------- building

    def before_add(self, index: faiss.Index, n_slots: int) -> None:
        """Set the build parameters that follow the store's size (:attr:`auto`) for an add
        that leaves ``index`` with ``n_slots`` slots."""

    def train_at(self) -> int:
        """The live vectors the index needs before it is built and trained (0: none)."""
        return TRAIN_AT[self.storage_type]

    def new_index(self) -> faiss.Index:
        """An empty index: the exact flat index of a kind that trains first."""
        if self.train_at():
            return faiss.IndexFlat(self.dimension, self.faiss_metric)
        return self.wrap(self.build(), np.empty((0, self.dimension), np.float32))

    def build(self) -> faiss.Index:
        """The kind's own index for its storage, empty and untrained."""
        return faiss.IndexFlat(self.dimension, self.faiss_metric)

    def wrap(self, inner: faiss.Index, vectors: np.ndarray | FullVectors) -> faiss.Index:
        """``inner`` (holding ``vectors``, which it takes over: not copied, unless they go to
        a file in :attr:`vectors_dir`) as the store keeps it: beside the float32 vectors to
        re-rank with when its storage is compressed."""
        if self.storage_type == "float32":
            return inner
        if self.vectors_dir is not None and not isinstance(vectors, FullVectors):
            vectors = FullVectors.spilled([vectors], self.dimension, self.faiss_metric, self.vectors_dir)
        elif not isinstance(vectors, FullVectors):
            vectors = FullVectors(np.ascontiguousarray(vectors, np.float32), self.faiss_metric)
        return Reranked(inner, vectors, float(self.params["rerank"]))

    def inner(self, index: faiss.Index) -> faiss.Index:
        """The kind's own index inside the re-ranking wrapper (``index`` when there is none)."""
        return index.base if isinstance(index, Reranked) else index

    def is_trained(self, index: faiss.Index) -> bool:
        """False while the index still answers exactly until it has seen enough vectors."""
        return not self.train_at() or not isinstance(index, faiss.IndexFlat)

    def trains_after_add(self, index: faiss.Index, n_live: int) -> bool:
        """Whether an add that leaves ``n_live`` live vectors must (re)train the index
        (:meth:`after_add`): checked on every add, so it costs nothing."""
        return not self.is_trained(index) and n_live >= self.train_at()

    def after_add(self, index: faiss.Index, slots: SlotMap) -> faiss.Index:
        """The index to keep after an add that :meth:`trains_after_add`: a new one, built and
        trained on the live vectors, holding every slot's vector. ``index`` is left as it is."""
        live = slots.live_mask()
        vectors = self.vectors(index)
        inner = self.build()
        self.apply_own_defaults(inner)
        inner.train(vectors if live.all() else vectors[live])
        # The flat index (and the view of it) goes: the full vectors are copied out of it
        # (into RAM, or straight into the file of vectors_dir).
        return self.wrap(self.fill(inner, vectors), vectors if self.vectors_dir else np.array(vectors))

    def vectors(self, index: faiss.Index) -> np.ndarray:
        """Every slot's float32 vector, in slot order."""
        storage = self.storage(index)
        if isinstance(storage, faiss.IndexFlat):
            # A view of the flat index's own storage, not a copy: peak memory stays at the two indexes.
            return faiss.rev_swig_ptr(storage.get_xb(), storage.ntotal * storage.d).reshape(storage.ntotal, storage.d)
        return storage.reconstruct_n(0, storage.ntotal)

    def fill(self, inner: faiss.Index, vectors: np.ndarray) -> faiss.Index:
        """Add every slot's vector (dead ones too, so slot numbers stay) to a trained ``inner``."""
        inner.add(vectors)
        return inner

    def undoes_add(self, index: faiss.Index) -> bool:
        """Whether :meth:`remove_tail` takes any add to ``index`` back exactly, with nothing
        else changed by it: true of a flat float32 index (Flat's, or the one a kind that
        trains starts as), whose add is a copy. Such an add may run before its input is checked."""
        return isinstance(index, faiss.IndexFlat)

    def remove_tail(self, index: faiss.Index, n_slots: int) -> bool:
        """Remove the vectors beyond slot ``n_slots`` (a failed add's); False when the index
        cannot remove vectors exactly (they then stay as tombstones): a graph, trained
        clusters, or compressed codes (whose add is all or nothing: a failed one left none)."""
        if not self.undoes_add(index):
            return False
        index.remove_ids(faiss.IDSelectorRange(n_slots, index.ntotal))
        return True

    def storage(self, index: faiss.Index) -> faiss.Index | FullVectors:
        """The flat index (or the :class:`FullVectors`) holding the float32 vectors
        themselves, in slot order."""
        if isinstance(index, Reranked):
            return index.vectors
        return index if not self.is_trained(index) else self.own_storage(index)

    def close_files(self, index: faiss.Index, successor: faiss.Index | None = None) -> None:
        """Close the file ``index`` reads its float32 vectors from (a compressed store's,
        loaded with ``mmap=True`` or kept in a ``vectors_dir``), if any, unless its
        ``successor`` (the index replacing it) reads the same file: ``index`` is not
        searched again."""
        if not isinstance(index, Reranked) or index.vectors.file is None:
            return
        if isinstance(successor, Reranked) and successor.vectors.file is index.vectors.file:
            return
        index.vectors.file.close()

    def own_storage(self, index: faiss.Index) -> faiss.Index:
        """:meth:`storage` of the kind's own float32 index."""
        return index

    def rebuild(self, index: faiss.Index, keep: np.ndarray) -> faiss.Index:
        """A new index holding only the slots where ``keep`` is True, renumbered in order; a
        trained index's training (clustering, quantiser ranges, codebooks) is kept. The old
        index stays whole until the new one is complete, so a rebuild that fails changes nothing."""
        if isinstance(index, Reranked) and index.vectors.directory is not None:
            return self._rebuild_from_file(index, keep)
        vectors = self.vectors(index)[keep]
        if self.train_at() and self.is_trained(index):
            inner = self.trained_empty(self.inner(index))
            if len(vectors):
                inner.add(vectors)
            return self.wrap(inner, vectors)
        fresh = self.new_index()
        if len(vectors):
            fresh.add(vectors)
        return fresh

    def _rebuild_from_file(self, index: Reranked, keep: np.ndarray) -> Reranked:
        """:meth:`rebuild` for vectors in a file of :attr:`vectors_dir`: read (not mapped) and
        added a block at a time, so they never pass through RAM all at once."""
        inner = self.trained_empty(index.base) if self.train_at() else self.build()
        fresh = self.wrap(inner, np.empty((0, self.dimension), np.float32))
        start = 0
        for block in index.vectors.blocks():
            kept = block[keep[start : start + len(block)]]
            start += len(block)
            if len(kept):
                fresh.add(kept)
        return fresh

    def copy_index(self, index: faiss.Index) -> faiss.Index:
        """An independent copy of the store's ``index``."""
        return index.copy() if isinstance(index, Reranked) else faiss.clone_index(index)

    def trained_empty(self, inner: faiss.Index) -> faiss.Index:
        """An empty index with the training of the kind's own ``inner`` (which stays as it is)."""
        empty = faiss.clone_index(inner)
        empty.reset()
        self.apply_own_defaults(empty)
        return empty

    # ------------------------------------------------------------- searching

    def search_parameters(
        self, index: faiss.Index, sel: faiss.IDSelector | None, overrides: dict[str, Any]
    ) -> faiss.SearchParameters | None:
        """A fresh SearchParameters for one call (FAISS must not share one between threads),
        or None when the index's own defaults and no selector will do (the fast path)."""
        if not self.is_trained(index):
            return None if sel is None else faiss.SearchParameters(sel=sel)
        own = self.own_parameters(self.inner(index), sel, overrides)
        if not isinstance(index, Reranked) or (own is None and "rerank" not in overrides):
            return own
        return RerankParameters(float(overrides.get("rerank", self.params["rerank"])), own)

    def own_parameters(
        self, inner: faiss.Index, sel: faiss.IDSelector | None, overrides: dict[str, Any]
    ) -> faiss.SearchParameters | None:
        """:meth:`search_parameters` for the kind's own (unwrapped, trained) index."""
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
        storage = self.storage(index)
        if isinstance(storage, FullVectors):  # from a file, it reads only their rows
            return storage.subset_search(q, k, slots)
        # A bare IndexFlat scores only an IDSelectorArray's ids.
        return storage.search(q, k, params=faiss.SearchParameters(sel=faiss.IDSelectorArray(slots)))
