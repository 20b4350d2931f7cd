"""Bookkeeping between user ids and FAISS slots.

parag never hands its own ids to FAISS. Every vector gets a *slot*, the sequential label
FAISS gives it on ``add`` (0, 1, 2, ...), and this map translates between slots and the ids
users see (ints or strings, one kind per map: see :mod:`parag._ids`). Deleting a vector only marks its slot dead (a tombstone) because HNSW cannot
remove vectors; searches skip dead slots through a FAISS ``IDSelectorBitmap``, and
:meth:`SlotMap.compact` renumbers the live slots once the index is rebuilt without the dead.
"""

from __future__ import annotations

import faiss
import numpy as np

from parag._arrays import GrowableArray
from parag._ids import INT_IDS, IdKind
from parag.errors import DuplicateIdError, IdNotFoundError

_DEAD = -1  # a dead slot in a list of slots (slots are always ints)
#: A SlotMap's counts and the ids of some slots, as :meth:`SlotMap.savepoint` takes them.
SlotsPoint = tuple[int, int, int, bool, np.ndarray, np.ndarray]


class SlotMap:
    """Slot -> id (an array of the ids' kind: int64 with -1, or strings with "" for a dead
    slot) and id -> slot (a dict)."""

    def __init__(self, slot_ids: np.ndarray | None = None, kind: IdKind = INT_IDS) -> None:
        self.kind = kind
        self._ids = GrowableArray(kind.dtype, kind.dead, slot_ids)
        # Counts kept up to date by the methods below (plain attributes, not properties: every
        # search reads them, and a property call would cost more than the rest of the check).
        self.n_live = int(np.count_nonzero(self._ids.view != kind.dead))
        self.n_dead = len(self._ids) - self.n_live
        #: Whether every slot holds its own number as its id (generated ids, nothing deleted
        #: yet: the usual store), so that a search's slots are its ids, with nothing to look up.
        self.ids_are_slots = kind is INT_IDS and _counts_up(self._ids.view, 0)
        self._lookup: dict[int | str, int] | None = None
        self._selector: tuple[faiss.IDSelector, np.ndarray] | None = None

    @property
    def _id_to_slot(self) -> dict[int | str, int]:
        """id -> slot, built on first use. Searching needs only slot -> id, so a store loaded
        just to be searched (memory-mapped, say) is spared the dict's ~100 bytes per vector."""
        lookup = self._lookup
        if lookup is None:
            live = np.flatnonzero(self._slot_ids != self.kind.dead)
            lookup = self._lookup = dict(zip(self._slot_ids[live].tolist(), live.tolist()))
        return lookup

    @property
    def _slot_ids(self) -> np.ndarray:
        return self._ids.view

    @property
    def n_slots(self) -> int:
        return len(self._ids)

    def has_duplicates(self) -> bool:
        """Whether a live id is held by two slots (only a damaged file can cause that)."""
        live = np.sort(self.live_ids())  # a sort: ~15x faster than np.unique's hashing at 1M ids
        return bool((live[1:] == live[:-1]).any())

    @property
    def slot_ids(self) -> np.ndarray:
        """Read-only view: the id of each slot, the kind's dead id (-1 or "") where the slot is dead."""
        view = self._slot_ids.view()
        view.flags.writeable = False
        return view

    def ids_at(self, slots: np.ndarray) -> np.ndarray:
        """The ids of ``slots`` (a new array, of any shape)."""
        return self._ids.view[slots]

    def __contains__(self, id_: int | str) -> bool:
        return id_ in self._id_to_slot

    def live_ids(self) -> np.ndarray:
        return self._slot_ids[self._slot_ids != self.kind.dead]

    def check_new(self, ids: np.ndarray) -> None:
        """Raise DuplicateIdError if any of ``ids`` is already stored."""
        taken = [i for i in ids.tolist() if i in self._id_to_slot]
        if taken:
            raise DuplicateIdError(
                f"ids already in the store: {taken[:10]}; delete them first or use upsert()"
            )

    def slots_of(self, ids: np.ndarray) -> np.ndarray:
        """Slots of ``ids``; raise IdNotFoundError naming the first unknown ids."""
        get = self._id_to_slot.get
        slots = [get(i, _DEAD) for i in ids.tolist()]
        if _DEAD in slots:
            missing = [i for i, s in zip(ids.tolist(), slots) if s == _DEAD]
            raise IdNotFoundError(f"ids not in the store: {missing[:10]}")
        return np.asarray(slots, dtype=np.int64)

    def append(self, ids: np.ndarray) -> None:
        """Give ``ids`` the next slots (they must be new: check_new first)."""
        first = self.n_slots
        self._ids.append(ids)
        self.n_live += len(ids)
        self.ids_are_slots = self.ids_are_slots and _counts_up(ids, first)
        if self._lookup is not None:
            self._lookup.update(zip(ids.tolist(), range(first, first + len(ids))))
        self._selector = None

    def savepoint(self, slots: np.ndarray) -> SlotsPoint:
        """What :meth:`roll_back` needs to undo the appends, and the kills of ``slots``, that follow."""
        return self.n_slots, self.n_live, self.n_dead, self.ids_are_slots, slots, self._slot_ids[slots]

    def roll_back(self, point: SlotsPoint) -> None:
        """Undo the appends made since ``point`` and the kills of its slots (a write that
        failed part way). The id -> slot lookup, if built, is repaired in as many steps as
        the write took (its appended ids taken out, its killed ids put back) rather than
        dropped: building it again would cost a step per stored id, seconds at 10M."""
        n_slots, self.n_live, self.n_dead, self.ids_are_slots, slots, ids = point
        # None while it is repaired: an interrupt meanwhile leaves no half-repaired dict behind.
        lookup, self._lookup = self._lookup, None
        if lookup is not None:
            for i in self._slot_ids[n_slots:].tolist():
                lookup.pop(i, None)  # (an append interrupted part way may not have added it)
        self._ids.truncate(n_slots)
        self._slot_ids[slots] = ids
        if lookup is not None:
            # After the pops: an upsert's id, killed in its old slot and appended in a new
            # one, goes back to the old.
            held = ids != self.kind.dead
            lookup.update(zip(ids[held].tolist(), slots[held].tolist()))
        self._lookup = lookup
        self._selector = None

    def append_dead(self, n: int) -> None:
        """Add ``n`` dead slots (vectors a failed add left in an index that cannot remove them)."""
        self._ids.append(None, count=n)  # the fill value: the kind's dead id
        self.n_dead += n
        self.ids_are_slots = False
        self._selector = None

    def kill(self, slots: np.ndarray) -> None:
        """Mark ``slots`` dead: their ids are gone, the slots stay until compaction."""
        if self._lookup is not None:
            for i in self._slot_ids[slots].tolist():
                del self._lookup[i]
        self._slot_ids[slots] = self.kind.dead
        self.n_live -= len(slots)
        self.n_dead += len(slots)
        self.ids_are_slots = self.ids_are_slots and not len(slots)
        self._selector = None

    def compacted(self) -> SlotMap:
        """A new map of the live slots alone, renumbered in order (this one is unchanged)."""
        return SlotMap(self.live_ids(), self.kind)

    def live_selector(self) -> faiss.IDSelector | None:
        """A FAISS selector of the live slots, or None when no slot is dead (the fast path).

        Built once per change and shared by concurrent searches: a selector is read-only
        during a search (unlike SearchParameters, which must be built per call).
        """
        if not self.n_dead:
            return None
        if self._selector is None:
            self._selector = bitmap_selector(self.live_mask())
        return self._selector[0]

    def live_mask(self) -> np.ndarray:
        """A new boolean array: True for each live slot."""
        return self._slot_ids != self.kind.dead


def _counts_up(ids: np.ndarray, first: int) -> bool:
    """Whether ``ids`` are ``first, first + 1, ...``."""
    return bool((ids == np.arange(first, first + len(ids))).all())


def bitmap_selector(mask: np.ndarray) -> tuple[faiss.IDSelector, np.ndarray]:
    """A FAISS selector of the slots where ``mask`` is True, and the bits it reads.

    The selector holds a reference to its bits: two searches racing in ``live_selector``
    each build one and the later replaces the earlier in ``_selector``, while the other
    search may still be reading the earlier one's bits (freed memory, dead slots returned).
    """
    bits = np.packbits(mask, bitorder="little")
    selector = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bits))
    selector.referenced_objects = [bits]  # FAISS's own idiom for keeping an array alive
    return selector, bits
