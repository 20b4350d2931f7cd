"""The stores the conformance suite runs over: one :class:`StoreKind` per configuration.

Every test in ``tests/conformance/`` takes the ``make_store`` fixture (see ``conftest.py``)
and runs once per kind in :data:`DEFAULT_KINDS` (or the kinds its ``kinds`` marker names).
A new backend joins the suite by adding its kinds to :data:`KINDS`: a factory for an empty
store and the capabilities it declares (a test that needs one, e.g. ``exact`` or
``persistent``, runs only over the kinds that declare it). Tests read only the public store API, plus the
optional white-box hooks a kind declares (``held``), which hold every backend-specific
detail the suite checks in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from parag.vectorstore import FAISSVectorStore
from parag.vectorstore.kinds import KINDS as INDEX_KINDS


@dataclass(frozen=True, eq=False)  # hashable by identity: a cache key
class StoreKind:
    """One backend configuration; calling it builds an empty store.

    Attributes
    ----------
    name : the test id.
    store_class : the store's class (its ``load`` reads a saved store back).
    build : ``(dimension, metric) -> store``, an empty store.
    exact : its default searches return the exact top-k (checked against the oracle).
    persistent : it saves to a directory and loads back (``store.save``, ``cls.load``).
    trains_at : the number of vectors (tombstones included) at which ``is_trained`` turns
        True; ``None`` when the kind needs no training (``is_trained`` is always True).
    held : the number of vector slots the index holds, tombstones included (white box:
        the compaction checks); ``None`` when the backend does not expose it.
    compact_at : share of dead slots above which a delete compacts (with ``held``).
    starved : per-search overrides under which an approximate search finds too few
        allowed vectors (the store must still return complete results).
    wide : per-search overrides under which an approximate kind searches (nearly)
        exhaustively.
    callable_filters : filters may be (or hold) Python callables; where not (Milvus: the
        server cannot run them), such filters raise InvalidFilterError.
    server : the kind needs the session's Milvus server (the ``milvus`` fixture).
    max_id : the largest int id it stores (Milvus 2.3: 2**63 - 2, its key 2**63 - 1 is never
        found again).
    metrics : the metrics its metric-parametrized tests run with; None: every one. (Every
        call to a server is a round trip: the Milvus kinds share the metrics out.)
    gated : ``(store, gate) -> search keyword arguments`` under which a search calls
        ``gate()`` midway (to hold a search under way); a callable filter where the kind takes
        them, else a white-box wrapper around the server connection.
    """

    name: str
    store_class: type = field(repr=False)
    build: Callable[[int, str], Any] = field(repr=False)
    exact: bool
    persistent: bool = True
    trains_at: int | None = None
    held: Callable[[Any], int] | None = field(default=None, repr=False)
    compact_at: float | None = None
    starved: tuple[dict[str, int], ...] = ()
    wide: dict[str, int] = field(default_factory=dict)
    server: bool = False
    metrics: tuple[str, ...] | None = None
    max_id: int = 2**63 - 1
    callable_filters: bool = True
    gated: Callable[[Any, Callable[[], None]], dict[str, Any]] = field(
        default=lambda store, gate: {"filter": lambda meta: gate() or True}, repr=False)

    def __call__(self, dimension: int, metric: str = "L2") -> Any:
        return self.build(dimension, metric)

    def load(self, path: Any) -> Any:
        """The store saved at ``path``, read back by this kind's class."""
        return self.store_class.load(path)

    def expect_trained(self, store: Any, slots: int) -> None:
        """``store.is_trained`` is what this kind promises after ``slots`` vectors."""
        if self.trains_at is not None:
            assert store.is_trained == (slots >= self.trains_at), (self.name, slots)


def _faiss(name: str, index_type: str, params: dict[str, Any], exact: bool, *,
           trains_at: int | None = None, starved: tuple[dict[str, int], ...] = (),
           wide: dict[str, int] | None = None) -> StoreKind:
    return StoreKind(
        name=name,
        store_class=FAISSVectorStore,
        build=lambda dimension, metric: FAISSVectorStore(dimension, index_type, metric, **params),
        exact=exact,
        trains_at=trains_at,
        held=lambda store: store.faiss_index.ntotal,  # white box: FAISS slots, tombstones included
        compact_at=INDEX_KINDS[index_type].compact_at,
        starved=starved,
        wide=wide or {},
    )


def _milvus(name: str, index_type: str, params: dict[str, int], exact: bool, metrics: tuple[str, ...], *,
            starved: tuple[dict[str, int], ...] = (), wide: dict[str, int] | None = None) -> StoreKind:
    from parag.vectorstore import MilvusVectorStore
    from tests.milvus_support import POOL

    return StoreKind(
        name=name,
        store_class=MilvusVectorStore,
        build=lambda dimension, metric: POOL.store(dimension, index_type, metric, **params),
        exact=exact,
        starved=starved,
        wide=wide or {},
        # The server persists a collection as it is written: save/load raise
        # UnsupportedOperationError (tests/test_milvus.py), so the round trips do not apply.
        persistent=False,
        server=True,
        metrics=metrics,
        max_id=2**63 - 2,
        callable_filters=False,
        gated=_gate_requests,
    )


class _GatedClient:
    """A pymilvus client whose searches and queries call ``gate()`` before going out."""

    def __init__(self, client: Any, gate: Callable[[], None]) -> None:
        self._client, self._gate = client, gate

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name not in ("search", "query"):
            return attribute

        def gated(*args: Any, **kwargs: Any) -> Any:
            self._gate()
            return attribute(*args, **kwargs)
        return gated


