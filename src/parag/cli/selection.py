"""Which records ``get`` and ``delete`` act on: ids typed on the command line, or a ``--filter``."""

from __future__ import annotations

from typing import Any

import click

from parag.vectorstore import FAISSVectorStore


def parse_ids(store: FAISSVectorStore, texts: tuple[str, ...]) -> list[int] | list[str]:
    """ID arguments as the store's kind of id: ints for an int store, else the text itself.

    The store does not name its id kind; its first record shows it (``get(limit=1)`` reads one
    id, not all). An empty store takes whatever parses as an int as an int.

    Examples
    --------
    >>> store = FAISSVectorStore(dimension=2)
    >>> store.add([[0, 1]], ids=["7"])
    ['7']
    >>> parse_ids(store, ("7", "x"))
    ['7', 'x']
    >>> parse_ids(FAISSVectorStore(dimension=2), ("7",))
    [7]
    """
    first = store.get(limit=1).ids
    if first and isinstance(first[0], str):
        return list(texts)
    try:
        return [int(t) for t in texts]
    except ValueError:
        return list(texts)  # the store refuses them with its own message (ids of the other kind)


def check_selection(ids: tuple[str, ...], filter_: dict[str, Any] | None) -> None:
    """Bad usage unless exactly one of ``ids`` and ``filter_`` is given."""
    if bool(ids) == (filter_ is not None):
        raise click.UsageError("give ids or --filter (exactly one of them)")
