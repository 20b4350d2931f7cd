"""The metadata store (one JSON buffer, offsets per slot) against a plain list of dicts:
every write (append, set, kill, compaction, the rewrite that drops replaced rows) keeps
``get_many``, ``items``, the filter columns and the JSON lines saved equal to the list's."""

from __future__ import annotations

import random
import tracemalloc

import numpy as np
import orjson
import pytest

import parag.metadata.store as store_module
from parag.errors import CorruptStoreError
from parag.filters import compile_filter
from parag.metadata import MetadataStore, encode_metadata
from parag.metadata.columns import Columns
from tests.interrupts import InterruptAt

# Rows the one-dump encoding handles, and rows it must leave to the per-row one ("},{" in a
# string or between nested dicts), with newlines, unicode, nesting, empty dicts.
ROWS = [
    {"src": "a", "n": 1},
    {},
    {"src": "b\nc", "n": 2.5, "tags": ["x", "y"]},
    {"src": "},{", "n": 3},
    {"nested": [{"a": 1}, {"b": 2}], "n": 4},
    {"src": "é☃", "n": None, "ok": True},
]


def random_rows(rng: random.Random, n: int) -> list[dict]:
    return [dict(rng.choice(ROWS), i=rng.randrange(1000)) for _ in range(n)]


def check(meta: MetadataStore, model: list[dict | None]) -> None:
    live = [s for s, d in enumerate(model) if d is not None]
    assert len(meta) == len(model)
    assert meta.get_many(live) == [model[s] for s in live]
    assert list(meta.items()) == [(s, model[s]) for s in live]
    assert meta.to_jsonl() == b"\n".join(b"null" if d is None else orjson.dumps(d) for d in model)
    assert compile_filter({"n": {"$gte": 2}})(meta).tolist() == [
        d is not None and isinstance(d.get("n"), (int, float)) and d["n"] >= 2 for d in model
    ]
    loaded, copied = MetadataStore.from_jsonl(meta.to_jsonl(), len(model)), meta.copy()
    assert list(loaded.items()) == list(meta.items()) == list(copied.items())
    assert copied.to_jsonl() == meta.to_jsonl()
    assert compile_filter({"n": 1})(copied).tolist() == compile_filter({"n": 1})(meta).tolist()
    for store in (meta, loaded, copied):
        assert store.null_rows().tolist() == [d is None for d in model]
        lines = meta.to_jsonl().split(b"\n") if model else []
        assert store.lines(0, len(model)) == lines and store.lines(1, 3) == lines[1:3]
        assert {type(line) for line in store.lines(0, len(model))} <= {bytes}


@pytest.mark.parametrize("seed", range(4))
def test_writes_agree_with_a_list_of_dicts(seed, monkeypatch):
    import parag.metadata.store as store_module

    monkeypatch.setattr(store_module, "_CHUNK", 7)  # columns and items parse in several chunks
    rng = random.Random(seed)
    meta, model = MetadataStore(), []
    compile_filter({"n": 1})(meta)  # the column exists from the start: every write keeps it
    for _ in range(40):
        live = [s for s, d in enumerate(model) if d is not None]
        op = rng.choice(["append", "append", "set", "kill", "keep", "dead"])
        if op == "append":
            rows = random_rows(rng, rng.randrange(0, 12))
            meta.append(encode_metadata(rows, len(rows)))
            model += rows
        elif op == "dead":
            meta.append_dead(2)
            model += [None, None]
        elif op == "set" and live:
            slots = rng.sample(live, rng.randrange(1, len(live) + 1))
            rows = random_rows(rng, len(slots))
            meta.set(slots, encode_metadata(rows, len(rows)))
            for s, d in zip(slots, rows):
                model[s] = d
        elif op == "kill" and live:
            slots = rng.sample(live, rng.randrange(1, len(live) + 1))
            meta.kill(slots)
            for s in slots:
                model[s] = None
        elif op == "keep":
            mask = np.array([rng.random() < 0.8 for _ in model], bool)
            meta.keep(mask)
            model = [d for d, k in zip(model, mask) if k]
        check(meta, model)


def test_replaced_rows_are_dropped_once_they_outgrow_the_rows_in_use():
    tracemalloc.start()  # (counts the buffer and the offsets as allocated, room to grow included)
    try:
        meta = MetadataStore()
        meta.append(encode_metadata([{"v": 0}] * 100, 100))
        big = {"text": "x" * 100_000}
        for _ in range(30):  # 3 MB of replaced rows
            meta.set([5], encode_metadata([big], 1))
            meta.tidy()  # (as the store does after each write)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert meta.get_many([5, 6]) == [big, {"v": 0}]
    assert meta.to_jsonl().count(b"\n") == 99
    # Everything allocated since the start and still held (the store, and the 100 kB row
    # ``big``): the rows in use and as many bytes again, plus the 1 MB slack; not the 3 MB.
    assert held < 2 * 100_000 + (1 << 20) + 200_000 + 100 * 16 * 2


def test_from_jsonl_counts_lines():
    assert len(MetadataStore.from_jsonl(b"", 0)) == 0
    assert MetadataStore.from_jsonl(b"{}\nnull\n{\"a\":1}", 3).get_many([2, 0]) == [{"a": 1}, {}]
    with pytest.raises(CorruptStoreError, match="2 lines but the ids file has 3 slots .*damaged; restore it"):
        MetadataStore.from_jsonl(b"{}\n{}", 3)


def interrupted_lines(meta: MetadataStore, target: int) -> tuple[int, BaseException | None]:
    """``meta.lines`` of every slot, interrupted at the ``target``-th signal check point of
    the functions that hold views of the offsets or the buffer: (the points seen, the
    interrupt, kept with its traceback)."""
    injector = InterruptAt(target, (store_module.__file__,), ("_runs", "_joined", "<genexpr>"))
    raised = injector.run(lambda: meta.lines(0, len(meta)))
    return injector.seen, raised


def test_views_an_interrupted_call_left_alive_do_not_block_the_writes_after_it(monkeypatch):
    """An interrupt inside a function holding views of the offsets or of the buffer leaves
    them alive for as long as its traceback is kept (an interactive session keeps the last
    one): every write after it, and the undo of a failed one, must work all the same (the
    arrays cannot grow or shrink in place meanwhile)."""
    rng = random.Random(5)

    def filled() -> tuple[MetadataStore, list[dict | None]]:
        meta, model = MetadataStore(), random_rows(rng, 50)
        meta.append(encode_metadata(model, len(model)))
        return meta, model

    points, _ = interrupted_lines(filled()[0], 0)
    assert points > 10
    for target in range(1, points + 1):
        meta, model = filled()
        _, kept = interrupted_lines(meta, target)
        assert kept is not None

        def out_of_memory(self, dicts):
            raise MemoryError("injected")

        monkeypatch.setattr(Columns, "append", out_of_memory)  # a failed append, undone while the views live
        with pytest.raises(MemoryError):
            meta.append(encode_metadata(random_rows(rng, 3), 3))
        monkeypatch.undo()
        check(meta, model)
        rows = random_rows(rng, 5)
        meta.append(encode_metadata(rows, 5), replacing=[0, 1])
        model[0] = model[1] = None
        model += rows
        meta.set([2, 3], encode_metadata([{"n": 7}, {"n": 8}], 2))
        model[2:4] = [{"n": 7}, {"n": 8}]
        meta.kill([4])
        model[4] = None
        check(meta, model)
        meta.keep(np.array([d is not None for d in model]))
        check(meta, [d for d in model if d is not None])
        del kept
