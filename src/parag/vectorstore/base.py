"""The contract every parag vector store implements, whatever engine is underneath.

:class:`VectorStore` declares the whole public API; :class:`SearchResult` and
:class:`GetResult` are what its reads return. A backend subclasses it and implements every
abstract method with these signatures and these semantics, and joins the conformance suite
by adding a store factory to the tests.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn, Self, TypeVar

import numpy as np
import numpy.typing as npt

from parag._ids import Ids
from parag.errors import StoreClosedError, UncopyableStoreError

if TYPE_CHECKING:  # (parag.tuning's FAISS half reads the FAISS state, which reads this module)
    from parag.tuning import TuneResult

#: One metadata dict per vector, a single dict for a single vector, or None for ``{}``.
Metadata = list[dict[str, Any] | None] | dict[str, Any] | None
#: One document (str, or None for none) per vector, or a single str for a single vector.
Documents = list[str | None] | str | None
S = TypeVar("S", bound="VectorStore")


class _WithDocuments:
    """A result's ``documents``: an attribute beside the tuple's three fields, so that the
    result still unpacks to three parts."""

    documents: list[Any] | None = None  # (what ``_make`` leaves: it builds the tuple alone)

    def __getnewargs__(self) -> tuple[Any, ...]:
        return (*self, self.documents)  # type: ignore[misc]

    def _replace(self, **changes: Any) -> Self:
        """The named tuple's ``_replace``, keeping ``documents`` (or taking ``documents=``)."""
        documents = changes.pop("documents", self.documents)
        result: Self = super()._replace(**changes)  # type: ignore[misc]
        result.documents = documents
        return result

    def __eq__(self, other: object) -> bool:
        # Two results differ when their documents do; a plain tuple compares by its three parts.
        if isinstance(other, _WithDocuments) and self.documents != other.documents:
            return False
        return tuple.__eq__(self, other)  # type: ignore[arg-type]

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, documents={self.documents!r})"


class _Hits(NamedTuple):
    distances: list[Any]
    ids: list[Any]
    metadata: list[Any] | None


class SearchResult(_WithDocuments, _Hits):
    """What :meth:`VectorStore.search` returns; unpacks as ``dist, ids, metadata``.

    For one query, lists of the same length, best hit first. For a batch of queries, one
    such list per query. ``documents`` (an attribute, not a fourth part: unpacking gives
    three) holds each hit's document, None where it has none. ``metadata`` / ``documents``
    are None when the search's ``include`` left them out. :meth:`records` gives rows.
    """

    def __new__(
        cls, distances: list[Any], ids: list[Any], metadata: list[Any] | None, documents: list[Any] | None = None
    ) -> SearchResult:
        # tuple.__new__ as the named tuple's own __new__ does, without its Python call (every search builds one)
        self = tuple.__new__(cls, (distances, ids, metadata))
        self.documents = documents
        return self

    def records(self) -> list[Any]:
        """The hits as dicts ``{"id", "score", "document", "metadata"}``, best first: a list
        for one query, a list of such lists for a batch.

        Examples
        --------
        >>> SearchResult([0.5], ["a"], [{"p": 1}], ["text"]).records()
        [{'id': 'a', 'score': 0.5, 'document': 'text', 'metadata': {'p': 1}}]
        """
        batch = bool(self.ids) and isinstance(self.ids[0], list)
        if not batch:
            return _records(self.ids, self.distances, self.metadata, self.documents)
        return [
            _records(ids, dist, _row(self.metadata, q), _row(self.documents, q))
            for q, (ids, dist) in enumerate(zip(self.ids, self.distances))
        ]


class _Rows(NamedTuple):
    ids: list[Any]
    metadata: list[dict[str, Any]] | None
    vectors: np.ndarray | None


