"""How often the pools of one zone go down together, learned online from the availability a policy sees.

A pool's own risk says how likely it is to fail; it does not say whether the pool an interrupted instance
moves to fails *because* the first did. Pools of one availability zone share power, network and often the
capacity crunch that took the first one. This model counts, per zone, the hours a pool stayed up while a
zone-mate had gone down within the last horizon, and the failures that followed in those hours: a hazard
rate of "following a zone-mate down". Its chance within the horizon is what an instance that flees a
failed pool to a zone-mate should expect; pools of other zones follow at their own risk.

Each zone's rate is backed off to the rate of all zones (a few hours' weight), so a zone never seen to fail
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
IntArray = npt.NDArray[np.intp]

PRIOR_HOURS = 4.0  # weight of the all-zones rate in a zone's estimate, in hours of exposure
GLOBAL_PRIOR_FOLLOWS = 0.5  # before anything is seen: half a follow in ...
GLOBAL_PRIOR_HOURS = 4.0  # ... four hours, a hazard of 1/8 per hour


def zone_index(pools: Sequence[Pool]) -> tuple[IntArray, int]:
    """Each pool's zone as an index (in order of first appearance), and the number of zones.

    >>> zone_index([Pool("a", "us-east-1a"), Pool("b", "us-east-1c"), Pool("c", "us-east-1a")])[0].tolist()
    [0, 1, 0]
    """
    seen: dict[str, int] = {}
    idx = np.array([seen.setdefault(p.availability_zone, len(seen)) for p in pools], dtype=np.intp)
    return idx, len(seen)


@dataclass(slots=True)
class ZoneCoFailure:
    """Online hazard of a pool going down within ``horizon_s`` of a zone-mate (see the module docstring).

    >>> pools = (Pool("a", "z-1a"), Pool("b", "z-1a"), Pool("c", "z-1b"))
    >>> m = ZoneCoFailure(3600.0)
    >>> for t, up in enumerate([[1, 1, 1], [0, 1, 1], [0, 0, 1], [1, 1, 1], [0, 1, 1], [0, 0, 1]]):
    ...     m.learn_one(pools, np.array([up], dtype=bool), t * 600.0)
    >>> follow = m.follow_probability(pools)
    >>> bool(follow[0, 0] > follow[0, 2])  # zone z-1a has shown pools following each other down
    True
    """

    horizon_s: float = 3600.0
    _pools: tuple[Pool, ...] = ()
    _zone: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    _n_zones: int = 0
    _last_s: float = float("nan")
    _up: BoolArray = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))  # (M, P) last seen
    _down_at_s: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))  # (M, P) last went down
    _exposure_h: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))  # (M, Z)
    _follows: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))  # (M, Z)

    def _align(self, pools: Sequence[Pool], rows: int) -> None:
        """Start over for a new set of pools or rows (the live engine's pools only grow: keep what is kept)."""
        pools = tuple(pools)
        if pools == self._pools and self._up.shape[0] == rows:
            return
        old = {p: i for i, p in enumerate(self._pools)}
        zone, n_zones = zone_index(pools)
        up = np.ones((rows, len(pools)), dtype=bool)
        down_at = np.full((rows, len(pools)), -np.inf)
        exposure, follows = np.zeros((rows, n_zones)), np.zeros((rows, n_zones))
        if self._up.shape[0] == rows and old:
            for j, p in enumerate(pools):
                i = old.get(p)
                if i is not None:
                    up[:, j], down_at[:, j] = self._up[:, i], self._down_at_s[:, i]
                    exposure[:, zone[j]] = self._exposure_h[:, self._zone[i]]
                    follows[:, zone[j]] = self._follows[:, self._zone[i]]
        self._pools, self._zone, self._n_zones = pools, zone, n_zones
        self._up, self._down_at_s, self._exposure_h, self._follows = up, down_at, exposure, follows

    def learn_one(self, pools: Sequence[Pool], available: BoolArray, now_s: float) -> None:
        """One look at every pool's availability, ``available`` (M, P); time must not go backwards."""
        self._align(pools, available.shape[0])
        dt_h = 0.0 if not np.isfinite(self._last_s) else max(0.0, (now_s - self._last_s) / 3600.0)
        if dt_h > 0.0 and self._zone.size:
            went_down = self._up & ~available
            # A zone-mate went down within the horizon before this look: count each zone's mates per pool.
            recent = (self._down_at_s > self._last_s - self.horizon_s).astype(np.float64)
            recent_in_zone = np.zeros_like(self._exposure_h)
            np.add.at(recent_in_zone.T, self._zone, recent.T)
            mate_recent = (recent_in_zone[:, self._zone] - recent) > 0.0  # (M, P)
            watched = self._up & mate_recent
            np.add.at(self._exposure_h.T, self._zone, (watched * dt_h).T)
            np.add.at(self._follows.T, self._zone, (watched & went_down).astype(np.float64).T)
            self._down_at_s = np.where(went_down, now_s, self._down_at_s)
        self._up = available.copy()
        self._last_s = now_s

    def follow_hazard_per_hour(self) -> FloatArray:
        """(M, Z) rate of following a zone-mate down, each zone backed off to all zones of its row."""
        total_follows = self._follows.sum(axis=1, keepdims=True) + GLOBAL_PRIOR_FOLLOWS
        total_hours = self._exposure_h.sum(axis=1, keepdims=True) + GLOBAL_PRIOR_HOURS
        prior = total_follows / total_hours
        rate: FloatArray = (self._follows + PRIOR_HOURS * prior) / (self._exposure_h + PRIOR_HOURS)
        return rate

    def follow_probability(self, pools: Sequence[Pool], rows: int | None = None) -> FloatArray:
        """(M, P) P(the pool goes down within the horizon, given a zone-mate just did)."""
        if tuple(pools) != self._pools or (rows is not None and rows != self._up.shape[0]):
            self._align(pools, self._up.shape[0] if rows is None else rows)
        hazard = self.follow_hazard_per_hour()[:, self._zone]
        out: FloatArray = 1.0 - np.exp(-hazard * self.horizon_s / 3600.0)
        return out
