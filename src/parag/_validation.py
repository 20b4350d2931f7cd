"""Input checks shared by every public method.

Each helper converts its argument once into the form the store works with and raises a
:mod:`parag.errors` exception that names the argument when it cannot.
"""

from __future__ import annotations

import numbers
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from parag.errors import (
    DimensionMismatchError,
    DuplicateIdError,
    InvalidArgumentError,
    InvalidTypeError,
)

MAX_ID = np.iinfo(np.int64).max


_FLOAT32 = np.dtype(np.float32)  # a singleton: ``is`` spares the search path the dtype conversion of ``==``

#: The largest squared L2 norm (float32, as FAISS computes it) a vector or query may have,
#: about 2.1e37 (a length of about 4.6e18). For two vectors within it, the squared L2
#: distance is at most (|a| + |b|)^2 <= 4 * MAX_SQUARED_NORM and the inner product at most
#: MAX_SQUARED_NORM in size; so are FAISS's intermediate sums (|a|^2 + |b|^2 - 2 a.b, and
#: IVF centroids, means of vectors, are no longer than they are). So every distance and score
#: stays finite, with a further factor 4 below float32's max (3.4e38) for rounding. Beyond it
#: FAISS gets inf for every distance, answers label -1, and a search would return nonsense.
MAX_SQUARED_NORM = float(np.finfo(np.float32).max) / 16


def as_vectors(
    x: npt.ArrayLike, dimension: int, name: str = "vectors", check: bool = True
) -> tuple[np.ndarray, bool]:
    """Convert one vector (1-D) or many (2-D) to a float32 C-contiguous (n, dimension) array.

    Returns the array and whether the input was a single 1-D vector. No copy is made when
    ``x`` already is float32 and C-contiguous. ``check=False`` leaves the check of the values
    (:func:`check_values`) to the caller (:class:`values_check`).
    """
    if checked_query_pointer(x, dimension) is not None:
        return x[None], True  # (a (1, d) view: indexing costs half a reshape call)
    return converted_vectors(x, dimension, name, check)


def converted_vectors(
    x: npt.ArrayLike, dimension: int, name: str = "vectors", check: bool = True
) -> tuple[np.ndarray, bool]:
    """:func:`as_vectors` without its first step, for a caller that has already tried
    :func:`checked_query_pointer` on ``x`` and been turned down: ``x`` converted, or rejected."""
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
    with np.errstate(over="ignore"):  # values beyond float32 become inf, reported below
        arr = np.ascontiguousarray(arr, dtype=np.float32)
    if check:
        check_values(arr, name)
    return arr, single


def checked_query_pointer(x: Any, dimension: int) -> Any | None:
    """FAISS's pointer to ``x`` (``faiss.swig_ptr``) when ``x`` is one C-contiguous float32
    vector of shape ``(dimension,)`` that :func:`check_values` accepts, else None: the query
    of a single-query search as FAISS takes it, with nothing to convert (anything else is for
    :func:`as_vectors` to convert or reject).

    Every step here runs on a CPU cache that the previous search emptied (~1-2 us a step,
    10x its warm cost), hence the few of them: the shape compared as a tuple, contiguity left
    to ``swig_ptr`` (it raises ValueError on a strided array), one pointer for both FAISS calls.
    """
    if type(x) is np.ndarray and x.dtype is _FLOAT32 and x.shape == (dimension,):
        try:
            pointer = faiss.swig_ptr(x)
        except ValueError:  # not C-contiguous
            return None
        # check_values's rule for one row: its squared norm within the limit (NaN, inf and
        # overflow compare False, and go to as_vectors' general path to be reported). FAISS
        # computes it without numpy's floating-point error checks (no overflow warning).
        if faiss.fvec_norm_L2sqr(pointer, dimension) <= MAX_SQUARED_NORM:
            return pointer
    return None


