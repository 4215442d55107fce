"""Live features of every pool's availability history, kept as arrays so one tick updates all pools.

Every window is a multiple of the risk horizon ``H`` and every decay is a function of elapsed time,
never of a tick count, so the same model runs on 30 s probes, 195 s probes or 10 min probes.
Features (columns of :data:`FEATURES`):

* ``unavailable``: the pool's state now (1 = no spot capacity);
* ``log_age``: log of the time since the last state change, in horizons (a hazard clock);
* ``run_rel``: that age against this pool's typical completed run of the same state (log ratio), so a
  pool whose outages usually last minutes differs from one whose outages last days;
* ``share_1h/6h/24h``: the unavailable share over about 1, 6 and 24 horizons (time-decayed means);
* ``changes_24h``: log(1 + state changes over about 24 horizons): flapping pools flip again;
* hour of day and day of week (sin/cos), price against on-demand and its recent move, and the Spot
  Advisor band and placement score when a feed provides them (0 when unknown).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

FEATURES: tuple[str, ...] = (
    "unavailable",
    "log_age",
    "run_rel",
    "share_1h",
    "share_6h",
    "share_24h",
    "changes_24h",
    "hour_sin",
    "hour_cos",
    "dow_sin",
    "dow_cos",
    "price_ratio",
    "price_move",
    "advisor_band",
    "placement_score",
)
COLUMN = {name: i for i, name in enumerate(FEATURES)}
EXTRAS: tuple[str, ...] = ("price_ratio", "advisor_band", "placement_score")

# Windows in horizons: one, a quarter day and a day for H = 1 h; a completed run counts fully in the
# typical-run mean until it has this many predecessors, then the mean starts to forget.
SHARE_WINDOWS_H: tuple[float, float, float] = (1.0, 6.0, 24.0)
CHANGE_WINDOW_H = 24.0
RUN_MEMORY = 50.0
AGE_OFFSET_H = 1.0 / 32.0  # keeps log(age) finite at the instant of a change


def log_age_horizons(age_s: FloatArray, horizon_s: float) -> FloatArray:
    """log of an age measured in horizons, offset so a zero age stays finite.

    >>> log_age_horizons(np.array([0.0, 3600.0 - 112.5]), 3600.0).round(3).tolist()
    [-3.466, 0.0]
    """
    return np.log(np.maximum(age_s, 0.0) / horizon_s + AGE_OFFSET_H)


def calendar_features(now_s: float) -> tuple[float, float, float, float]:
    """Hour of day and day of week (UTC) on the unit circle.

    >>> [round(v, 3) for v in calendar_features(6 * 3600.0)]
    [1.0, 0.0, 0.223, -0.975]
    """
    hour = (now_s / 3600.0) % 24.0
    day = (now_s / 86400.0 + 3.0) % 7.0  # epoch day 0 was a Thursday; 0 = Monday
    return (
        math.sin(2 * math.pi * hour / 24.0),
        math.cos(2 * math.pi * hour / 24.0),
        math.sin(2 * math.pi * day / 7.0),
        math.cos(2 * math.pi * day / 7.0),
    )


class PoolIndex:
    """Stable pool key -> row number, growing as new pools appear."""

    __slots__ = ("_last", "index", "keys")

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.index: dict[str, int] = {}
        # The rows of the last tuple of keys that were all known: a live engine asks with the same tuple
        # every tick, and a known key's row never changes.
        self._last: tuple[tuple[str, ...], IntArray] | None = None

    def __getstate__(self) -> tuple[None, dict[str, Any]]:
        return None, {"index": self.index, "keys": self.keys}  # the default layout, without the memo

    def __setstate__(self, state: tuple[None, dict[str, Any]]) -> None:
        self.index, self.keys = state[1]["index"], state[1]["keys"]
        self._last = None

    def rows(self, keys: Sequence[str], add: bool) -> IntArray:
        """Row of each key; unknown keys get a new row when ``add`` else -1."""
        last = self._last
        if last is not None and keys is last[0]:
            return last[1].copy()
        found = [self.index.get(key) for key in keys]
        if None not in found:  # the steady state: every pool known
            rows = np.array(found, dtype=np.intp)
            if isinstance(keys, tuple):  # immutable, so the same object means the same keys
                self._last = (keys, rows.copy())
            return rows
        out = np.empty(len(keys), dtype=np.intp)
        for i, key in enumerate(keys):
            row = self.index.get(key)
            if row is None:
                if not add:
                    out[i] = -1
                    continue
                row = len(self.keys)
                self.keys.append(key)
                self.index[key] = row
            out[i] = row
        return out

    def __len__(self) -> int:
        return len(self.keys)


class FeatureState:
    """Per-pool running state from which :data:`FEATURES` are read at any time."""

    _ARRAYS: tuple[str, ...] = (
        "seen", "last_obs_s", "last_change_s", "run_known", "state", "share", "changes",
        "run_log_mean", "run_n", "cum_unavailable", "cum_observed", "price_ratio", "price_log_mean",
        "advisor_band", "placement_score",
    )  # fmt: skip

    def __init__(self, horizon_s: float) -> None:
        self.horizon_s = float(horizon_s)
        self.capacity = 0
        self.seen = np.zeros(0, dtype=bool)
        self.last_obs_s = np.zeros(0)
        self.last_change_s = np.zeros(0)
        self.run_known = np.zeros(0, dtype=bool)  # the current run's start was observed
        self.state = np.zeros(0)
        self.share = np.zeros((0, len(SHARE_WINDOWS_H)))
        self.changes = np.zeros(0)
        self.run_log_mean = np.zeros((0, 2))  # mean log run length (horizons) per state (0 avail, 1 not)
        self.run_n = np.zeros((0, 2))
        self.cum_unavailable = np.zeros(0, dtype=np.int64)
        self.cum_observed = np.zeros(0, dtype=np.int64)
        self.price_ratio = np.full(0, np.nan)
        self.price_log_mean = np.full(0, np.nan)
        self.advisor_band = np.full(0, np.nan)
        self.placement_score = np.full(0, np.nan)

    def ensure(self, n_rows: int) -> None:
        """Grow every per-pool array to hold ``n_rows`` pools (doubling, so growth is amortised)."""
        if n_rows <= self.capacity:
            return
        new_cap = max(n_rows, 2 * self.capacity, 8)
        for name in self._ARRAYS:
            old = getattr(self, name)
            fill = (
                np.nan
                if old.dtype == np.float64
                and name in {"price_ratio", "price_log_mean", "advisor_band", "placement_score"}
                else 0
            )
            new = np.full((new_cap, *old.shape[1:]), fill, dtype=old.dtype)
            new[: old.shape[0]] = old
            setattr(self, name, new)
        self.capacity = new_cap

    def update(
        self,
        now_s: float,
        rows: IntArray,
        unavailable: FloatArray,
        extras: Mapping[str, FloatArray] | None = None,
    ) -> FloatArray:
        """Fold one observation per given row into the state (rows unique; extras NaN when unknown).

        Returns each row's time since its previous probe (0 for a pool's first probe)."""
        h = self.horizon_s
        fresh = ~self.seen[rows]
        if fresh.any():
            fr = rows[fresh]
            self.seen[fr] = True
            self.last_obs_s[fr] = now_s
            self.last_change_s[fr] = now_s
            self.run_known[fr] = False
            self.state[fr] = unavailable[fresh]
            self.share[fr] = unavailable[fresh, None]
            self.changes[fr] = 0.0
        dt = np.maximum(now_s - self.last_obs_s[rows], 0.0)
        prev = self.state[rows]
        # The state held since the last probe; decay towards it, then record the new state.
        a = np.exp(-dt[:, None] / np.array([window_h * h for window_h in SHARE_WINDOWS_H]))
        self.share[rows] = a * self.share[rows] + (1.0 - a) * prev[:, None]
        changed = prev != unavailable
        self.changes[rows] = self.changes[rows] * np.exp(-dt / (CHANGE_WINDOW_H * h)) + changed
        if changed.any():
            cr = rows[changed]
            ended_state = prev[changed].astype(np.intp)
            known = self.run_known[cr]
            if known.any():
                kr, ks = cr[known], ended_state[known]
                run_log = np.log((now_s - self.last_change_s[kr]) / h + AGE_OFFSET_H)
                n = np.minimum(self.run_n[kr, ks], RUN_MEMORY) + 1.0
                self.run_log_mean[kr, ks] += (run_log - self.run_log_mean[kr, ks]) / n
                self.run_n[kr, ks] += 1.0
            self.last_change_s[cr] = now_s
            self.run_known[cr] = True
        self.state[rows] = unavailable
        self.last_obs_s[rows] = now_s
        self.cum_unavailable[rows] += unavailable.astype(np.int64)
        self.cum_observed[rows] += 1
        if extras:
            self._update_extras(now_s, rows, dt, extras)
        return dt

    def _update_extras(self, now_s: float, rows: IntArray, dt: FloatArray, extras: Mapping[str, FloatArray]) -> None:
        _ = now_s
        ratio = extras.get("price_ratio")
        if ratio is not None:
            ok = np.isfinite(ratio) & (ratio > 0)
            r, v = rows[ok], np.log(ratio[ok])
            old = self.price_log_mean[r]
            a = np.exp(-dt[ok] / (CHANGE_WINDOW_H * self.horizon_s))
            self.price_log_mean[r] = np.where(np.isnan(old), v, a * old + (1.0 - a) * v)
            self.price_ratio[r] = ratio[ok]
        for name in ("advisor_band", "placement_score"):
            values = extras.get(name)
            if values is not None:
                ok = np.isfinite(values)
                getattr(self, name)[rows[ok]] = values[ok]

    def matrix(self, now_s: float, rows: IntArray) -> FloatArray:
        """The feature rows of the given pools as of ``now_s`` (ages run on between probes)."""
        h = self.horizon_s
        x = np.zeros((rows.size, len(FEATURES)))
        state = self.state[rows]
        x[:, 0] = state
        log_age = log_age_horizons(now_s - self.last_change_s[rows], h)
        x[:, 1] = log_age
        st = state.astype(np.intp)
        has_run = self.run_n[rows, st] > 0
        run_mean = self.run_log_mean[rows, st]
        # A pool with no completed run of this state yet borrows the mean of the pools that have one.
        n_all = self.run_n[: len(self.seen)]
        fallback = np.zeros(2)
        for s in (0, 1):
            w = n_all[:, s] > 0
            if w.any():
                fallback[s] = float(self.run_log_mean[: len(self.seen)][w, s].mean())
        x[:, 2] = log_age - np.where(has_run, run_mean, fallback[st])
        x[:, 3:6] = self.share[rows]
        x[:, 6] = np.log1p(self.changes[rows])
        x[:, 7:11] = calendar_features(now_s)
        ratio = self.price_ratio[rows]
        known = np.isfinite(ratio)
        x[:, 11] = np.where(known, ratio, 0.0)
        # These arrays hold finite values or NaN (unknown) only, so NaN -> 0 is all np.nan_to_num would do.
        log_mean = self.price_log_mean[rows]
        x[:, 12] = np.where(known, np.log(np.where(known, ratio, 1.0)) - np.where(np.isnan(log_mean), 0.0, log_mean),
                            0.0)
        advisor, placement = self.advisor_band[rows], self.placement_score[rows]
        x[:, 13] = np.where(np.isnan(advisor), 0.0, advisor)
        x[:, 14] = np.where(np.isnan(placement), 0.0, placement)
        return x
