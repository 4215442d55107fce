"""The capacity score: a pool's recent share of time available, one definition for live and backtest.

Capacity-minded strategies (``capacity_optimized``, ``price_capacity_optimized`` and what builds on them)
prefer pools that have kept their capacity lately. The live :class:`~engine.region.RegionEngine` updates the
score at every observation, whatever the time since the last; the fleet simulator computes the same
recursion over a whole trace at once (:func:`capacity_series`), so both rank pools on the same numbers.

The score is an exponentially weighted share of time available: after ``dt`` seconds it moves towards the
pool's availability now by ``1 - exp(-dt / window)``. It starts at 1 (a pool is trusted until seen down),
and the first observation, with no time before it, leaves it there.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

CAPACITY_WINDOW_S = 6 * 3600.0  # the score's memory: a product choice (a few hours of history), not fitted


def updated_capacity(score: FloatArray, available: BoolArray, dt_s: float, window_s: float) -> FloatArray:
    """The scores ``dt_s`` seconds later, the pools' availability being ``available`` now.

    >>> updated_capacity(np.array([1.0, 1.0]), np.array([True, False]), 3600.0, 3600.0).round(3).tolist()
    [1.0, 0.368]
    """
    decay = math.exp(-max(0.0, dt_s) / window_s)
    out: FloatArray = decay * score + (1 - decay) * available.astype(np.float64)
    return out


def capacity_series(available: BoolArray, tick_s: float, window_s: float = CAPACITY_WINDOW_S) -> FloatArray:
    """(T, P) the score at every tick of an availability history (T, P), as a live engine observing every
    tick from the first would hold it.

    >>> capacity_series(np.array([[False], [False], [True]]), 3600.0, 3600.0).round(3).ravel().tolist()
    [1.0, 0.368, 0.767]
    """
    if window_s <= 0:
        raise ValueError(f"the capacity window must be positive, got {window_s!r}")
    out = np.empty(available.shape, dtype=np.float64)
    score = np.ones(available.shape[1], dtype=np.float64)
    for t in range(available.shape[0]):
        score = updated_capacity(score, available[t], 0.0 if t == 0 else tick_s, window_s)
        out[t] = score
    return out
