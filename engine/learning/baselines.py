"""The baselines the risk model must beat, computed online over a whole trace with delayed labels.

They are written independently of the model (plain cumulative counts over the trace's arrays), so the
evaluation does not grade the model with its own machinery. At tick ``i`` a baseline has learned exactly
the labels of ticks ``j`` whose window ``(t_j, t_j + H]`` has ended, i.e. ``i - j >= delay_ticks``.

* ``base_rate``: the pool's running share of positive labels;
* ``persistence``: P(label | the pool's state now), counted per pool (Laplace-smoothed);
* ``recent_unavailability``: the score (unavailable now) + 0.5 x (unavailable share over the last 6 h),
  calibrated the same way over bins of the score.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

RECENT_WINDOW_S = 6 * 3600.0
SHARE_BINS = 10  # per state, so the calibrated score has 2 x 10 levels


def window_ticks(horizon_s: float, tick_s: float) -> tuple[int, int]:
    """(ticks inside a label window, ticks until a label has matured).

    >>> window_ticks(3600.0, 195.0)
    (18, 19)
    >>> window_ticks(3600.0, 600.0)
    (6, 6)
    """
    ratio = horizon_s / tick_s
    return max(math.floor(ratio + 1e-9), 1), max(math.ceil(ratio - 1e-9), 1)


def labels(unavailable: BoolArray, window: int) -> tuple[FloatArray, BoolArray]:
    """Label of each tick (unavailable at one of the next ``window`` ticks) and whether it is complete.

    >>> y, ok = labels(np.array([[False], [False], [True], [False]]), 2)
    >>> y[:, 0].tolist(), ok[:, 0].tolist()
    ([1.0, 1.0, 0.0, 0.0], [True, True, False, False])
    """
    n = unavailable.shape[0]
    cum = np.vstack([np.zeros((1, unavailable.shape[1])), np.cumsum(unavailable, axis=0)])
    idx = np.arange(n)
    end = np.minimum(idx + window, n - 1)
    y = (cum[end + 1] - cum[idx + 1]) > 0
    complete = np.broadcast_to((idx + window <= n - 1)[:, None], unavailable.shape).copy()
    return y.astype(np.float64), complete


def _matured_counts(weights: FloatArray, delay: int) -> FloatArray:
    """Per tick i, the sum of ``weights[j]`` over ``j <= i - delay`` (0 before any has matured)."""
    cum = np.cumsum(weights, axis=0)
    out = np.zeros_like(cum)
    out[delay:] = cum[: cum.shape[0] - delay]
    return out


def calibrated_by_level(
    level: npt.NDArray[np.intp], n_levels: int, y: FloatArray, ok: BoolArray, delay: int
) -> FloatArray:
    """Online Laplace-smoothed P(label | level), per pool, from matured labels only."""
    out = np.empty(y.shape)
    yk = np.where(ok, y, 0.0)
    for k in range(n_levels):
        at = (level == k) & ok
        pos = _matured_counts(np.where(at, yk, 0.0), delay)
        total = _matured_counts(at.astype(np.float64), delay)
        out = np.where(level == k, (pos + 1.0) / (total + 2.0), out)
    return out


def recent_share(unavailable: BoolArray, tick_s: float, window_s: float = RECENT_WINDOW_S) -> FloatArray:
    """Share of unavailable ticks among the ticks in the last ``window_s`` (current tick included).

    >>> recent_share(np.array([[True], [False], [False]]), 3600.0, 7200.0)[:, 0].tolist()
    [1.0, 0.5, 0.0]
    """
    width = max(round(window_s / tick_s), 1)
    cum = np.vstack([np.zeros((1, unavailable.shape[1])), np.cumsum(unavailable, axis=0)])
    idx = np.arange(unavailable.shape[0])
    lo = np.maximum(idx + 1 - width, 0)
    return (cum[idx + 1] - cum[lo]) / (idx + 1 - lo)[:, None]


def baseline_predictions(
    unavailable: BoolArray, tick_s: float, horizon_s: float
) -> tuple[dict[str, FloatArray], FloatArray, BoolArray]:
    """Each baseline's online prediction (T, P), and the labels with their completeness mask."""
    window, delay = window_ticks(horizon_s, tick_s)
    y, ok = labels(unavailable, window)
    state = unavailable.astype(np.intp)
    zeros = np.zeros_like(state)
    share = recent_share(unavailable, tick_s)
    share_bin = np.minimum((share * SHARE_BINS).astype(np.intp), SHARE_BINS - 1)
    return (
        {
            "base_rate": calibrated_by_level(zeros, 1, y, ok, delay),
            "persistence": calibrated_by_level(state, 2, y, ok, delay),
            "recent_unavailability": calibrated_by_level(state * SHARE_BINS + share_bin, 2 * SHARE_BINS, y, ok, delay),
        },
        y,
        ok,
    )
