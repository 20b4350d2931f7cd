"""What both framework stores ask of a parag store: hits as rows, MMR over them, relevance
scores in [0, 1], the store created on first add, and the error naming a missing extra."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from parag._validation import as_vectors, check_int, check_k, check_real
from parag.errors import InvalidArgumentError, InvalidTypeError, MissingDependencyError
from parag.mmr import mmr
from parag.vectorstore import FAISSVectorStore
from parag.vectorstore.base import VectorStore

#: The search parameters a framework call may pass through to the parag store.
SEARCH_OPTIONS = ("ef_search", "nprobe")


class Hit(NamedTuple):
    id: Any
    score: float
    document: str | None
    metadata: dict[str, Any]


def missing_dependency(package: str, extra: str) -> MissingDependencyError:
    """The error raised when a framework's import fails: it names the pip command."""
    return MissingDependencyError(f"this parag integration needs {package}: pip install 'parag[{extra}]'")


def str_list(values: Iterable[Any], name: str, what: str = "string ids", none_ok: bool = False) -> list[Any]:
    """``values`` as a list, each a string (or None where ``none_ok``).

    Both frameworks' ids and texts are strings: a bare string would be read as its characters
    (other ids, or texts, than the one given), and a value converted silently would come back
    as another one.

    Examples
    --------
    >>> str_list(("a", "b"), "ids")
    ['a', 'b']
    >>> str_list("ab", "node_ids")
    Traceback (most recent call last):
    ...
    parag.errors.InvalidTypeError: node_ids must be a list of string ids, got the string 'ab': pass ['ab']
    """
    if isinstance(values, (str, bytes)):
        raise InvalidTypeError(f"{name} must be a list of {what}, got the string {values!r}: pass [{values!r}]")
    if not isinstance(values, Iterable):
        raise InvalidTypeError(f"{name} must be a list of {what}, got {type(values).__name__} {values!r}")
    values = list(values)
    for n, value in enumerate(values):
        if not (isinstance(value, str) or (none_ok and value is None)):
            raise InvalidTypeError(
                f"{name}[{n}] is {value!r} ({type(value).__name__}): {name} are strings; pass str() of it to use it as one"
            )
    return values


def new_faiss_store(dimension: int, options: dict[str, Any]) -> FAISSVectorStore:
    """The store a framework store creates when none is given (options as FAISSVectorStore's)."""
    return FAISSVectorStore(dimension=dimension, **options)


def check_store_options(options: dict[str, Any]) -> None:
    """Raise now, not on the first add, for options FAISSVectorStore would refuse."""
    if "dimension" in options:
        raise InvalidArgumentError("the dimension is taken from the embeddings: do not pass dimension")
    new_faiss_store(1, options)


def search_options(options: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of a framework search that go to the parag store."""
    unknown = sorted(set(options) - set(SEARCH_OPTIONS))
    if unknown:
        raise InvalidArgumentError(f"unknown search option(s) {unknown}: the store takes {list(SEARCH_OPTIONS)}")
    return {name: value for name, value in options.items() if value is not None}


def search(store: VectorStore | None, query: npt.ArrayLike, k: int, filter: Any = None, **options: Any) -> list[Hit]:  # noqa: A002
    """The ``k`` best hits for one query vector, best first ([] for a store not yet created)."""
    check_k(k)  # before the empty answer too: k=0 is a mistake whether or not the store holds anything
    if store is None or len(store) == 0:
        return []
    found = store.search(query, k=k, filter=filter, **search_options(options))
    documents = found.documents or [None] * len(found.ids)
    return [Hit(*row) for row in zip(found.ids, found.distances, documents, found.metadata or [{}] * len(found.ids))]


def search_among(
    store: VectorStore | None, query: npt.ArrayLike, ids: list[Any], k: int, filter: Any = None  # noqa: A002
) -> list[Hit]:
    """The ``k`` best of the stored ``ids`` (those matching ``filter``), scored exactly from
    their stored vectors with the store's metric: for restrictions to a few given ids."""
    return _nearest_among(store, query, ids, k, filter)[0]


def _nearest_among(
    store: VectorStore | None, query: npt.ArrayLike, ids: list[Any], k: int, filter: Any  # noqa: A002
) -> tuple[list[Hit], np.ndarray]:
    """:func:`search_among`'s hits and their stored vectors, a row a hit (MMR picks from them)."""
    check_k(k)
    if store is None:
        return [], np.empty((0, 0), np.float32)
    q = as_vectors(query, store.dimension, "query")[0][0].astype(np.float64)
    got = store.get([i for i in dict.fromkeys(ids) if i in store], filter=filter, include_vectors=True)
    if not got.ids:
        return [], np.empty((0, store.dimension), np.float32)
    vectors = got.vectors.astype(np.float64)
    if store.metric == "L2":
        scores, best = ((vectors - q) ** 2).sum(axis=1), 1
    else:  # stored vectors are already unit length in a cosine store
        scores, best = vectors @ (q / (np.linalg.norm(q) or 1.0) if store.metric == "cosine" else q), -1
    order = np.argsort(best * scores, kind="stable")[:k]
    documents = got.documents or [None] * len(got.ids)
    hits = [Hit(got.ids[i], float(scores[i]), documents[i], got.metadata[i]) for i in order.tolist()]
    return hits, got.vectors[order]


def mmr_search(
    store: VectorStore | None,
    query: npt.ArrayLike,
    k: int,
    fetch_k: int,
    lambda_mult: float,
    filter: Any = None,  # noqa: A002
    among: list[Any] | None = None,
    **options: Any,
) -> list[Hit]:
    """``k`` hits picked by maximal marginal relevance from the ``fetch_k`` nearest (of the
    stored ``among`` ids when given, as :func:`search_among`), using their stored vectors."""
    fetch_k = max(check_k(k), check_int(fetch_k, "fetch_k"))
    check_real(lambda_mult, "lambda_mult")  # before the search: an empty result would skip mmr's check
    if among is not None:  # the candidates' vectors come with them: scoring needed them
        candidates, vectors = _nearest_among(store, query, among, fetch_k, filter)
    else:
        candidates = search(store, query, fetch_k, filter, **options)
        if candidates:
            assert store is not None
            vectors = store.get([hit.id for hit in candidates], include_vectors=True).vectors
    if not candidates:
        return []
    return [candidates[i] for i in mmr(query, vectors, k, lambda_mult)]


def relevance_function(metric: str) -> Callable[[float], float]:
    """A store's score mapped to a relevance in [0, 1], 1 the most relevant.

    - ``cosine``: ``(1 + s) / 2``.
    - ``IP``: ``(1 + s) / 2`` clipped to [0, 1]: the cosine mapping, exact for unit vectors.
    - ``L2`` (squared distance ``d``): ``1 - d / 4`` clipped to [0, 1]: for unit vectors
      ``d = 2 - 2 cos``, so this is again ``(1 + cos) / 2``.

    For unit-length embeddings (what most embedding models return) the three metrics thus
    give the same relevance for the same pair of texts.

    Examples
    --------
    >>> [relevance_function(m)(s) for m, s in [("cosine", 0.5), ("IP", 0.5), ("L2", 1.0)]]
    [0.75, 0.75, 0.75]
    """
    if metric == "L2":
        return lambda d: min(1.0, max(0.0, 1.0 - float(d) / 4.0))
    return lambda s: min(1.0, max(0.0, (1.0 + float(s)) / 2.0))
