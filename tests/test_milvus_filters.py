"""The Milvus translation of the list operators, against parag's numpy evaluator on the real
server: ``$contains`` / ``$all`` / ``$any`` run as ``json_contains*`` expressions and must
select exactly the rows a FAISS store (numpy) selects, over adversarial metadata: missing
keys, values that are not lists, nested lists and objects, ``1`` against ``1.0`` and ``true``,
numbers at 2**53, quotes, backslashes, newlines and non-BMP text. Elements the server cannot
compare exactly (null, lists, objects, numbers from 2**53 on) stay with parag's evaluator,
with the same answers. Skipped where the server cannot start."""

from __future__ import annotations

import numpy as np
import pytest

from parag.filters import parse
from parag.vectorstore import FAISSVectorStore
from tests.milvus_support import POOL

pytest.importorskip("pymilvus")
from parag.vectorstore.milvus_filters import NotOnServer, server_plan  # noqa: E402

TRICKY = ['q"uote', "back\\slash", 'x" or 1==1 or "', "é中🙂", "new\nline", ""]
METADATA = [
    {"t": [1, 2, 3]}, {"t": [1.0]}, {"t": [True]}, {"t": ["1"]}, {"t": "abc"}, {"t": 1}, {},
    {"t": [[1], "x"]}, {"t": {"a": 1}}, {"t": TRICKY}, {"t": []}, {"t": [1.5, "a", False]},
    {"t": [None]}, {"t": None}, {"t": [2**53 + 1]}, {"t": [2**53]}, {"t": ["a", "b"]}, {"t": [0]},
    {"t": [-0.0]}, {"t": ["abc"]}, {"t": [{"a": 1}]}, {"t": [-5, 1e-07, 1e15, 0.1]}, {"t": [False]},
    {"other": [1, "a"]}, {"t": [1, 1, "a", "a"]},
    # keys a JSON path on the server cannot name (and one it can)
    {"": 5}, {"a\nb": 1}, {"\tk": 1, "t": [1]}, {"\x7fk": 2}, {"\x08k": 1}, {"\x0ck": 1}, {"\rk": 1},
    {"a\x01b": 1}, {"a\nb": 2, "": 6},
]
ODD_KEYS = ["", "a\nb", "\tk", "\x7fk", "\x08k", "\x0ck", "\rk"]
ELEMENTS = [1, 1.0, True, False, "1", "a", "abc", "x", 0, -0.0, 1.5, -5, 1e-07, 1e15, 0.1, 2**53 - 1, *TRICKY]
ON_SERVER = (
    [{"t": {"$contains": v}} for v in ELEMENTS]
    + [{"t": {op: values}} for op in ("$all", "$any") for values in
       ([1, 2], [1, 2.0], ["a", "b"], [1.5, "a", False], [1, "a"], [True, 1], ["zzz"], [0.1, -5], TRICKY, ["a", "a"])]
    + [{"t": {"$not": {"$contains": 1}}}, {"t": {"$not": {"$any": ["a", 1]}}}, {"other": {"$all": [1, "a"]}},
       {"$or": [{"t": {"$contains": "a"}}, {"t": {"$ne": 1}}]}, {"t": {"$contains": "a", "$all": ["a", "b"]}}]
)
ON_CLIENT = [{"t": {"$contains": v}} for v in (None, [1], {"a": 1}, 2**53, 2**53 + 1, 1e300)] + [
    {"t": {"$any": ["a", None]}}, {"t": {"$all": [[1], "x"]}}]


@pytest.fixture(scope="module")
def stores(milvus_server_session):
    x = np.arange(2 * len(METADATA), dtype=np.float32).reshape(-1, 2)
    milvus_store, faiss_store = POOL.store(2, "Flat", "L2"), FAISSVectorStore(2, "Flat", "L2")
    milvus_store.add(x, METADATA)
    faiss_store.add(x, METADATA)
    return milvus_store, faiss_store


@pytest.mark.parametrize("spec", ON_SERVER, ids=repr)
def test_list_operators_on_the_server_match_numpy(stores, spec):
    milvus_store, faiss_store = stores
    assert isinstance(server_plan(parse(spec)), str), spec  # translated, not evaluated by parag
    assert milvus_store.get(filter=spec, include=()).ids == faiss_store.get(filter=spec, include=()).ids, spec


def test_elements_without_an_exact_expression_are_evaluated_by_parag(stores):
    milvus_store, faiss_store = stores
    for spec in ON_CLIENT:
        assert isinstance(server_plan(parse(spec)), NotOnServer), spec
        assert milvus_store.get(filter=spec, include=()).ids == faiss_store.get(filter=spec, include=()).ids, spec
    # and searched: the same top hits among the matching rows
    for spec in (ON_SERVER[0], ON_CLIENT[0]):
        got, want = milvus_store.search([0, 0], k=3, filter=spec), faiss_store.search([0, 0], k=3, filter=spec)
        assert got.ids == want.ids and np.allclose(got.distances, want.distances), spec


@pytest.mark.parametrize("key", [*ODD_KEYS, "a\x01b"], ids=repr)
def test_keys_a_server_path_cannot_name_are_evaluated_by_parag(stores, key):
    # The 2.3 server does not decode the escapes of a JSON path: such a filter would silently
    # name another key (and meta[""] does not parse), so parag evaluates it.
    milvus_store, faiss_store = stores
    for spec in ({key: 1}, {key: {"$ne": 1}}, {key: {"$exists": True}}, {key: {"$in": [1, 5]}},
                 {"$not": {key: 2}}, {"$or": [{key: 6}, {"t": {"$contains": 1}}]}):
        plan = server_plan(parse(spec))
        assert isinstance(plan, NotOnServer) == (key in ODD_KEYS), spec
        assert milvus_store.get(filter=spec, include=()).ids == faiss_store.get(filter=spec, include=()).ids, spec
