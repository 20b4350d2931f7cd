"""The mutable state of a FAISSVectorStore and the operations that keep it consistent.

:class:`FAISSState` holds the FAISS index, the slot map (slot <-> id, tombstones), the
metadata and document of every slot and the next id to generate, and changes them together:
append, kill, compact (its searches: :mod:`._state_reads`). It does no input checking and no
locking: :class:`~parag.vectorstore.FAISSVectorStore` checks every argument and calls these
methods under its lock, so a state is only ever seen whole. (Checks come first, but for the
add ahead of a large batch: :meth:`FAISSState.adding_ahead`.)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import faiss
import numpy as np

from parag._ids import INT_IDS, STR_IDS, check_kind, generated_str_ids
from parag._slots import SlotMap, SlotsPoint
from parag._threads import threads_for
from parag._validation import BACKGROUND_CHECK_MIN, MAX_ID
from parag.documents import DocsPoint, DocumentStore
from parag.errors import InvalidArgumentError, ParagError, ReadOnlyStoreError
from parag.metadata import Encoded, MetadataStore
from parag.metadata.store import RowsPoint
from parag.vectorstore._add_ahead import Batch
from parag.vectorstore._state_reads import StateReads
from parag.vectorstore.kinds import IndexKind
from parag.vectorstore.kinds.base import KindPoint

StatePoint = tuple[SlotsPoint, DocsPoint, RowsPoint, KindPoint]  # see FAISSState._savepoint


class FAISSState(StateReads):
    """Index, slots, metadata, documents and next id of one store, and their joint operations."""

    def __init__(
        self,
        kind: IndexKind,
        index: faiss.Index | None = None,
        slots: SlotMap | None = None,
        meta: MetadataStore | None = None,
        next_id: int = 0,
        read_only: bool = False,
        docs: DocumentStore | None = None,
    ) -> None:
        self.kind = kind
        self.index = kind.new_index() if index is None else index
        self.slots = SlotMap() if slots is None else slots
        self.meta = MetadataStore() if meta is None else meta
        self.docs = DocumentStore([None] * self.slots.n_slots) if docs is None else docs
        self.next_id = next_id
        self.read_only = read_only
        # (index, whether a single unfiltered query may search it bare): see search_one.
        self._bare: tuple[faiss.Index | None, bool] = (None, False)
        self._pending: Batch | None = None  # an add ahead not yet settled: see settle()

    def copy(self) -> FAISSState:
        """An independent copy: index, ids, metadata, documents and parameters."""
        kind = type(self.kind)(self.kind.dimension, self.kind.metric, dict(self.kind.params), self.kind.auto)
        kind.vectors_dir = self.kind.vectors_dir
        slots = SlotMap(self.slots.slot_ids.copy(), self.slots.kind)
        docs = DocumentStore(self.docs.get_many(list(range(self.slots.n_slots))))
        index, meta = kind.copy_index(self.index), self.meta.copy()
        return FAISSState(kind, index, slots, meta, self.next_id, self.read_only, docs)

    def close(self) -> None:
        """Close the files the index reads (the state is not used afterwards)."""
        self.kind.close_files(self.index)

    @property
    def is_trained(self) -> bool:
        return self.kind.is_trained(self.index)

    def write_refusal(self, checked: IndexKind | None, changes: bool) -> ParagError | None:
        """Why a call whose input was ``checked`` against a kind (None: no input to check)
        may not write this state, as its error; None when it may (see
        ``FAISSVectorStore._writing``). A read-only state refuses a call that ``changes`` it."""
        if checked is not None and not self.kind.checks_input_as(checked):
            return InvalidArgumentError(
                "the store was reloaded with another dimension or metric (store.load) during this call; "
                "call again: the input is then checked against the store loaded"
            )
        if changes and self.read_only:
            return ReadOnlyStoreError(
                "this store was loaded with mmap=True and is read-only; load it without mmap to change it"
            )
        return None

    def adds_ahead(self, x: np.ndarray) -> bool:
        """Whether an add of ``x`` runs ahead of its checks (:mod:`._add_ahead`): a batch large
        enough to be worth a thread, into an index whose add :meth:`IndexKind.remove_tail`
        takes back exactly, in a store that may be changed."""
        return x.size >= BACKGROUND_CHECK_MIN and not self.read_only and self.kind.undoes_add(self.index)

    @contextmanager
    def adding_ahead(self, x: np.ndarray) -> Iterator[Batch]:
        """``x`` (unchecked) on its way into the index: added by FAISS on a second thread
        while the block checks it, where :meth:`adds_ahead`, and taken out again if the block
        raises. The block passes the :class:`Batch`'s ``vectors()`` to :meth:`add`.

        What is taken out is what the slot map does not hold: nothing once the add has
        committed, so that an error after it (an interrupted compaction, a warning raised as
        an error) leaves the write done, as it does on the usual path.
        """
        batch = Batch(x, self.kind.metric)
        try:
            if self.adds_ahead(x):
                self._pending = batch
                batch.start(self.index)
            yield batch
        except GeneratorExit:
            # Closed, not thrown into: an interrupt skipped the with statement's exit, and the
            # generator is being collected, perhaps long after, without the lock: touch
            # nothing (the next write settles the batch).
            raise
        except BaseException:
            self.settle()
            raise
        self.settle()

    def settle(self) -> None:
        """Settle the add ahead under way, if any: wait for it, and take out what the slot
        map does not hold (nothing once the add has committed). :meth:`adding_ahead` calls it
        as it ends; every write calls it first, under the lock, for one whose end an interrupt
        skipped (see :mod:`._add_ahead`). It costs nothing otherwise."""
        if self._pending is not None:
            try:
                self._pending.stop()
            finally:
                self._forget_from(self.slots.n_slots)
            self._pending = None

    # ----------------------------------------------------------------- writing

    def add(
        self, x: np.ndarray, ids: np.ndarray | None, encoded: Encoded, docs: list[str | None], in_index: bool = False
    ) -> np.ndarray:
        """Add vectors under ``ids`` (None: generated ones); return the ids. The first ids a
        store holds fix its kind (ints or strings). ``in_index``: FAISS holds ``x`` already
        (:meth:`adding_ahead`)."""
        if ids is None:
            ids = self._generated_ids(len(x))
        else:
            self.check_kind(ids, "ids")
            self.slots.check_new(ids)
        self.append(x, ids, encoded, docs, in_index=in_index)
        return ids

    def upsert(
        self, x: np.ndarray, ids: np.ndarray, encoded: Encoded, docs: list[str | None], in_index: bool = False
    ) -> None:
        """Add vectors under ``ids``, replacing those of ids already stored (``in_index``: as in :meth:`add`)."""
        self.check_kind(ids, "ids")
        present = ids[self._stored(ids)]
        self.append(x, ids, encoded, docs, replacing=self.slots.slots_of(present), in_index=in_index)

    def delete(self, ids: np.ndarray, missing_ok: bool) -> int:
        """Delete the vectors of ``ids`` (unknown ids: IdNotFoundError, or skipped with
        ``missing_ok``); return how many were deleted."""
        self.check_kind(ids, "ids")
        if missing_ok:
            ids = ids[self._stored(ids)]
        self.kill(self.slots.slots_of(ids))
        return len(ids)

    def delete_matching(self, compiled: Callable[..., np.ndarray]) -> int:
        """Delete the vectors a filter matches; return how many were deleted."""
        slots = np.flatnonzero(self.matching(compiled))
        self.kill(slots)
        return len(slots)

    def set_metadata(self, ids: np.ndarray, encoded: Encoded) -> None:
        """Replace the metadata of the stored ``ids`` (unknown ids: IdNotFoundError); all or
        nothing. Then, on its own, the metadata's tidy, which rewrites the buffer: like every
        step here it runs under the caller's write lock, or a concurrent write's rows would
        be lost (and a search could read a half-installed buffer)."""
        self.check_kind(ids, "ids")
        self.meta.set(self.slots.slots_of(ids).tolist(), encoded)
        self.meta.tidy()

    def check_kind(self, ids: np.ndarray, name: str) -> None:
        """Raise InvalidTypeError unless ``ids`` are of the store's kind (a store that has
        never held an id takes either)."""
        if not self._kind_open():
            check_kind(ids, self.slots.kind, name)

    def _slots_for(self, ids: np.ndarray) -> SlotMap:
        """The slot map that (checked) ``ids`` go in: the store's, or a new one for strings
        when a store that has never held an id takes the kind of the first ids it is given."""
        if self._kind_open() and ids.dtype == STR_IDS.dtype:
            slots = SlotMap(kind=STR_IDS)
            slots.append_dead(self.slots.n_slots)  # a failed first add's tombstones keep their slots
            return slots
        return self.slots

    def _kind_open(self) -> bool:
        # Slots may be there, all dead: the tombstones of a failed first add to an index that
        # cannot remove vectors (HNSW). They hold no id, so they fix no kind.
        return self.slots.n_live == 0 and self.next_id == 0 and self.slots.kind is INT_IDS

    def _generated_ids(self, n: int) -> np.ndarray:
        """``n`` new ids of the store's kind: ints above every id ever held, or uuid4 hex."""
        if self.slots.kind is STR_IDS:
            ids = generated_str_ids(n)
            self.slots.check_new(ids)  # 122 random bits: a clash is never expected, but cheap to rule out
            return ids
        if self.next_id + n > MAX_ID:
            raise InvalidArgumentError("the id space is exhausted: pass ids explicitly")
        return np.arange(self.next_id, self.next_id + n, dtype=np.int64)

    def _stored(self, ids: np.ndarray) -> np.ndarray:
        """A mask over ``ids``: those stored."""
        return np.asarray([i in self.slots for i in ids.tolist()], bool)

    def append(
        self,
        x: np.ndarray,
        ids: np.ndarray,
        encoded: Encoded,
        docs: list[str | None],
        replacing: np.ndarray | None = None,
        in_index: bool = False,
    ) -> None:
        """Add vectors under new slots, killing the ``replacing`` slots (an upsert); all or
        nothing. ``in_index``: FAISS holds ``x`` already, as its last vectors.

        FAISS's add comes first, then an IVF index's training, then the bookkeeping: slots,
        documents and, last, the metadata (all or nothing itself). Any step may raise (out of
        memory), or an interrupt (Ctrl-C) land as one returns; the steps before it are then
        undone (the slots, documents, metadata and the kind's parameters rolled back, the
        vectors FAISS took taken out again) and the store is as it was. The index, the slot
        map and the next id are replaced together, in one statement, once every step has
        succeeded. A compaction the write triggers comes after, on its own.
        """
        n_before = self.index.ntotal - (len(x) if in_index else 0)
        slots = self._slots_for(ids)
        replaced = np.empty(0, np.int64) if replacing is None else replacing
        killed = replaced.tolist()
        old, point = self.index, self._savepoint(slots, replaced, killed)
        try:
            self.kind.before_add(self.index, n_before + len(x))
            if not in_index:
                with threads_for(len(x), n_before + len(x)):
                    self.index.add(x)
            index = self._after_add(slots, ids, replaced)
            if killed:
                slots.kill(replaced)
                self.docs.kill(killed)
            slots.append(ids)
            self.docs.append(docs)
            next_id = max(self.next_id, int(ids.max()) + 1) if slots.kind is INT_IDS else self.next_id
            self.meta.append(encoded, killed)
        except BaseException:  # (an error, or an interrupt as any step returned: the last one too)
            self._roll_back(slots, point)
            self._forget_from(n_before)
            self.kind.before_add(self.index, self.index.ntotal)  # the size-following parameters as they were
            raise
        # One statement with no call in it: no interrupt (Ctrl-C) lands between these.
        self.slots, self.next_id, self.index, self._bare = slots, next_id, index, (None, False)
        if old is not index:
            self.kind.close_files(old, successor=index)
        del old, point  # (the old index, and the metadata buffer a tidy may replace: not kept alive)
        self.kind.apply_defaults(index)  # the index has grown: its automatic parameters follow
        self.meta.tidy()
        self._compact_if_needed()

    def _after_add(self, slots: SlotMap, ids: np.ndarray, replacing: np.ndarray) -> faiss.Index:
        """The index once ``ids`` hold new slots of ``slots`` (the ``replacing`` ones killed):
        an untrained IVF index trains when it then holds enough live vectors, and retrains
        when it has outgrown its lists. The slots themselves are not changed yet."""
        if not self.kind.trains_after_add(self.index, slots.n_live + len(ids) - len(replacing)):
            return self.index
        slot_ids = np.concatenate([slots.slot_ids, ids])
        slot_ids[replacing] = slots.kind.dead
        return self.kind.after_add(self.index, SlotMap(slot_ids, slots.kind))

    def _forget_from(self, n_slots: int) -> None:
        """Undo a failed add: the vectors the index holds beyond slot ``n_slots`` are removed
        (a Flat index), or else kept as tombstones that no search or count sees."""
        extra = self.index.ntotal - n_slots
        if extra <= 0:
            return
        if not self.kind.remove_tail(self.index, n_slots):
            self.slots.append_dead(extra)
            self.meta.append_dead(extra)
            self.docs.append([None] * extra)

    def _savepoint(self, slots: SlotMap, replaced: np.ndarray, killed: list[int]) -> StatePoint:
        """What :meth:`_roll_back` needs to undo a write's appends to the slot map ``slots``,
        the documents and the metadata, its kills of the slots ``replaced`` (``killed``: the
        same, a list), and its changes to the kind's parameters."""
        return (slots.savepoint(replaced), self.docs.savepoint(killed), self.meta.savepoint(replaced),
                self.kind.savepoint())

    def _roll_back(self, slots: SlotMap, point: StatePoint) -> None:
        """Undo what followed ``point`` (:meth:`_savepoint`), ``slots`` being its slot map."""
        slots.roll_back(point[0])
        self.docs.roll_back(point[1])
        self.meta.roll_back(point[2])
        self.kind.roll_back(point[3])

    def kill(self, slots: np.ndarray) -> None:
        """Delete the vectors at ``slots`` (tombstones until compaction); all or nothing: the
        slot map, documents and metadata are rolled back if a step fails, or an interrupt
        lands as one returns. Then, on their own, the metadata's tidy and a compaction."""
        killed = slots.tolist()
        point = self._savepoint(self.slots, slots, killed)
        try:
            self.slots.kill(slots)
            self.docs.kill(killed)
            self.meta.kill(killed)
        except BaseException:
            self._roll_back(self.slots, point)
            raise
        del point  # (the metadata buffer a tidy may replace: not kept alive)
        self.meta.tidy()
        self._compact_if_needed()

    def compact(self) -> None:
        """Rebuild the index without the dead slots and renumber the rest; all or nothing.
        The new index, slot map and documents are made before anything changes, and the
        metadata, all or nothing itself, comes last: a failure leaves the store as it was,
        and so does an interrupt, until the new parts are installed together."""
        if not self.slots.n_dead:
            return
        keep = self.slots.live_mask()
        index = self.kind.rebuild(self.index, keep)
        slots, docs = self.slots.compacted(), self.docs.kept(keep)
        old, point = self.index, (self.meta.savepoint([]), self.kind.savepoint())
        try:
            self.kind.apply_defaults(index)
            self.meta.keep(keep)
            # One statement with no call in it: no interrupt (Ctrl-C) lands between these.
            self.slots, self.docs, self.index, self._bare = slots, docs, index, (None, False)
        except BaseException:  # (an error, or an interrupt as a step returned: the old parts stay)
            self.meta.roll_back(point[0])
            self.kind.roll_back(point[1])
            raise
        self.kind.close_files(old, successor=index)

    def _compact_if_needed(self) -> None:
        if self.slots.n_dead > self.kind.compact_at * self.slots.n_slots:
            try:
                self.compact()
            except (MemoryError, RuntimeError, OSError) as e:
                # The write itself is complete; its tombstones wait for the next compaction.
                # (OSError: a vectors_dir store's rebuild writes a new file, and a full disk
                # raises StoreWriteError, a failed read StoreReadError.)
                warnings.warn(f"parag: compacting the index after this write failed ({e!r}); the deleted "
                              "vectors stay as tombstones until a later write or compact() succeeds",
                              RuntimeWarning, stacklevel=4)

    def set_search_default(self, name: str, value: int) -> None:
        """Make ``value`` the search parameter's default (what ``tune`` chose)."""
        self.kind.set_default(self.index, name, value)
