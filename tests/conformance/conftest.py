"""The conformance suite's fixture: ``make_store``, one store factory per backend kind.

A test that takes ``make_store`` runs once per kind of :data:`kinds.DEFAULT_KINDS`; the
marker ``@pytest.mark.kinds("Flat", "HNSW")`` narrows (or widens) the list, where a test is
slow or needs data large enough to train a kind, and ``@pytest.mark.needs("persistent")``
keeps the kinds that declare every capability named. ``@pytest.mark.rotate_metrics("L2",
"IP", "cosine")`` gives a test its ``metric``: one per FAISS kind, in turn, each metric on
some kinds (tests that take seconds per kind, whose metric only changes the scores, which
other tests check on every kind x metric). ``make_store(dimension, metric)`` returns an
empty store; ``make_store.exact`` and the other capabilities are those of
:class:`kinds.StoreKind`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.checks import SHARED
from tests.conformance.kinds import DEFAULT_KINDS, KINDS, MILVUS_KINDS, StoreKind


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "kinds(*names): the store kinds a conformance test runs over")
    config.addinivalue_line("markers", "needs(*capabilities): only the kinds that declare them all")
    config.addinivalue_line("markers", "rotate_metrics(*metrics, shift=0): one of the metrics per FAISS kind, "
                                       "in turn (gives the test's ``metric``)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "make_store" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("kinds")
        names = marker.args if marker else DEFAULT_KINDS
        names = (*names, *MILVUS_KINDS.get(metafunc.module.__name__.rsplit(".", 1)[-1], ()))
        needs = [c for m in metafunc.definition.iter_markers("needs") for c in m.args]
        names = [n for n in names if all(getattr(KINDS[n], c) for c in needs)]
        rotate = metafunc.definition.get_closest_marker("rotate_metrics")
        if rotate is None:
            metafunc.parametrize("make_store", [KINDS[n] for n in names], ids=list(names), indirect=True)
            return
        # Kind i runs metric i + shift (a server kind: each of its own metrics).
        metrics, shift = rotate.args, rotate.kwargs.get("shift", 0)
        pairs = [(KINDS[n], m) for i, n in enumerate(names)
                 for m in ([metrics[(i + shift) % len(metrics)]] if KINDS[n].metrics is None else metrics)]
        metafunc.parametrize(("make_store", "metric"), pairs, ids=[f"{k.name}-{m}" for k, m in pairs],
                             indirect=["make_store"])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop the metrics a kind does not run with (its ``metrics``): a test's metric is its
    ``metric`` parameter, or its ``store`` fixture's (test_errors)."""
    kept, dropped = [], []
    for item in items:
        params = getattr(item, "callspec", None) and item.callspec.params
        kind = params and params.get("make_store")
        metric = params and params.get("metric", params.get("store"))
        skip = isinstance(kind, StoreKind) and kind.metrics is not None and metric is not None and metric not in kind.metrics
        (dropped if skip else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture
def make_store(request: pytest.FixtureRequest) -> StoreKind:
    if request.param.server:
        request.getfixturevalue("milvus")  # the server, or a skip where it cannot start
    return request.param


@pytest.fixture(scope="module", autouse=True)
def _drop_shared_stores() -> Iterator[None]:
    """A module's shared stores (tests.checks.shared) end with it."""
    yield
    SHARED.clear()
