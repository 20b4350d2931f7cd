"""The document of each vector: one optional string per slot, kept apart from metadata.

A document is the text a vector was embedded from (a chunk, a passage). It is returned by
``get`` and searches, and matched by substring in filters (``{"$document": {"$contains":
"faiss"}}``), but it is not metadata: no filter column is ever built for it, so a long text
costs nothing when a metadata filter is evaluated. Documents are saved as JSON lines
(``documents.<gen>-<tag>.jsonl``, see ``docs/format.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from parag._jsonl import check_utf8, dump_strings, load_strings
from parag.errors import CorruptStoreError, InvalidArgumentError, InvalidTypeError

#: The number of slots, the no-document flag, some slots and their documents (see savepoint).
DocsPoint = tuple[int, bool, list[int], list[str | None]]


def check_documents(documents: Any, n: int, name: str = "documents") -> list[str | None]:
    """One document (a str, or None for none) per vector, checked.

    ``documents`` may be None (no documents), a sequence of ``n`` str-or-None (a list, a
    numpy array of str or object dtype, a pandas Series), or a single str when ``n`` is 1.

    Examples
    --------
    >>> check_documents(["a chunk", None], 2)
    ['a chunk', None]
    >>> check_documents(["a chunk"], 2)
    Traceback (most recent call last):
    ...
    parag.errors.InvalidArgumentError: documents has 1 items but there are 2 vectors
    """
    if documents is None:
        return [None] * n
    if not isinstance(documents, (str, Sequence)) and hasattr(documents, "tolist"):
        documents = documents.tolist()  # a numpy array or a pandas Series: plain str and None
    if isinstance(documents, str):
        if n != 1:
            raise InvalidTypeError(f"{name} must be a list of {n} strings, one per vector, got one str")
        documents = [documents]
    if isinstance(documents, (bytes, dict)) or not isinstance(documents, Sequence):
        raise InvalidTypeError(f"{name} must be a list of strings (one per vector), got {type(documents).__name__}")
    if len(documents) != n:
        raise InvalidArgumentError(f"{name} has {len(documents)} items but there are {n} vectors")
    docs = list(documents)
    for i, d in enumerate(docs):
        if d is not None and not isinstance(d, str):
            raise InvalidTypeError(f"{name}[{i}] must be a str or None, got {type(d).__name__}")
    check_utf8(docs, name)
    return [None if d is None else str(d) for d in docs]


class DocumentStore:
    """The document of every slot (None: none, or a deleted slot)."""

    def __init__(self, documents: list[str | None] | None = None) -> None:
        self._docs: list[str | None] = documents if documents is not None else []
        # True while no slot has ever held a document (most stores): a search's lookup is then
        # a list of Nones. (Deletes do not set it back: it only spares work.)
        self._none = self._docs.count(None) == len(self._docs)

    def __len__(self) -> int:
        return len(self._docs)

    def append(self, documents: list[str | None]) -> None:
        self._docs.extend(documents)
        self._none = self._none and documents.count(None) == len(documents)

    def kill(self, slots: list[int]) -> None:
        for s in slots:
            self._docs[s] = None

    def savepoint(self, slots: list[int]) -> DocsPoint:
        """What :meth:`roll_back` needs to undo the appends, and the kills of ``slots``, that follow."""
        return len(self._docs), self._none, slots, self.get_many(slots)

    def roll_back(self, point: DocsPoint) -> None:
        """Undo the appends made since ``point`` and the kills of its slots."""
        n_slots, self._none, slots, documents = point
        del self._docs[n_slots:]
        for s, d in zip(slots, documents):
            self._docs[s] = d

    def kept(self, mask: np.ndarray) -> DocumentStore:
        """A new store of the slots where ``mask`` is True, renumbered in order (compaction)."""
        return DocumentStore([d for d, k in zip(self._docs, mask.tolist()) if k])

    def get_many(self, slots: list[int]) -> list[str | None]:
        if self._none:
            return [None] * len(slots)
        return list(map(self._docs.__getitem__, slots))  # (no comprehension frame: every search calls this)

    def get_rows(self, slots: np.ndarray) -> list[list[str | None]]:
        """The documents of a 2-D array of slots, row by row."""
        if self._none:  # (a batch of 500 queries' hits: 0.26 ms less)
            return [[None] * slots.shape[1] for _ in range(len(slots))]
        docs = self._docs
        return [[docs[s] for s in row] for row in slots.tolist()]

    def contains(self, text: str) -> np.ndarray:
        """A mask over slots: True where the document contains ``text`` (never where there
        is no document)."""
        return np.fromiter((d is not None and text in d for d in self._docs), bool, len(self._docs))

    def to_jsonl(self) -> bytes:
        """One JSON string (or ``null``) per slot."""
        return dump_strings(self._docs)

    @classmethod
    def from_jsonl(cls, data: bytes, live: np.ndarray, where: str) -> DocumentStore:
        """Documents read back from :meth:`to_jsonl`; ``live`` (a mask over slots) must be
        True wherever a document is present."""
        docs = load_strings(data, len(live), where)
        stray = [s for s, d in enumerate(docs) if d is not None and not live[s]]
        if stray:
            raise CorruptStoreError(f"{where} holds a document for deleted slot {stray[0]}")
        return cls(docs)