def _gate_requests(store: Any, gate: Callable[[], None]) -> dict[str, Any]:
    """White box: the store's read requests call ``gate()`` first (Milvus has no callable filters)."""
    store._server.client = _GatedClient(store._server.client, gate)
    return {}


KINDS: dict[str, StoreKind] = {k.name: k for k in (
    _faiss("Flat", "Flat", {}, True),
    # nlist 256 needs 9,984 vectors: stays untrained, answering exactly from a flat index
    _faiss("IVF-untrained", "IVFFlat", {}, True, trains_at=39 * 256),
    # trained at 39 * 4 = 156 vectors; its default nprobe (min(64, nlist)) probes every
    # list, so its answers must be exact too
    _faiss("IVF4", "IVFFlat", {"nlist": 4}, True, trains_at=39 * 4, starved=({"nprobe": 1},)),
    # the same at 624 vectors (the threads tests train it while searches run)
    _faiss("IVF16", "IVFFlat", {"nlist": 16}, True, trains_at=39 * 16, starved=({"nprobe": 1},)),
    # trained at 4,992: probes 64 of 128 lists (only the 5,000-vector tests train it)
    _faiss("IVF128", "IVFFlat", {"nlist": 128}, False, trains_at=39 * 128, starved=({"nprobe": 1},),
           wide={"nprobe": 128}),
    # one list: trains at 39 vectors, then probes it: exact before and after training
    _faiss("IVF1", "IVFFlat", {"nlist": 1}, True, trains_at=39),
    _faiss("HNSW", "HNSW", {}, False, starved=({"ef_search": 1}, {"ef_search": 8}), wide={"ef_search": 2048}),
    # Compressed storage, re-ranked with the float32 copy: sq8 trains at 1,000 vectors
    _faiss("HNSW-sq8", "HNSW", {"storage": "sq8"}, False, trains_at=1000,
           starved=({"ef_search": 1}, {"ef_search": 8}), wide={"ef_search": 2048, "rerank": 20}),
    _faiss("Flat-float16", "Flat", {"storage": "float16"}, False, wide={"rerank": 20}),
    _faiss("IVF4-sq8", "IVFFlat", {"nlist": 4, "storage": "sq8"}, False, trains_at=1000,
           starved=({"nprobe": 1},), wide={"rerank": 20}),
    # A real Milvus server (tests/milvus_server.py): FLAT is exact, HNSW and IVF_FLAT
    # approximate. These tests never flush, and the test server gives growing segments no
    # interim index, so Milvus answers them by brute force whatever the index: the kinds differ
    # in the parameters they take and pass on (ef, nprobe) and in their collections' schema.
    # Their indexes are searched, flushed, in tests/test_milvus_search.py. Each metric runs
    # on one kind: every call is a round trip to the server.
    _milvus("Milvus-Flat", "Flat", {}, True, ("L2",)),
    _milvus("Milvus-Flat-IP", "Flat", {}, True, ("IP",)),
    _milvus("Milvus-HNSW", "HNSW", {"M": 16}, False, ("cosine",), starved=({"ef_search": 1},),
            wide={"ef_search": 2048}),
    _milvus("Milvus-IVF", "IVFFlat", {"nlist": 16}, False, ("L2",), starved=({"nprobe": 1},),
            wide={"nprobe": 16}),
)}

# Every FAISS index type, IVF both before and after training, and compressed storage (pq,
# which trains at 9,984 vectors, is in tests/test_storage.py).
DEFAULT_KINDS = ("Flat", "IVF-untrained", "IVF4", "HNSW", "HNSW-sq8", "Flat-float16", "IVF4-sq8")
# The 5,000-vector tests add the approximate IVF.
WITH_APPROX_IVF = (*DEFAULT_KINDS, "IVF128")
# The Milvus kinds join the modules below. Milvus-Flat (L2) runs every test of each: the
# store's own code (input checks, records, lifecycle, threads) is the same whatever the index
# or metric. The other kinds run where search results are checked (test_oracle): IP and
# cosine scores, and HNSW's and IVF's parameters. Not here, with the reason:
# - test_filters and test_lifecycle on HNSW / IP: unflushed, HNSW answers by brute force as
#   Flat does (above), and the metric only changes scores, which test_oracle checks; the
#   filtered index search is tested flushed in tests/test_milvus_search.py, the translation
#   of every operator in tests/test_milvus_filters.py and test_filters on Milvus-Flat.
# - test_persistence needs "persistent": not Milvus.
# - test_lifecycle_properties (random lifecycles) took 140 s per metric on the server, and
#   checks the store's bookkeeping, which test_lifecycle and test_records cover on Milvus-Flat.
MILVUS_KINDS = {
    "test_close": ("Milvus-Flat",),
    "test_errors": ("Milvus-Flat",),
    "test_filters": ("Milvus-Flat",),
    "test_lifecycle": ("Milvus-Flat",),
    "test_oracle": ("Milvus-Flat", "Milvus-Flat-IP", "Milvus-HNSW", "Milvus-IVF"),
    "test_records": ("Milvus-Flat",),
    "test_threads": ("Milvus-Flat",),
    "test_tune": ("Milvus-Flat", "Milvus-HNSW", "Milvus-IVF"),
}
