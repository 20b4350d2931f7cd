"""Saving, loading and closing a :class:`~parag.vectorstore.FAISSVectorStore`: ``save``,
``load``, ``close`` (and ``with``).

:class:`FAISSSaveLoad` is the store's face to its directory: it takes the lock, and on
``load`` makes a store around the state read, or swaps an existing store's state for it;
``close`` swaps in a closed state instead, releasing the files a load (or ``vectors_dir``) opened.
What the files are and how they are checked belongs to :mod:`parag.vectorstore.faiss_format`
(and :mod:`parag.persistence`, the atomic, checksummed container; ``docs/format.md``).
``FAISSVectorStore`` inherits it, as it does :class:`~parag.vectorstore.faiss_reads.FAISSReads`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Self, cast

import parag.vectorstore.faiss_format as faiss_format
from parag._hybrid import hybridmethod
from parag._locks import RWLock
from parag._validation import check_bool
from parag.vectorstore._faiss_state import FAISSState
from parag.vectorstore.base import Closed

__all__ = ["FAISSSaveLoad"]


# A closed store's state: any use raises (it stands in for a FAISSState).
_CLOSED = cast(FAISSState, Closed(
    "this store is closed (close(), or the end of its with block); load it again to use it: "
    "FAISSVectorStore.load(path), or store.load(path) on this one"
))


class FAISSSaveLoad:
    """``save``, ``load``, ``close`` and ``closed`` of a FAISS store (``with`` comes from
    :class:`~parag.vectorstore.base.VectorStore`): its subclass sets ``_state`` (a
    :class:`FAISSState`) and ``_lock`` (the store's reader-writer lock)."""

    _state: FAISSState
    _lock: RWLock

    def save(self, path: str | Path) -> None:
        """Write the store to the directory ``path``, atomically.

        The directory holds the complete old store until the new one is complete and
        fsynced, then the complete new one (``docs/format.md`` describes the files and the
        commit protocol). Every byte is hashed (XXH3-128) as it is written. Searches may run
        while a save does; writes wait for it.

        Raises
        ------
        NotAStoreError
            ``path`` is a file, or a non-empty directory that is not a parag store: nothing
            of it is touched.
        UnsupportedFormatError
            ``path`` holds a store written by a newer parag, in a format this one cannot
            read: upgrade parag, or save elsewhere. Nothing of it is touched.
        StoreWriteError
            Writing failed (disk full, read-only file system...); also an OSError. The old
            store, if any, is left as it was, and a directory the save created is removed.
        """
        with self._lock.read():
            faiss_format.save(path, self._state)

    @hybridmethod
    def load(
        target: type[Self] | Self,  # noqa: N805 - class or instance
        path: str | Path,
        *,
        verify: bool = True,
        mmap: bool = False,
        vectors_dir: str | os.PathLike[str] | None = None,
    ) -> Self:
        """Load a saved store.

        ``FAISSVectorStore.load(path)`` returns a new store; ``store.load(path)`` replaces
        the contents of ``store`` and returns it.

        Parameters
        ----------
        path : str or Path
            A directory written by :meth:`save`.
        verify : bool, default True
            Check the checksum of every block of every file before FAISS or parag parses
            it. False skips hashing and checks only sizes and counts: faster on large
            stores, but damaged bytes may then load silently or fail later.
        mmap : bool, default False
            Map the index file (and a compressed store's vectors file) into memory instead
            of reading them: they take almost no RAM (the OS pages them in as searches touch
            them; an HNSW graph is read into RAM) and the store is read-only:
            ``add``, ``delete``, ``upsert``, ``update_metadata`` and ``compact`` raise
            ReadOnlyStoreError (FAISS would abort the process if a mapped index were
            modified). Searching, ``get``, ``save`` and ``tune`` work. With ``verify`` the
            index file is read once to check it before it is mapped.
        vectors_dir : str or PathLike, optional
            Without ``mmap``: a compressed store's float32 vectors go to a file there, not
            RAM, as with the constructor's ``vectors_dir`` (a mapped load reads its own file).

        Raises
        ------
        StoreNotFoundError, NotAStoreError, CorruptStoreError, UnsupportedFormatError
            See :mod:`parag.persistence` and ``docs/format.md``: the message says what is
            wrong and in which file.
        """
        check_bool(mmap, "mmap")
        state = faiss_format.load(path, verify=verify, mmap=mmap, vectors_dir=vectors_dir)
        if isinstance(target, type):
            return target._with_state(state)
        with target._lock.write():
            old, target._state = target._state, state  # a whole new state: searches see the old one or the new one
            if old is not _CLOSED:
                old.close()  # (its files now, not when it is garbage collected)
        return target

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run (until ``load`` on this store fills it again)."""
        return self._state is _CLOSED

    def close(self) -> None:
        """Release what the store holds now, rather than when it is garbage collected: the
        file a compressed store reads its float32 vectors from (its saved ``vectors`` file
        after ``load(mmap=True)``, or its temporary file in ``vectors_dir``, whose disk space
        is then freed), and the index (a mapped one is unmapped unless ``faiss_index`` is
        still referenced), ids, metadata and documents.

        Afterwards every method and property but ``closed`` raises StoreClosedError (also a
        ValueError), until ``store.load(path)`` fills the store again. Closing a closed store
        does nothing. Searches under way finish first. A store used in a ``with`` block is
        closed at its end.

        Examples
        --------
        >>> import tempfile
        >>> from parag.vectorstore import FAISSVectorStore
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     FAISSVectorStore(dimension=2).save(tmp + "/store")
        ...     with FAISSVectorStore.load(tmp + "/store", mmap=True) as store:
        ...         n = len(store)
        >>> n, store.closed
        (0, True)
        >>> len(store)
        Traceback (most recent call last):
        ...
        parag.errors.StoreClosedError: this store is closed (close(), or the end of its with block); load it again to use it: FAISSVectorStore.load(path), or store.load(path) on this one
        """
        with self._lock.write():
            state, self._state = self._state, _CLOSED
            if state is not _CLOSED:
                state.close()

    @classmethod
    def _with_state(cls, state: FAISSState) -> Self:
        """A store of this class around ``state`` (a loaded or copied one), with its own lock."""
        store = cls.__new__(cls)
        store._state, store._lock = state, RWLock()
        return store
