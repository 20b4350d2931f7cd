"""``parag.mmr.mmr``: the picks of maximal marginal relevance against a plain-Python oracle,
and every bad argument refused with a parag error that names it (review-0025 F5)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from parag.errors import InvalidArgumentError, InvalidTypeError, ParagError
from parag.mmr import mmr


def _cos(a: list[float], b: list[float]) -> float:
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(x * x for x in b))
    return 0.0 if na == 0 or nb == 0 else sum(x * y for x, y in zip(a, b)) / (na * nb)


def oracle(query: list[float], candidates: list[list[float]], k: int, lambda_mult: float) -> list[int]:
    """Carbonell & Goldstein's greedy MMR, written out in plain Python."""
    picked: list[int] = []
    while len(picked) < min(k, len(candidates)):
        def score(i: int) -> float:
            redundancy = max((_cos(candidates[i], candidates[j]) for j in picked), default=0.0)
            relevance = _cos(candidates[i], query)
            return relevance if not picked else lambda_mult * relevance - (1 - lambda_mult) * redundancy
        picked.append(max((i for i in range(len(candidates)) if i not in picked), key=score))
    return picked


@pytest.mark.parametrize("lambda_mult", [0.0, 0.3, 0.5, 1])
def test_picks_match_the_oracle(lambda_mult):
    rng = np.random.default_rng(7)
    for _ in range(20):
        query, candidates = rng.normal(size=4).tolist(), rng.normal(size=(12, 4)).tolist()
        assert mmr(query, candidates, 5, lambda_mult) == oracle(query, candidates, 5, lambda_mult)


@pytest.mark.parametrize(
    "args, error, words",
    [
        (([1, 0], [[1, 0], [0, 1]], 2, "0.5"), InvalidTypeError, ["lambda_mult", "[0, 1]", "'0.5'"]),
        (([1, 0], [[1, 0], [0, 1]], 1, "0.5"), InvalidTypeError, ["lambda_mult"]),  # even when k=1
        (([1, 0], [[1, 0]], 1, [0.5]), InvalidTypeError, ["lambda_mult", "[0.5]"]),
        (([1, 0], [[1, 0]], 1, None), InvalidTypeError, ["lambda_mult", "None"]),
        (([1, 0], [[1, 0]], 1, True), InvalidTypeError, ["lambda_mult", "True"]),
        (([1, 0], [[1, 0]], 1, 1.5), InvalidArgumentError, ["lambda_mult", "[0, 1]", "1.5"]),
        (([1, 0], [[1, 0]], 1, float("nan")), InvalidArgumentError, ["lambda_mult", "nan"]),
        (([1, 0], np.ones((2, 2, 2)), 1, 0.5), InvalidArgumentError, ["candidates", "(2, 2, 2)"]),
        (([1, 0], [["a", "b"]], 1, 0.5), InvalidTypeError, ["candidates", "numbers"]),
        ((["x", 0], [[1, 0]], 1, 0.5), InvalidTypeError, ["query", "numbers"]),
        (([1, 0, 0], [[1, 0]], 1, 0.5), InvalidArgumentError, ["dimension 3", "have 2"]),
        (([1, 0], [[1, 0]], -1, 0.5), InvalidArgumentError, ["k", "-1"]),
        (([1, 0], [[1, 0]], 1.0, 0.5), InvalidTypeError, ["k", "1.0"]),
        (([math.nan, 0], [[0, 1]], 1, 0.5), InvalidArgumentError, ["query", "NaN or infinity"]),
        (([math.inf, 0], [[1, 0]], 1, 0.5), InvalidArgumentError, ["query", "NaN or infinity"]),
        (([1, 0], [[1, 0], [0, 1], [math.nan, 0]], 1, 0.5), InvalidArgumentError, ["candidates", "row 2"]),
        (([1, 0], [[1, 0], [-math.inf, 0]], 0, 0.5), InvalidArgumentError, ["candidates", "row 1"]),  # even k=0
        (([1, 0], [[1, 0], [1e300, 0]], 1, 0.5), InvalidArgumentError, ["candidates", "row 1"]),  # inf in float32
    ],
)
def test_bad_arguments_are_named(args, error, words):
    with pytest.raises(error) as e:
        mmr(*args)
    assert isinstance(e.value, ParagError)
    for word in words:
        assert word in str(e.value)


def test_numpy_numbers_are_accepted():
    assert mmr(np.array([1.0, 0.0]), np.eye(2), np.int64(2), np.float32(1.0)) == [0, 1]
    assert mmr([1, 0], [1, 0], 1) == [0]  # one candidate as a 1-D vector
    assert mmr([1, 0], np.empty((0, 2)), 3) == [] and mmr([1, 0], [[1, 0]], 0) == []
