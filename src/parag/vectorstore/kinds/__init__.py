"""The index kinds a :class:`~parag.vectorstore.FAISSVectorStore` can hold, one module each.

Adding a kind is one new module with an :class:`IndexKind` subclass and one line in
:data:`KINDS`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from parag._faiss_header import MAX_DIMENSION
from parag._validation import check_choice, check_int
from parag.errors import InvalidArgumentError
from parag.vectorstore.kinds.base import FAISS_METRIC, IndexKind
from parag.vectorstore.kinds.flat import Flat
from parag.vectorstore.kinds.hnsw import HNSW
from parag.vectorstore.kinds.ivf import IVFFlat

KINDS: dict[str, type[IndexKind]] = {kind.name: kind for kind in (Flat, IVFFlat, HNSW)}
METRICS = {name.lower(): name for name in FAISS_METRIC}

__all__ = ["KINDS", "METRICS", "IndexKind", "configure"]


def configure(
    dimension: Any, index_type: Any, metric: Any, params: dict[str, Any], auto: Iterable[str] | None = None
) -> IndexKind:
    """The configured kind for a store's constructor arguments (or a manifest's), checked.

    The parameters that follow the store's size are those named in ``auto`` (a manifest's
    record), or else those of the kind's :attr:`~IndexKind.scaled` not in ``params``.

    Examples
    --------
    >>> kind = configure(8, "hnsw", None, {"ef_search": 100})
    >>> kind.name, kind.metric, kind.params
    ('HNSW', 'L2', {'M': 32, 'ef_construction': 40, 'ef_search': 100})
    """
    dimension = check_int(dimension, "dimension", 1, MAX_DIMENSION)  # FAISS's limit
    names = {name.lower(): name for name in KINDS}
    implied: dict[str, str] = {}
    for kind in KINDS.values():
        names.update(dict.fromkeys(kind.aliases, kind.name))
        implied.update({alias.lower(): metric for alias, metric in kind.aliases.items()})
    cls = KINDS[check_choice(index_type, "index_type", names)]
    implied_metric = implied.get(str(index_type).lower())
    metric = check_choice(implied_metric or "L2" if metric is None else metric, "metric", METRICS)
    if implied_metric and metric != implied_metric:
        raise InvalidArgumentError(
            f"index_type {index_type!r} implies metric {implied_metric!r}, but metric={metric!r} was given; "
            f"use index_type={cls.name!r} with metric={metric!r}"
        )
    if auto is None:
        auto = [name for name in cls.scaled if name not in params]
    return cls(dimension, metric, cls.resolve(params, dimension), auto)
