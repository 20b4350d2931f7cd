"""The contract every parag vector store implements, whatever engine is underneath.

:class:`VectorStore` declares the whole public API; :class:`SearchResult` and
:class:`GetResult` are what its reads return. A backend subclasses it and implements every
abstract method with these signatures and these semantics, and joins the conformance suite
by adding a store factory to the tests.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt

from parag.errors import UncopyableStoreError

#: One metadata dict per vector, a single dict for a single vector, or None for ``{}``.
Metadata = list[dict[str, Any] | None] | dict[str, Any] | None
S = TypeVar("S", bound="VectorStore")


class SearchResult(NamedTuple):
    """What :meth:`VectorStore.search` returns; unpacks as ``dist, ids, metadata``.

    For one query, three lists of the same length, best hit first. For a batch of queries,
    three lists with one such list per query.
    """

    distances: list[Any]
    ids: list[Any]
    metadata: list[Any]


class GetResult(NamedTuple):
    """What :meth:`VectorStore.get` returns: ids, their metadata, and their vectors
    (an ``(n, dimension)`` float32 array with ``include_vectors=True``, else None)."""

    ids: list[int]
    metadata: list[dict[str, Any]]
    vectors: np.ndarray | None


class VectorStore(abc.ABC):
    """A collection of vectors, each with an int id and a metadata dict, searchable by similarity.

    Scores: with metric ``"L2"`` the squared Euclidean distance (smaller is closer); with
    ``"IP"`` the inner product and with ``"cosine"`` the cosine similarity (larger is closer).
    Every method validates its input first and raises a :class:`parag.ParagError` that names
    the bad argument; a call that raises leaves the store as it was. Reads may run in many
    threads at once; writes run alone.
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
    def add(self, vectors: npt.ArrayLike, metadata: Metadata = None, ids: npt.ArrayLike | None = None) -> list[int]:
        """Add vectors (one 1-D or many 2-D) with optional metadata and new ids; return their ids."""

    @abc.abstractmethod
    def upsert(self, ids: npt.ArrayLike, vectors: npt.ArrayLike, metadata: Metadata = None) -> list[int]:
        """Insert vectors under ``ids``, replacing the vector and metadata of ids already stored."""

    @abc.abstractmethod
    def update_metadata(self, ids: npt.ArrayLike, metadata: Metadata) -> None:
        """Replace the metadata of stored ids (the vectors stay); all ids must exist."""

    @abc.abstractmethod
    def delete(self, ids: npt.ArrayLike, *, missing_ok: bool = False) -> int:
        """Remove vectors by id; return how many were removed."""

    # ----------------------------------------------------------------- reading

    @abc.abstractmethod
    def search(
        self, query: npt.ArrayLike, k: int = 10, *, filter: Any = None  # noqa: A002
    ) -> SearchResult:
        """The ``k`` nearest stored vectors to a query (1-D) or to each of a batch (2-D),
        among those whose metadata matches ``filter`` (see :mod:`parag.filters`).
        Backends may take keyword-only search parameters too (``ef_search``, ``nprobe``)."""

    @abc.abstractmethod
    def get(self, ids: npt.ArrayLike, *, include_vectors: bool = False) -> GetResult:
        """Metadata (and, with ``include_vectors``, the vectors) of ``ids``, in order."""

    @abc.abstractmethod
    def ids(self) -> list[int]:
        """Every stored id, in insertion order."""

    # ----------------------------------------------------------------- persistence

    @abc.abstractmethod
    def save(self, path: str | Path) -> None:
        """Write the store to the directory ``path``."""

    @classmethod
    @abc.abstractmethod
    def load(cls: type[S], path: str | Path) -> S:
        """A store read back from the directory ``path`` (backends may also load into an
        instance: ``store.load(path)``)."""