class GetResult(_WithDocuments, _Rows):
    """What :meth:`VectorStore.get` returns; unpacks as ``ids, metadata, vectors``.

    ``vectors`` is an ``(n, dimension)`` float32 array with ``include_vectors=True``, else
    None. ``documents`` (an attribute) holds each id's document, None where it has none.
    ``metadata`` / ``documents`` are None when ``include`` left them out. :meth:`records`
    gives rows.
    """

    def __new__(
        cls,
        ids: list[Any],
        metadata: list[dict[str, Any]] | None,
        vectors: np.ndarray | None,
        documents: list[Any] | None = None,
    ) -> GetResult:
        self = super().__new__(cls, ids, metadata, vectors)
        self.documents = documents
        return self

    def records(self) -> list[dict[str, Any]]:
        """The rows as dicts ``{"id", "document", "metadata"}`` (and ``"vector"`` when vectors
        were asked for).

        Examples
        --------
        >>> GetResult(["a"], [{"p": 1}], None, ["text"]).records()
        [{'id': 'a', 'document': 'text', 'metadata': {'p': 1}}]
        """
        rows = _records(self.ids, None, self.metadata, self.documents)
        if self.vectors is not None:
            for row, vector in zip(rows, self.vectors):
                row["vector"] = vector
        return rows


def _row(values: list[Any] | None, q: int) -> list[Any] | None:
    return None if values is None else values[q]


def _records(
    ids: list[Any], scores: list[float] | None, metadata: list[Any] | None, documents: list[Any] | None
) -> list[dict[str, Any]]:
    """One dict per id; a part that was not included is None in every row."""
    n = len(ids)
    columns = {
        "id": ids,
        "score": scores,
        "document": [None] * n if documents is None else documents,
        "metadata": [None] * n if metadata is None else metadata,
    }
    if scores is None:
        del columns["score"]
    return [dict(zip(columns, row)) for row in zip(*columns.values())]


class Closed:
    """What a closed store holds in place of its state: every attribute or item asked of it
    raises StoreClosedError with ``message``. A store whose every method and property reads
    that state first needs no other check to refuse use after :meth:`VectorStore.close`.

    Examples
    --------
    >>> state = Closed("this store is closed; open it again")
    >>> state.index
    Traceback (most recent call last):
    ...
    parag.errors.StoreClosedError: this store is closed; open it again
    """

    def __init__(self, message: str) -> None:
        self.message = message

    def __getattr__(self, name: str) -> NoReturn:  # (only called for names it does not have)
        raise StoreClosedError(self.message)

    def __getitem__(self, key: object) -> NoReturn:
        raise StoreClosedError(self.message)


