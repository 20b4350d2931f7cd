"""String and int ids: the checks of ``parag._ids`` and a SlotMap holding string ids."""

from __future__ import annotations

import numpy as np
import pytest

from parag._ids import INT_IDS, MAX_STR_ID_LENGTH, STR_IDS, as_store_ids, generated_str_ids
from parag._slots import SlotMap
from parag.errors import DuplicateIdError, IdNotFoundError, InvalidArgumentError, InvalidTypeError, ParagError


@pytest.mark.parametrize(
    "ids, kind, want",
    [
        ([3, 1], None, [3, 1]),
        (np.array([3, 1], np.uint8), INT_IDS, [3, 1]),
        (7, None, [7]),
        ("doc-1", None, ["doc-1"]),
        (("a", "é"), STR_IDS, ["a", "é"]),
        (np.array(["a", "b"]), None, ["a", "b"]),
        (iter(["x"]), None, ["x"]),
        (np.array(["a", "b"], object), None, ["a", "b"]),  # pandas' df["id"].to_numpy()
        (np.array(["a"], object), STR_IDS, ["a"]),
        (np.array([3, 1], object), INT_IDS, [3, 1]),
        ([], STR_IDS, []),
        ([], None, []),
    ],
)
def test_ids_of_either_kind(ids, kind, want):
    got = as_store_ids(ids, kind)
    assert got.tolist() == want
    assert got.dtype == (STR_IDS.dtype if want and isinstance(want[0], str) or kind == STR_IDS else np.int64)


@pytest.mark.parametrize(
    "ids, kind, error, words",
    [
        ([1, "a"], None, InvalidTypeError, ["mix ints and strings", "ids[0] is 1", "ids[1] is 'a'"]),
        (["a", "b", 2], None, InvalidTypeError, ["mix", "ids[2] is 2"]),
        (["a"], INT_IDS, InvalidTypeError, ["must be ints", "got str ids"]),
        ([1], STR_IDS, InvalidTypeError, ["must be strs", "got int ids"]),
        ([""], None, InvalidArgumentError, ["ids[0]", "empty string"]),
        (["a", "x" * (MAX_STR_ID_LENGTH + 1)], None, InvalidArgumentError, ["ids[1]", f"at most {MAX_STR_ID_LENGTH}"]),
        (["a", "a"], None, DuplicateIdError, ["duplicates", "'a'"]),
        (["ok", "bad\ud800"], None, InvalidArgumentError, ["ids[1]", "surrogate"]),
        ([1.5], None, InvalidTypeError, ["ids[0]", "float"]),
        ([True], None, InvalidTypeError, ["ids[0]", "bool"]),
        (b"ab", None, InvalidTypeError, ["bytes"]),
        (None, None, InvalidTypeError, ["ints or strings"]),
        ([-1], None, InvalidArgumentError, ["non-negative"]),
        (np.array(["a", 1], object), None, InvalidTypeError, ["mix ints and strings", "ids[1] is 1"]),
        (np.array(["a", "a"], object), None, DuplicateIdError, ["duplicates", "'a'"]),
        (np.array(["a", ""], object), None, InvalidArgumentError, ["ids[1]", "empty string"]),
        (np.array(["a", None], object), None, InvalidTypeError, ["ids[1]", "NoneType"]),
        (np.array(["a"], object), INT_IDS, InvalidTypeError, ["must be ints", "got str ids"]),
    ],
)
def test_bad_ids_are_named(ids, kind, error, words):
    with pytest.raises(error) as e:
        as_store_ids(ids, kind)
    assert isinstance(e.value, ParagError)
    for word in words:
        assert word in str(e.value)


def test_longest_string_id_and_repeats_allowed_when_not_unique():
    assert as_store_ids(["x" * MAX_STR_ID_LENGTH], None).tolist() == ["x" * MAX_STR_ID_LENGTH]
    assert as_store_ids(["a", "a"], STR_IDS, unique=False).tolist() == ["a", "a"]


def test_generated_string_ids_are_distinct_uuid_hex():
    ids = generated_str_ids(1000).tolist()
    assert len(set(ids)) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_slot_map_with_string_ids():
    slots = SlotMap(kind=STR_IDS)
    slots.append(as_store_ids(["a", "b", "c"], STR_IDS))
    assert "b" in slots and "z" not in slots
    assert slots.slots_of(as_store_ids(["c", "a"], STR_IDS)).tolist() == [2, 0]
    slots.kill(np.array([1]))
    assert slots.live_ids().tolist() == ["a", "c"] and slots.n_dead == 1
    assert slots.slot_ids.tolist() == ["a", "", "c"]
    with pytest.raises(DuplicateIdError, match="'a'"):
        slots.check_new(as_store_ids(["a"], STR_IDS))
    with pytest.raises(IdNotFoundError, match="'b'"):
        slots.slots_of(as_store_ids(["b"], STR_IDS))
    assert slots.live_mask().tolist() == [True, False, True]
    slots = slots.compacted()
    assert slots.slot_ids.tolist() == ["a", "c"]
    assert slots.slots_of(as_store_ids(["c"], STR_IDS)).tolist() == [1]
    assert not slots.has_duplicates() and slots.kind is STR_IDS


def test_ids_are_slots_only_while_every_slot_holds_its_own_number():
    slots = SlotMap()
    assert slots.ids_are_slots  # empty
    slots.append(np.arange(3))
    assert slots.ids_are_slots
    slots.append(np.array([3, 9]))
    assert not slots.ids_are_slots and slots.ids_at(np.array([4])).tolist() == [9]
    assert SlotMap(np.arange(5)).ids_are_slots and not SlotMap(np.array([0, 2])).ids_are_slots
    killed = SlotMap(np.arange(4))
    killed.kill(np.array([0]))
    assert not killed.ids_are_slots
    compacted = killed.compacted()  # ids 1, 2, 3 now at slots 0, 1, 2
    assert not compacted.ids_are_slots and compacted.ids_at(np.array([0])).tolist() == [1]
    assert killed.n_slots == 4
    dead = SlotMap(np.arange(2))
    dead.append_dead(1)
    assert not dead.ids_are_slots
    assert not SlotMap(np.array(["0"]), STR_IDS).ids_are_slots


def test_ids_and_documents_from_a_pandas_frame():
    """A RAG pipeline's frame: ids from ``df["id"].to_numpy()`` (an object array) or the
    Series itself, documents from ``df["text"]`` or its numpy array."""
    pd = pytest.importorskip("pandas")
    from parag.vectorstore import FAISSVectorStore

    df = pd.DataFrame({"id": ["a", "b", "c", "d"], "text": ["first", "second", "third", "fourth"]})
    x = np.eye(4, dtype=np.float32)
    store = FAISSVectorStore(dimension=4)
    assert store.add(x[:2], ids=df["id"].to_numpy()[:2], documents=df["text"][:2]) == ["a", "b"]
    assert store.add(x[2:], ids=df["id"][2:], documents=df["text"].to_numpy()[2:]) == ["c", "d"]
    got = store.get(df["id"].to_numpy())
    assert got.ids == df["id"].tolist() and got.documents == df["text"].tolist()
    assert store.delete(df["id"].to_numpy()[:1]) == 1 and store.ids() == ["b", "c", "d"]