def check_values(x: np.ndarray, name: str, total: float | None = None) -> None:
    """Raise InvalidArgumentError, naming the first bad row, unless every row of ``x``
    (float32, 2-D, C-contiguous) is finite with a squared norm of at most
    :data:`MAX_SQUARED_NORM` (so that every distance between vectors stays finite).
    ``total``: ``x``'s :func:`_squares`, when already computed."""
    # One sum of squares over the array costs what a float32 sum does (one pass), far less
    # than a pass per row. Within half the limit, every row is within the limit (a float32
    # sum of non-negative terms never falls far below any row's part of it); anything else
    # (NaN, inf, huge values) is decided row by row, by the same arithmetic as checked_query_pointer.
    if (_squares(x) if total is None else total) <= MAX_SQUARED_NORM / 2:
        return
    norms = np.empty(len(x), np.float32)
    faiss.fvec_norms_L2sqr(faiss.swig_ptr(norms), faiss.swig_ptr(x), x.shape[1], len(x))
    bad = ~(norms <= MAX_SQUARED_NORM)  # (NaN compares False)
    if not bad.any():
        return
    infinite = ~np.isfinite(x).all(axis=1)
    if infinite.any():
        rows = np.flatnonzero(infinite)
        raise InvalidArgumentError(
            f"{name} contain NaN or infinity (after conversion to float32) in "
            f"{len(rows)} row(s), first at row {rows[0]}"
        )
    rows = np.flatnonzero(bad)
    raise InvalidArgumentError(
        f"{name} row {rows[0]} has a squared length of {norms[rows[0]]:.3g} in float32, over the limit of "
        f"{MAX_SQUARED_NORM:.3g} ({len(rows)} row(s) are over it): distances between such vectors overflow float32; "
        "scale the vectors down (dividing every vector and query by one factor keeps the neighbours)"
    )


def _squares(x: np.ndarray) -> float:
    """The float32 sum of the squares of every value of ``x`` (C-contiguous float32), by
    FAISS: one pass, no numpy overflow warning, the GIL released (for values_check's thread)."""
    return faiss.fvec_norm_L2sqr(faiss.swig_ptr(x), x.size)


# From this many values (4 MB) on, values_check sums on a second thread: starting one costs
# ~0.1 ms, the sum of squares of 100k x 384 values ~10 ms (memory-bound), overlapped with the
# metadata's encoding.
BACKGROUND_CHECK_MIN = 1_000_000


