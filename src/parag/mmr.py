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

from parag.errors import InvalidArgumentError


def mmr(query: npt.ArrayLike, candidates: npt.ArrayLike, k: int, lambda_mult: float = 0.5) -> list[int]:
    """Positions in ``candidates`` of the ``min(k, len(candidates))`` MMR picks, in pick order.

    Parameters
    ----------
    query : array-like, shape (d,)
    candidates : array-like, shape (n, d)
    k : int
        How many to pick.
    lambda_mult : float in [0, 1]
        Weight of relevance against diversity.

    Examples
    --------
    >>> mmr([1, 0], [[1, 0], [1, 0.01], [0.6, 0.8]], k=2, lambda_mult=0.3)
    [0, 2]
    >>> mmr([1, 0], [[1, 0], [1, 0.01], [0.6, 0.8]], k=2, lambda_mult=1.0)
    [0, 1]
    """
    if not 0.0 <= float(lambda_mult) <= 1.0:
        raise InvalidArgumentError(f"lambda_mult must be between 0 and 1, got {lambda_mult!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise InvalidArgumentError(f"k must be a non-negative int, got {k!r}")
    c = _unit(np.atleast_2d(np.asarray(candidates, dtype=np.float64)))
    if c.size == 0 or k == 0:
        return []
    q = _unit(np.asarray(query, dtype=np.float64).reshape(1, -1))
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


def _unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero: similarity 0 to everything)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)
