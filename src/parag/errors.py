"""The exceptions parag raises.

Every error is a :class:`ParagError`, so ``except ParagError`` catches anything parag raises
on purpose. Each class also subclasses the builtin exception a Python user would expect
(``ValueError`` for bad values, ``KeyError`` for unknown ids, ``FileNotFoundError`` for a
missing store...), so code written against the builtins keeps working.

A call that raises leaves the store exactly as it was before the call.
"""

from __future__ import annotations

from typing import Self

__all__ = [
    "ParagError",
    "InvalidArgumentError",
    "InvalidTypeError",
    "DimensionMismatchError",
    "InvalidMetadataError",
    "InvalidFilterError",
    "DuplicateIdError",
    "IdNotFoundError",
    "StoreNotFoundError",
    "NotAStoreError",
    "CorruptStoreError",
    "UnsupportedFormatError",
    "ReadOnlyStoreError",
    "StoreClosedError",
    "MissingDependencyError",
    "StoreWriteError",
    "StoreReadError",
    "ReentrantWriteError",
    "UncopyableStoreError",
    "ServerConnectionError",
    "ServerAuthenticationError",
    "ServerError",
    "CollectionMismatchError",
    "UnsupportedOperationError",
    "VectorsNotInMemoryError",
    "VerificationError",
]


class ParagError(Exception):
    """Root of every exception parag raises."""


class InvalidArgumentError(ParagError, ValueError):
    """An argument has a value parag cannot accept (wrong shape, NaN, k <= 0, unknown name...)."""


class InvalidTypeError(InvalidArgumentError, TypeError):
    """An argument has the wrong type (a string where numbers belong, a list where a dict does...)."""


class DimensionMismatchError(InvalidArgumentError):
    """Vectors or queries do not have the store's dimension."""


class InvalidMetadataError(InvalidArgumentError):
    """Metadata is not one JSON-serialisable dict per vector."""


class InvalidFilterError(InvalidArgumentError):
    """A metadata filter is malformed: unknown operator, wrong operand type..."""


class DuplicateIdError(InvalidArgumentError):
    """An id is given twice in one call, or is already in the store."""


class IdNotFoundError(ParagError, KeyError):
    """An id is not in the store."""

    def __str__(self) -> str:
        # KeyError quotes its message; a sentence reads better unquoted.
        return str(self.args[0]) if self.args else ""


class StoreNotFoundError(ParagError, FileNotFoundError):
    """The path to load from does not exist."""


class NotAStoreError(ParagError, ValueError):
    """The path exists but does not hold a parag store (or holds something parag must not touch)."""


class CorruptStoreError(ParagError, ValueError):
    """A saved store is damaged: a file is missing, truncated, or fails its checksum."""


class UnsupportedFormatError(CorruptStoreError):
    """A saved store was written in a format this version of parag cannot read."""


class ReadOnlyStoreError(ParagError, PermissionError):
    """The store was loaded read-only (memory-mapped) and cannot be modified."""


class StoreClosedError(ParagError, ValueError):
    """The store was closed (``close()``, or the end of its ``with`` block) and holds nothing
    to use: load it again. (A ValueError, as for a closed file.)"""


class MissingDependencyError(ParagError, ImportError):
    """An optional dependency is not installed; the message names the pip command."""


class _FileSystemError(ParagError, OSError):
    """A file-system failure: the message names the path and the cause; ``errno`` (and,
    where given, ``filename``) are those of the failed operation."""

    def __str__(self) -> str:
        # OSError would print only "[Errno N] strerror" once errno is set.
        return str(self.args[0]) if self.args else ""

    @classmethod
    def of(cls, e: OSError, message: str, filename: str | None = None) -> Self:
        """``message`` (which names the cause: :func:`cause_of` ``e``) with ``e``'s errno."""
        error = cls(message)
        error.errno, error.strerror, error.filename = e.errno, e.strerror, filename
        return error


class StoreWriteError(_FileSystemError):
    """Writing failed in the file system (disk full, read-only, no permission...): a save, or
    the float32 vectors of a store given ``vectors_dir`` (an unwritable one is found when the
    store is made or loaded). The message names the path and the cause; the store, on disk and
    in memory, is as it was before the call.
    ``errno`` and ``filename`` are those of the failed operation."""


def cause_of(e: OSError) -> str:
    """What went wrong in ``e``, for a message: its strerror, else its text, else its type."""
    return e.strerror or str(e) or type(e).__name__


class StoreReadError(_FileSystemError):
    """A store's files exist but the file system refused to read them (no permission, an I/O
    error...); ``errno`` is that of the failed operation."""


class ReentrantWriteError(ParagError, RuntimeError):
    """User code running inside a store call (a callable filter) tried to change that store."""


class UncopyableStoreError(ParagError, TypeError):
    """A store cannot be pickled (parag never pickles); save it and load it instead."""


class ServerConnectionError(ParagError, ConnectionError):
    """A vector database server (Milvus) cannot be reached: wrong address, down, or too slow."""


class ServerAuthenticationError(ParagError, PermissionError):
    """The server refused the credentials (a wrong or missing token)."""


class ServerError(ParagError, RuntimeError):
    """The server failed a request that parag checked first; the message has the server's words."""


class CollectionMismatchError(InvalidArgumentError):
    """An existing server-side collection has another configuration (dimension, metric, index,
    id kind) than the store asked for, or is not a parag collection."""


class UnsupportedOperationError(ParagError, NotImplementedError):
    """This backend does not offer the operation (e.g. save/load on a server-side store), or
    not here (an add, in a forked child process, to a store whose vectors file it shares)."""


class VectorsNotInMemoryError(UnsupportedOperationError, AttributeError):
    """A compressed store's float32 vectors are in a file (``mmap=True``, ``vectors_dir``),
    which is never mapped, so they have no in-memory ``.array``: read them with ``take``,
    ``blocks`` or ``reconstruct_n``, which work wherever they are. (An AttributeError too:
    ``hasattr(vectors, "array")`` tells where they are.)"""


class VerificationError(ParagError, RuntimeError):
    """A check after a bulk operation (``parag.migrate``) found the result incomplete."""
