"""The API every parag vector store shares, whatever engine is underneath."""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable
from typing import Any, Generic, NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt

T = TypeVar("T")


class SearchResult(NamedTuple):
    """What :meth:`VectorStore.search` returns; unpacks as ``dist, ids, metadata``.

    For one query, three lists of the same length, best hit first. For a batch of queries,
    three lists with one such list per query.
    """

    distances: list[Any]
    ids: list[Any]
    metadata: list[Any]


class hybridmethod(Generic[T]):
    """A method that receives the class when called on the class, the instance otherwise.

    ``Store.load(path)`` builds a new store; ``store.load(path)`` loads into ``store``.
    """

    def __init__(self, func: Callable[..., T]) -> None:
        self.func = func
        functools.update_wrapper(self, func)  # type: ignore[arg-type]

    def __get__(self, obj: Any, cls: type) -> Callable[..., T]:
        return functools.partial(self.func, cls if obj is None else obj)


class VectorStore(abc.ABC):
    """A collection of vectors, each with an int id and a metadata dict, searchable by similarity.

    Scores: with metric ``"L2"`` the squared Euclidean distance (smaller is closer); with
    ``"IP"`` the inner product and with ``"cosine"`` the cosine similarity (larger is closer).
    """

    @property
    @abc.abstractmethod
    def dimension(self) -> int:
        """Length of every vector in the store."""

    @property
    @abc.abstractmethod
    def metric(self) -> str:
        """``"L2"``, ``"IP"`` or ``"cosine"``."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of vectors in the store."""

    @abc.abstractmethod
    def __contains__(self, id_: object) -> bool:
        """Whether a vector with this id is stored."""

    @abc.abstractmethod
    def add(
        self,
        vectors: npt.ArrayLike,
        metadata: list[dict[str, Any] | None] | dict[str, Any] | None = None,
        ids: npt.ArrayLike | None = None,
    ) -> list[int]:
        """Add vectors (one 1-D or many 2-D) with optional metadata and ids; return their ids."""

    @abc.abstractmethod
    def search(self, query: npt.ArrayLike, k: int = 10, **kwargs: Any) -> SearchResult:
        """The ``k`` nearest stored vectors to a query (1-D) or to each of a batch (2-D)."""

    @abc.abstractmethod
    def delete(self, ids: npt.ArrayLike, *, missing_ok: bool = False) -> int:
        """Remove vectors by id; return how many were removed."""

    @abc.abstractmethod
    def get(
        self, ids: npt.ArrayLike, *, include_vectors: bool = False
    ) -> list[dict[str, Any]] | tuple[list[dict[str, Any]], np.ndarray]:
        """Metadata of ``ids`` (and their vectors with ``include_vectors=True``)."""

    @abc.abstractmethod
    def ids(self) -> list[int]:
        """Every stored id, in insertion order."""

    @abc.abstractmethod
    def save(self, path: str) -> None:
        """Write the store to the directory ``path``."""