class values_check:
    """``with values_check(x, name):`` checks ``x`` as :func:`check_values` does before the
    block, or, for a large ``x``, on a second thread while the block runs (FAISS releases
    the GIL): an add sums its vectors' squares while it encodes
    their metadata. The vectors' error then takes precedence over the block's own (an
    Exception), as if they had been checked first; an interrupt (KeyboardInterrupt,
    SystemExit) goes on at once, unchecked. ``background=False``: before the block whatever
    the size (a second thread is busy already, e.g. with FAISS's add of ``x``)."""

    def __init__(self, x: np.ndarray, name: str, background: bool = True) -> None:
        self._x, self._name, self._background = x, name, background
        self._total: float | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> None:
        if self._x.size < BACKGROUND_CHECK_MIN or not self._background:
            check_values(self._x, self._name)
            return
        thread = threading.Thread(target=self._sum, name="parag-values-check", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # no thread to be had (a limit, interpreter shutdown): check now
            check_values(self._x, self._name)
            return
        self._thread = thread

    def _sum(self) -> None:
        self._total = _squares(self._x)

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        if self._thread is None or (kind is not None and not issubclass(kind, Exception)):
            return
        self._thread.join()
        check_values(self._x, self._name, self._total)  # (summed here if the thread failed)


UNIT_TOLERANCE = 4 * float(np.finfo(np.float32).eps)  # |norm - 1| of a row already normalised in float32


def unit_rows(x: np.ndarray, name: str) -> np.ndarray:
    """Unit-length copies of the rows of ``x`` (a cosine store's vectors and queries), already
    checked by :func:`check_values` (so no norm here can overflow)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if not norms.all():
        row = int(np.flatnonzero(norms == 0)[0])
        raise InvalidArgumentError(
            f"{name} row {row} is all zeros: its cosine similarity is undefined; "
            "give a nonzero vector or drop the row"
        )
    # A row of unit length within float32 rounding (a stored vector added again: export + build,
    # migrate, an upsert of get's rows) stays bit-identical; dividing by 1 +- an ulp would move it.
    norms[np.abs(norms - 1) <= UNIT_TOLERANCE] = 1
    return x / norms


def normalised(x: np.ndarray, name: str, metric: str) -> np.ndarray:
    """:func:`unit_rows` of ``x`` for a cosine store, ``x`` itself for any other ``metric``."""
    return unit_rows(x, name) if metric == "cosine" else x


def check_int(value: Any, name: str, low: int = 1, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]``: the one integer check of every public method.

    A non-integer (a float, a bool, a string...) raises InvalidTypeError, an integer out of
    range InvalidArgumentError; both messages name the argument and the valid range.

    Examples
    --------
    >>> check_int(3, "k")
    3
    >>> check_int(0, "k")
    Traceback (most recent call last):
    ...
    parag.errors.InvalidArgumentError: k must be a positive int, got 0
    >>> check_int(2.0, "nlist", 1, 1024)
    Traceback (most recent call last):
    ...
    parag.errors.InvalidTypeError: nlist must be an int in [1, 1024], got 2.0
    """
    if type(value) is int and value >= low and (high is None or value <= high):
        return value  # the common case, before any message is formatted (every search checks k)
    if high is not None:
        wanted = f"an int in [{low}, {high}]"
    else:
        wanted = "a positive int" if low == 1 else f"an int >= {low}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidTypeError(f"{name} must be {wanted}, got {value!r}")
    if value < low or (high is not None and value > high):
        raise InvalidArgumentError(f"{name} must be {wanted}, got {value}")
    return int(value)


def check_real(value: Any, name: str, low: float = 0, high: float = 1, low_open: bool = False) -> float:
    """``value`` as a float in ``[low, high]`` (``(low, high]`` with ``low_open``): the real
    number check, as :func:`check_int` is the integer one.

    A non-number (a string, a list, None, a bool) raises InvalidTypeError, a number out of
    range (NaN included) InvalidArgumentError; both messages name the argument and the range.

    Examples
    --------
    >>> check_real(0.5, "lambda_mult")
    0.5
    >>> check_real("0.5", "lambda_mult")
    Traceback (most recent call last):
    ...
    parag.errors.InvalidTypeError: lambda_mult must be a float in [0, 1], got '0.5'
    """
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidTypeError(f"{name} must be a float in {interval}, got {value!r}")
    if not ((low < value) if low_open else (low <= value)) or not value <= high:  # NaN fails both
        raise InvalidArgumentError(f"{name} must be in {interval}, got {value}")
    return float(value)


def check_k(k: Any) -> int:
    """Return ``k`` as an int, or raise unless it is a positive integer."""
    return check_int(k, "k")


@dataclass(frozen=True)
class Param:
    """One parameter of an index kind: its name, default and range (or, for a choice, the
    values it may take), and whether a single search may override it. Kinds declare a
    table of these; the constructor, per-search overrides, ``tune`` and ``load`` all check
    values against it."""

    name: str
    default: int | str
    low: int = 1
    high: int | None = None
    per_search: bool = False
    choices: tuple[str, ...] = ()

    def check(self, value: Any) -> int | str:
        if self.choices:
            return check_choice(value, self.name, {c.lower(): c for c in self.choices})
        return check_int(value, self.name, self.low, self.high)


def as_ids(ids: Any, name: str = "ids", unique: bool = True, count: int | None = None) -> np.ndarray:
    """Convert one id or an iterable of ids to a 1-D int64 array of non-negative ids.

    With ``unique`` (the default) a repeated id is an error; with ``count``, a number of
    ids other than ``count`` (one id for each of ``count`` vectors).
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
        # Python ints beyond int64 make numpy choose object (or, beside small ones, float64)
        given = ids if isinstance(ids, list) else arr.tolist() if arr.dtype == object else []
        if given and all(type(v) is int for v in given):
            raise InvalidArgumentError(f"{name} must fit in int64, got {max(given, key=abs)}")
        raise InvalidTypeError(f"{name} must be ints, got {arr.dtype} values")
    if arr.dtype.kind == "u" and arr.size and arr.max() > MAX_ID:
        raise InvalidArgumentError(f"{name} must fit in int64, got {arr.max()}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and arr.min() < 0:
        raise InvalidArgumentError(f"{name} must be non-negative, got {arr.min()}")
    if unique and len(np.unique(arr)) != len(arr):
        values, counts = np.unique(arr, return_counts=True)
        raise DuplicateIdError(f"{name} contain duplicates: {values[counts > 1][:10].tolist()}")
    if count is not None and len(arr) != count:
        raise InvalidArgumentError(f"{name} has {len(arr)} items but there are {count} vectors")
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
