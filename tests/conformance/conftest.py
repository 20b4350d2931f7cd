"""The conformance suite's fixture: ``make_store``, one store factory per backend kind.

A test that takes ``make_store`` runs once per kind of :data:`kinds.DEFAULT_KINDS`; the
marker ``@pytest.mark.kinds("Flat", "HNSW")`` narrows (or widens) the list, where a test is
slow or needs data large enough to train a kind. ``make_store(dimension, metric)`` returns
an empty store; ``make_store.exact`` and the other capabilities are those of
:class:`kinds.StoreKind`.
"""

from __future__ import annotations

import pytest

from tests.conformance.kinds import DEFAULT_KINDS, KINDS, StoreKind
from tests.lifecycle_model import single_thread_faiss  # noqa: F401 - a fixture, used below


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "kinds(*names): the store kinds a conformance test runs over")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "make_store" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("kinds")
        names = marker.args if marker else DEFAULT_KINDS
        metafunc.parametrize("make_store", [KINDS[n] for n in names], ids=list(names), indirect=True)


@pytest.fixture
def make_store(request: pytest.FixtureRequest) -> StoreKind:
    return request.param


@pytest.fixture(autouse=True)
def _one_thread(single_thread_faiss: None) -> None:
    """These tests check results, not speed: FAISS single-threaded in the test's thread."""
