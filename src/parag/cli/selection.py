"""Which ids a ``--filter`` selects, for ``get`` and ``delete``.

The store has no ``get(filter=)`` / ``delete(filter=)`` yet (the records issue adds them);
until then the ids are found through the public API alone: the metadata of the store's ids,
a chunk at a time, goes into a throwaway one-dimensional Flat store, whose search with the
filter is exact and returns every match (``k`` = the chunk's size). The filter language is
thus exactly the store's own. When the store gains ``get(filter=)``, this function becomes
one call to it.
"""

from __future__ import annotations

from typing import Any

import click
import numpy as np

from parag.vectorstore import FAISSVectorStore

CHUNK = 50_000  # ids whose metadata is decoded at a time


def matching_ids(store: FAISSVectorStore, filter_: dict[str, Any]) -> list[int]:
    """The ids of ``store`` whose metadata matches ``filter_``, oldest first.

    Examples
    --------
    >>> store = FAISSVectorStore(dimension=2)
    >>> store.add([[0, 1], [1, 0], [1, 1]], [{"tag": "a"}, {"tag": "b"}, {"tag": "a"}])
    [0, 1, 2]
    >>> matching_ids(store, {"tag": "a"})
    [0, 2]
    """
    ids = store.ids()
    found: list[int] = []
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        sieve = FAISSVectorStore(dimension=1)
        sieve.add(np.zeros((len(chunk), 1), np.float32), store.get(chunk).metadata, ids=chunk)
        found.extend(sieve.search(np.zeros(1, np.float32), k=len(chunk), filter=filter_).ids)
    order = {id_: i for i, id_ in enumerate(ids)}
    return sorted(found, key=order.__getitem__)


def check_selection(ids: tuple[int, ...], filter_: dict[str, Any] | None) -> None:
    """Bad usage unless exactly one of ``ids`` and ``filter_`` is given."""
    if bool(ids) == (filter_ is not None):
        raise click.UsageError("give ids or --filter (exactly one of them)")


def select_ids(store: FAISSVectorStore, ids: tuple[int, ...], filter_: dict[str, Any] | None) -> list[int]:
    """``ids`` as given on the command line, or those ``filter_`` selects."""
    return list(ids) if filter_ is None else matching_ids(store, filter_)
