"""Input checks shared by every public method.

Each helper converts its argument once into the form the store works with and raises a
:mod:`parag.errors` exception that names the argument when it cannot.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from parag.errors import (
    DimensionMismatchError,
    DuplicateIdError,
    InvalidArgumentError,
    InvalidTypeError,
)

MAX_ID = np.iinfo(np.int64).max


def as_vectors(
    x: npt.ArrayLike, dimension: int, name: str = "vectors"
) -> tuple[np.ndarray, bool]:
    """Convert one vector (1-D) or many (2-D) to a float32 C-contiguous (n, dimension) array.

    Returns the array and whether the input was a single 1-D vector. No copy is made when
    ``x`` already is float32 and C-contiguous.
    """
    if isinstance(x, (str, bytes)):
        raise InvalidTypeError(f"{name} must be numbers, got a {type(x).__name__}")
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as e:
        raise InvalidArgumentError(
            f"{name} must be a rectangular array of numbers (all rows the same length): {e}"
        ) from None
    if arr.dtype.kind not in "iuf":
        raise InvalidTypeError(
            f"{name} must be real numbers (int or float), got an array of dtype {arr.dtype}"
        )
    single = arr.ndim == 1
    if single:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise InvalidArgumentError(
            f"{name} must be one vector (1-D) or a batch of vectors (2-D), "
            f"got an array of shape {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise InvalidArgumentError(f"{name} is empty: give at least one vector")
    if arr.shape[1] != dimension:
        raise DimensionMismatchError(
            f"{name} must have dimension {dimension} (the store's), got {arr.shape[1]}"
        )
    # One float32 sum is far cheaper than an isfinite() pass; only a non-finite sum
    # (a NaN/inf, or an overflow of huge values) needs the exact element-wise check.
    # Overflows (values beyond float32, huge finite sums) are expected here: no numpy warning.
    with np.errstate(over="ignore"):
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        total = arr.sum(dtype=np.float32)
    if not np.isfinite(total):
        bad = ~np.isfinite(arr).all(axis=1)
        if bad.any():
            rows = np.flatnonzero(bad)
            raise InvalidArgumentError(
                f"{name} contain NaN or infinity (after conversion to float32) in "
                f"{len(rows)} row(s), first at row {rows[0]}"
            )
    return arr, single


def check_k(k: Any) -> int:
    """Return ``k`` as an int, or raise unless it is a positive integer."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise InvalidTypeError(f"k must be a positive int, got {k!r}")
    if k <= 0:
        raise InvalidArgumentError(f"k must be a positive int, got {k}")
    return int(k)


def as_ids(ids: Any, name: str = "ids", unique: bool = True) -> np.ndarray:
    """Convert one id or an iterable of ids to a 1-D int64 array of non-negative ids.

    With ``unique`` (the default) a repeated id is an error.
    """
    if isinstance(ids, (str, bytes)) or isinstance(ids, bool):
        raise InvalidTypeError(f"{name} must be ints, got {ids!r}")
    if isinstance(ids, numbers.Integral):
        ids = [ids]
    elif not isinstance(ids, np.ndarray) and isinstance(ids, Iterable):
        ids = list(ids)
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise InvalidArgumentError(f"{name} must be a flat sequence of ints, got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        raise InvalidTypeError(f"{name} must be ints, got {arr.dtype} values")
    if arr.dtype.kind == "u" and arr.size and arr.max() > MAX_ID:
        raise InvalidArgumentError(f"{name} must fit in int64, got {arr.max()}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and arr.min() < 0:
        raise InvalidArgumentError(f"{name} must be non-negative, got {arr.min()}")
    if unique and len(np.unique(arr)) != len(arr):
        values, counts = np.unique(arr, return_counts=True)
        raise DuplicateIdError(f"{name} contain duplicates: {values[counts > 1][:10].tolist()}")
    return arr


def check_choice(value: Any, name: str, choices: dict[str, str]) -> str:
    """Return the canonical spelling of a case-insensitive name from ``choices``."""
    if not isinstance(value, str) or value.lower() not in choices:
        valid = sorted(set(choices.values()))
        raise InvalidArgumentError(f"{name} must be one of {valid}, got {value!r}")
    return choices[value.lower()]


def check_bool(value: Any, name: str) -> bool:
    """``value`` if it is True or False (not 0, 1 or None), else InvalidTypeError naming ``name``."""
    if not isinstance(value, bool):
        raise InvalidTypeError(f"{name} must be True or False, got {value!r}")
    return value
