"""Discrete contexts for the count models: the current state crossed with bucketed hazard features.

Buckets are on scales relative to the horizon (age in doublings of ``H/32``), not to any trace's tick,
so the same contexts mean the same thing on any probe interval.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from engine.learning.features import AGE_OFFSET_H, COLUMN

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

AGE_BUCKETS = 11  # age/H + 1/32 in doublings from 1/32 up to >= 32 horizons
SHARE_EDGES = np.array([0.02, 0.1, 0.3, 0.6])
RUN_EDGES = np.array([-1.5, -0.5, 0.5, 1.5])
CHANGE_EDGES = np.log1p(np.array([0.5, 2.0, 6.0]))
_LOG_AGE_OFFSET = np.log(AGE_OFFSET_H)
_LOG_2 = np.log(2.0)


def age_bucket(log_age: FloatArray) -> IntArray:
    """Doubling bucket of the age (``log_age`` as in :func:`features.log_age_horizons`).

    >>> age_bucket(np.log(np.array([1 / 32, 1.0, 1000.0]))).tolist()
    [0, 5, 10]
    """
    raw = np.floor((log_age - _LOG_AGE_OFFSET) / _LOG_2 + 1e-9)
    out: IntArray = np.minimum(np.maximum(raw, 0), AGE_BUCKETS - 1).astype(np.intp)
    return out


def _state(x: FloatArray) -> IntArray:
    return (x[:, COLUMN["unavailable"]] > 0.5).astype(np.intp)


def state_only(x: FloatArray) -> IntArray:
    """The state alone: the context of calibrated persistence."""
    return _state(x)


def state_age(x: FloatArray) -> IntArray:
    """state x age: the plain hazard of the current run."""
    return _state(x) * AGE_BUCKETS + age_bucket(x[:, COLUMN["log_age"]])


def state_age_share(x: FloatArray) -> IntArray:
    """state x age x unavailable share over about 6 horizons."""
    share = np.searchsorted(SHARE_EDGES, x[:, COLUMN["share_6h"]])
    return state_age(x) * (SHARE_EDGES.size + 1) + share


def state_age_run(x: FloatArray) -> IntArray:
    """state x age x (age against the pool's typical run of this state) x recent flapping."""
    run = np.searchsorted(RUN_EDGES, x[:, COLUMN["run_rel"]])
    flaps = np.searchsorted(CHANGE_EDGES, x[:, COLUMN["changes_24h"]])
    out: IntArray = (state_age(x) * (RUN_EDGES.size + 1) + run) * (CHANGE_EDGES.size + 1) + flaps
    return out


def state_of_state_only(ctx: IntArray) -> IntArray:
    return ctx


def state_of_state_age(ctx: IntArray) -> IntArray:
    return ctx // AGE_BUCKETS


def state_of_state_age_share(ctx: IntArray) -> IntArray:
    return ctx // (AGE_BUCKETS * (SHARE_EDGES.size + 1))


def state_of_state_age_run(ctx: IntArray) -> IntArray:
    out: IntArray = ctx // (AGE_BUCKETS * (RUN_EDGES.size + 1) * (CHANGE_EDGES.size + 1))
    return out


N_STATE = 2
N_STATE_AGE = 2 * AGE_BUCKETS
N_STATE_AGE_SHARE = N_STATE_AGE * (SHARE_EDGES.size + 1)
N_STATE_AGE_RUN = N_STATE_AGE * (RUN_EDGES.size + 1) * (CHANGE_EDGES.size + 1)
