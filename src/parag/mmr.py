"""Maximal marginal relevance: a diverse top-k out of a larger set of candidates.

MMR (Carbonell & Goldstein, 1998) picks, one at a time, the candidate that maximises
``lambda_mult * sim(query, c) - (1 - lambda_mult) * max(sim(c, s) for s already picked)``,
with cosine similarity for ``sim``. ``lambda_mult=1`` keeps the similarity order; ``0``
maximises diversity. The LangChain and LlamaIndex stores use it for their MMR searches,
over the stored vectors of a store's ``fetch_k`` nearest hits.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from parag._validation import check_int, check_real, check_values
from parag.errors import InvalidArgumentError, InvalidTypeError


def mmr(query: npt.ArrayLike, candidates: npt.ArrayLike, k: int, lambda_mult: float = 0.5) -> list[int]:
    """Positions in ``candidates`` of the ``min(k, len(candidates))`` MMR picks, in pick order.

    Parameters
    ----------
    query : array-like, shape (d,)
    candidates : array-like, shape (n, d)
    k : int >= 0
        How many to pick.
    lambda_mult : float in [0, 1]
        Weight of relevance against diversity.

    Raises InvalidTypeError for a non-number argument, InvalidArgumentError for one out of
    range or of the wrong shape, or for a query or candidate with NaN or infinity (or a length
    beyond what a store accepts, as for a store's vectors); each message names the argument
    (and the row).

    Examples
    --------
    >>> mmr([1, 0], [[1, 0], [1, 0.01], [0.6, 0.8]], k=2, lambda_mult=0.3)
    [0, 2]
    >>> mmr([1, 0], [[1, 0], [1, 0.01], [0.6, 0.8]], k=2, lambda_mult=1.0)
    [0, 1]
    """
    lambda_mult = check_real(lambda_mult, "lambda_mult")
    k = check_int(k, "k", low=0)
    c = _floats(candidates, "candidates")
    if c.ndim > 2:
        raise InvalidArgumentError(f"candidates must be one vector or an (n, d) array, got shape {c.shape}")
    c = _unit(_finite(np.atleast_2d(c), "candidates"))
    if c.size == 0 or k == 0:
        return []
    q = _unit(_finite(_floats(query, "query").reshape(1, -1), "query"))
    if q.shape[1] != c.shape[1]:
        raise InvalidArgumentError(f"query has dimension {q.shape[1]} but the candidates have {c.shape[1]}")
    relevance = (c @ q.T).ravel()
    picked = [int(np.argmax(relevance))]
    # the highest similarity of each candidate to any candidate picked so far
    redundancy = c @ c[picked[0]]
    while len(picked) < min(k, len(c)):
        score = lambda_mult * relevance - (1 - lambda_mult) * redundancy
        score[picked] = -np.inf
        best = int(np.argmax(score))
        picked.append(best)
        redundancy = np.maximum(redundancy, c @ c[best])
    return picked


def _floats(x: npt.ArrayLike, name: str) -> np.ndarray:
    """``x`` as a float64 array, or an InvalidTypeError naming ``name``."""
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InvalidTypeError(f"{name} must be an array of numbers: {e}") from None


def _finite(x: np.ndarray, name: str) -> np.ndarray:
    """``x`` (2-D), once the store's check of vectors (:func:`check_values`, on ``x`` in
    float32) has found no row with NaN or infinity: else InvalidArgumentError naming ``name``
    and the row. (NaN would otherwise compare False to every score and be picked first.)"""
    if x.size:
        with np.errstate(over="ignore"):  # values beyond float32 become inf, reported as such
            check_values(np.ascontiguousarray(x, dtype=np.float32), name)
    return x


def _unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero: similarity 0 to everything)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)