class VectorStore(abc.ABC):
    """A collection of vectors, each with an id (all ints or all strings), a metadata dict and
    an optional document (its text), searchable by similarity.

    Scores: with metric ``"L2"`` the squared Euclidean distance (smaller is closer); with
    ``"IP"`` the inner product and with ``"cosine"`` the cosine similarity (larger is closer).
    Every method validates its input first and raises a :class:`parag.ParagError` that names
    the bad argument; a call that raises leaves the store as it was. Reads may run in many
    threads at once; writes run alone. :meth:`close` (or the end of a ``with`` block)
    releases what the store holds; every use after it raises StoreClosedError.
    """

    # ----------------------------------------------------------------- properties

    @property
    @abc.abstractmethod
    def dimension(self) -> int:
        """Length of every vector in the store."""

    @property
    @abc.abstractmethod
    def metric(self) -> str:
        """``"L2"``, ``"IP"`` or ``"cosine"``."""

    @property
    @abc.abstractmethod
    def params(self) -> dict[str, int]:
        """The engine's parameters in force (a copy)."""

    @property
    def auto_params(self) -> frozenset[str]:
        """The names in :attr:`params` nobody set: their values follow the store's size.
        A copy of the store gets the same by leaving them out of its constructor's arguments.
        Empty for a backend whose parameters are all fixed."""
        return frozenset()

    @property
    @abc.abstractmethod
    def read_only(self) -> bool:
        """True when writes raise ReadOnlyStoreError."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of vectors in the store."""

    @abc.abstractmethod
    def __contains__(self, id_: object) -> bool:
        """Whether a vector with this id is stored."""

    def __deepcopy__(self, memo: dict[int, Any]) -> VectorStore:
        return self.__copy__()

    def __copy__(self) -> VectorStore:
        """An independent store (``copy.copy`` and ``copy.deepcopy`` alike)."""
        raise NotImplementedError

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise UncopyableStoreError(
            f"a {type(self).__name__} cannot be pickled: parag never pickles (loading a pickle can "
            f"run code). Save it with store.save(path) and load it with {type(self).__name__}.load(path), "
            "or copy it in memory with copy.deepcopy(store)"
        )

    # ----------------------------------------------------------------- writing

    @abc.abstractmethod
    def add(
        self, vectors: npt.ArrayLike, metadata: Metadata = None, ids: Ids | None = None, documents: Documents = None
    ) -> list[int] | list[str]:
        """Add vectors (one 1-D or many 2-D) with optional metadata, new ids and documents;
        return their ids."""

    @abc.abstractmethod
    def upsert(
        self, ids: Ids, vectors: npt.ArrayLike, metadata: Metadata = None, documents: Documents = None
    ) -> list[int] | list[str]:
        """Insert vectors under ``ids``, replacing the vector, metadata and document of ids
        already stored."""

    @abc.abstractmethod
    def update_metadata(self, ids: Ids, metadata: Metadata) -> None:
        """Replace the metadata of stored ids (the vectors stay); all ids must exist."""

    @abc.abstractmethod
    def delete(self, ids: Ids | None = None, *, filter: Any = None, missing_ok: bool = False) -> int:  # noqa: A002
        """Remove vectors by id, or those matching ``filter`` (exactly one of the two); return
        how many were removed."""

    # ----------------------------------------------------------------- reading

    @abc.abstractmethod
    def search(
        self, query: npt.ArrayLike, k: int = 10, *, filter: Any = None  # noqa: A002
    ) -> SearchResult:
        """The ``k`` nearest stored vectors to a query (1-D) or to each of a batch (2-D),
        among those whose metadata (or document) matches ``filter`` (see :mod:`parag.filters`).
        Backends may take keyword-only search parameters too (``ef_search``, ``nprobe``,
        ``include``)."""

    @abc.abstractmethod
    def get(
        self,
        ids: Ids | None = None,
        *,
        filter: Any = None,  # noqa: A002
        limit: int | None = None,
        offset: int = 0,
        include_vectors: bool = False,
    ) -> GetResult:
        """Metadata and documents (and, with ``include_vectors``, the vectors) of ``ids`` in
        order, of the vectors matching ``filter``, or of every vector; a page of them with
        ``limit`` / ``offset``."""

    @abc.abstractmethod
    def ids(self) -> list[int] | list[str]:
        """Every stored id, in insertion order."""

    @abc.abstractmethod
    def tune(
        self, queries: npt.ArrayLike | None = None, target_recall: float = 0.95, k: int = 10, *,
        n_samples: int = 200, seed: int = 0,
    ) -> TuneResult:
        """Make the smallest ``ef_search`` (HNSW) / ``nprobe`` (IVFFlat) whose recall@k,
        measured against exact search on ``queries`` (or ``n_samples`` stored vectors), reaches
        ``target_recall`` the store's default, and say what was measured (see
        :mod:`parag.tuning`); an exact store has nothing to tune (``param`` None)."""

    # ----------------------------------------------------------------- persistence

    @abc.abstractmethod
    def save(self, path: str | Path) -> None:
        """Write the store to the directory ``path``."""

    @classmethod
    @abc.abstractmethod
    def load(cls: type[S], path: str | Path) -> S:
        """A store read back from the directory ``path`` (backends may also load into an
        instance: ``store.load(path)``)."""

    # ----------------------------------------------------------------- lifetime

    @property
    @abc.abstractmethod
    def closed(self) -> bool:
        """True once :meth:`close` has run."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release what the store holds now (open files, a server connection), rather than
        when it is garbage collected.

        Afterwards every method and property but ``closed`` raises StoreClosedError (also a
        ValueError). Closing a closed store does nothing. A ``with`` block closes its store at
        its end, also when the block raises.

        Examples
        --------
        >>> from parag.vectorstore import FAISSVectorStore
        >>> with FAISSVectorStore(dimension=2) as store:
        ...     ids = store.add([[1.0, 0.0]])
        >>> store.closed, ids
        (True, [0])
        >>> store.close()  # again: nothing to do
        >>> store.search([1.0, 0.0])
        Traceback (most recent call last):
        ...
        parag.errors.StoreClosedError: this store is closed (close(), or the end of its with block); load it again to use it: FAISSVectorStore.load(path), or store.load(path) on this one
        """

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
