"""Each pool's long-run interruption rate, learned online from the availability a policy sees.

The risk model predicts the next horizon from the pool's state now: a pool that just came back reads as
risky, one that has been up all day as safe. An instance placed now stays for many horizons, so where it
goes should also be no worse on the pool's record over time: how often it went down per hour it was up.
Each pool's rate is backed off to the rate of all pools of its row (a few hours' weight), so a new pool
starts from what the region has shown. State is kept per market row (the live engine has one, the
simulator one per run), so runs never learn from one another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from engine.types import Pool

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

PRIOR_HOURS = 4.0  # weight of the all-pools rate in a pool's estimate, in hours up
GLOBAL_PRIOR_DOWNS = 0.5  # before anything is seen: half a failure in ...
GLOBAL_PRIOR_HOURS = 4.0  # ... four hours up


@dataclass(slots=True)
class PoolHazard:
    """Online failures per hour up, per pool and market row.

    >>> pools = (Pool("a", "z-1a"), Pool("b", "z-1b"))
    >>> h = PoolHazard(3600.0)
    >>> for t, up in enumerate([[1, 1], [0, 1], [1, 1], [0, 1], [1, 1], [0, 1]]):
    ...     h.learn_one(pools, np.array([up], dtype=bool), t * 600.0)
    >>> bool(np.isnan(h.probability()).all())  # 50 minutes watched: no record of its own yet
    True
    >>> for t, up in enumerate([[1, 1], [0, 1], [1, 1], [0, 1], [1, 1], [0, 1]] * 4, start=6):
    ...     h.learn_one(pools, np.array([up], dtype=bool), t * 600.0)
    >>> p = h.probability()
    >>> bool(p[0, 0] > p[0, 1])
    True
    """

    horizon_s: float = 3600.0
    _pools: tuple[Pool, ...] = ()
    _last_s: float = float("nan")
    _up: BoolArray = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))  # (M, P) last seen
    _up_h: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))  # (M, P) hours seen up
    _downs: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))  # (M, P) up -> down seen
    _seen_h: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))  # (M, P) hours watched

    def _align(self, pools: Sequence[Pool], rows: int) -> None:
        """Start over for new rows; keep what is known of pools seen before (live pools only grow)."""
        pools = tuple(pools)
        if pools == self._pools and self._up.shape[0] == rows:
            return
        shape = (rows, len(pools))
        up, up_h, downs, seen_h = np.ones(shape, dtype=bool), np.zeros(shape), np.zeros(shape), np.zeros(shape)
        if self._up.shape[0] == rows:
            old = {p: i for i, p in enumerate(self._pools)}
            for j, p in enumerate(pools):
                i = old.get(p)
                if i is not None:
                    up[:, j], up_h[:, j], downs[:, j] = self._up[:, i], self._up_h[:, i], self._downs[:, i]
                    seen_h[:, j] = self._seen_h[:, i]
        self._pools, self._up, self._up_h, self._downs, self._seen_h = pools, up, up_h, downs, seen_h

    def learn_one(self, pools: Sequence[Pool], available: BoolArray, now_s: float) -> None:
        """One look at every pool's availability, ``available`` (M, P); time must not go backwards."""
        self._align(pools, available.shape[0])
        dt_h = 0.0 if not np.isfinite(self._last_s) else max(0.0, (now_s - self._last_s) / 3600.0)
        if dt_h > 0.0:
            self._up_h += self._up * dt_h
            self._seen_h += dt_h
            self._downs += self._up & ~available
        self._up = available.copy()
        self._last_s = now_s

    def hazard_per_hour(self) -> FloatArray:
        """(M, P) failures per hour up, each pool backed off to all pools of its row."""
        prior = ((self._downs.sum(axis=1, keepdims=True) + GLOBAL_PRIOR_DOWNS)
                 / (self._up_h.sum(axis=1, keepdims=True) + GLOBAL_PRIOR_HOURS))
        rate: FloatArray = (self._downs + PRIOR_HOURS * prior) / (self._up_h + PRIOR_HOURS)
        return rate

    def probability(self) -> FloatArray:
        """(M, P) P(at least one failure within the horizon) at the pool's long-run rate; NaN until the
        pool has been watched for ``PRIOR_HOURS`` (before that its record is the prior, not its own)."""
        out: FloatArray = 1.0 - np.exp(-self.hazard_per_hour() * self.horizon_s / 3600.0)
        return np.where(self._seen_h >= PRIOR_HOURS, out, np.nan)
