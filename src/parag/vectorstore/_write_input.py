"""The checks of a write's input beyond the vectors' shape (``add``, ``upsert``): the vectors'
values, and the ids, metadata and documents, one per vector.

Each returns ``(ids, encoded metadata, documents)`` and raises the first problem it finds, in
the order the method has always reported them: the vectors' values first, then the add's
metadata, documents, ids, or the upsert's ids, metadata, documents.
"""

from __future__ import annotations

import numpy as np

from parag._ids import Ids, as_store_ids
from parag._validation import values_check
from parag.documents import check_documents
from parag.errors import InvalidArgumentError
from parag.metadata import Encoded, encode_metadata
from parag.vectorstore.base import Documents, Metadata

Checked = tuple["np.ndarray | None", Encoded, "list[str | None]"]


def checked_add(x: np.ndarray, metadata: Metadata, ids: Ids | None, documents: Documents, background: bool) -> Checked:
    """An add's input (``x``: converted, values unchecked); ids None: to generate.
    ``background``: as in :class:`~parag._validation.values_check` (False while FAISS adds
    ``x`` on the second core)."""
    with values_check(x, "vectors", background):  # (a large batch is checked while the rest is)
        encoded = encode_metadata(metadata, len(x))
        docs = check_documents(documents, len(x))
        return None if ids is None else ids_for(ids, len(x)), encoded, docs


def checked_upsert(x: np.ndarray, metadata: Metadata, ids: Ids, documents: Documents, background: bool) -> Checked:
    """An upsert's input, as :func:`checked_add`'s (the ids are checked first)."""
    with values_check(x, "vectors", background):
        given = ids_for(ids, len(x))
        return given, encode_metadata(metadata, len(x)), check_documents(documents, len(x))


def ids_for(ids: Ids, n: int) -> np.ndarray:
    """``ids`` checked as unique ids of one kind, one for each of ``n`` vectors."""
    given = as_store_ids(ids, None)
    if len(given) != n:
        raise InvalidArgumentError(f"ids has {len(given)} items but there are {n} vectors")
    return given
