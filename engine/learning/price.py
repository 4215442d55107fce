"""Spot price forecasts per pool at several horizons, never worse than persistence by construction.

Since AWS smoothed spot prices the last price is a very strong forecast. For each pool and horizon the
forecaster learns a correction on top of it (a ridge regression, with forgetting, of the log return over
the horizon on the price's distance from its own moving average, i.e. drift plus mean reversion), scores
both persistence and the corrected forecast on progressive validation as their targets mature, and
serves the corrected forecast only while its running MAE is strictly below persistence's for that pool
and horizon. Until then, and whenever it falls behind, the forecast *is* the last price.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.learning import snapshot
from engine.learning.features import PoolIndex
from engine.learning.labels import TIME_EPS_S

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

DEFAULT_HORIZONS_S: tuple[float, ...] = (3600.0, 86400.0, 604800.0)
RIDGE = 1e-3  # pulls the correction towards zero (= persistence) when evidence is thin
MEMORY_HORIZONS = 30.0  # the regression forgets with a time constant of this many horizons
# The correction is served only after this many horizons of matured evidence (targets a few seconds apart
# are one sample, not many), only while the forecasts actually served have not fallen behind, and only
# while its proven lead over persistence exceeds what the forecasts still in flight could lose: a served
# forecast can lose to persistence by at most |served - last price| (triangle inequality).
MIN_EVIDENCE_HORIZONS = 10.0


def horizon_label(horizon_s: float) -> str:
    """The report key of a horizon.

    >>> horizon_label(3600.0), horizon_label(604800.0), horizon_label(90.0)
    ('1h', '168h', '90s')
    """
    return f"{horizon_s / 3600.0:g}h" if horizon_s % 3600.0 == 0 else f"{horizon_s:g}s"


@dataclass(frozen=True, slots=True)
class _Pending:
    t_s: float
    rows: IntArray
    last_price: FloatArray
    corrected: FloatArray
    served: FloatArray
    signal: FloatArray  # regression input at t
    weight: FloatArray  # evidence in horizons: time since the pool's previous price / horizon


class _Horizon:
    """State of one horizon: the regression, the error sums and the pending forecasts."""

    def __init__(self, horizon_s: float) -> None:
        self.horizon_s = horizon_s
        self.pending: deque[_Pending] = deque()
        self.xx = np.zeros((0, 2, 2))
        self.xy = np.zeros((0, 2))
        self.coef = np.zeros((0, 2))
        self.abs_persistence = np.zeros(0)
        self.abs_corrected = np.zeros(0)
        self.abs_served = np.zeros(0)
        self.n = np.zeros(0)
        self.evidence = np.zeros(0)
        self.exposure = np.zeros(0)  # sum of |served - last price| over forecasts in flight
        self.log_mean = np.full(0, np.nan)
        self.last_learn_s: float | None = None

    def ensure(self, n_rows: int) -> None:
        have = self.n.size
        if n_rows <= have:
            return
        grow = max(n_rows, 2 * have, 8) - have
        self.xx = np.concatenate([self.xx, np.zeros((grow, 2, 2))])
        self.xy = np.concatenate([self.xy, np.zeros((grow, 2))])
        self.coef = np.concatenate([self.coef, np.zeros((grow, 2))])
        for name in ("abs_persistence", "abs_corrected", "abs_served", "n", "evidence", "exposure"):
            setattr(self, name, np.concatenate([getattr(self, name), np.zeros(grow)]))
        self.log_mean = np.concatenate([self.log_mean, np.full(grow, np.nan)])

    def corrected(self, rows: IntArray, price: FloatArray, signal: FloatArray) -> FloatArray:
        ret = self.coef[rows, 0] + self.coef[rows, 1] * signal
        out: FloatArray = price * np.exp(np.clip(ret, -1.0, 1.0))
        return out

    def serves_corrected(self, rows: IntArray, extra_exposure: FloatArray) -> npt.NDArray[np.bool_]:
        lead = self.abs_persistence[rows] - self.abs_corrected[rows]
        return (
            (self.evidence[rows] >= MIN_EVIDENCE_HORIZONS)
            & (lead > self.exposure[rows] + extra_exposure)
            & (self.abs_served[rows] <= self.abs_persistence[rows])
        )

    def mature(self, now_s: float, last_price: FloatArray, inclusive: bool) -> None:
        limit = now_s + TIME_EPS_S if inclusive else now_s - TIME_EPS_S
        while self.pending and self.pending[0].t_s + self.horizon_s <= limit:
            e = self.pending.popleft()
            target = last_price[e.rows]
            ok = np.isfinite(target)
            r = e.rows[ok]
            target = target[ok]
            np.add.at(self.abs_persistence, r, np.abs(e.last_price[ok] - target))
            np.add.at(self.abs_corrected, r, np.abs(e.corrected[ok] - target))
            np.add.at(self.abs_served, r, np.abs(e.served[ok] - target))
            np.add.at(self.n, r, 1.0)
            np.add.at(self.exposure, e.rows, -np.abs(e.served - e.last_price))
            np.add.at(self.evidence, r, e.weight[ok])
            self._learn(now_s, r, e.signal[ok], np.log(target / e.last_price[ok]))

    def _learn(self, now_s: float, rows: IntArray, signal: FloatArray, ret: FloatArray) -> None:
        if self.last_learn_s is not None and now_s > self.last_learn_s:
            fade = float(np.exp(-(now_s - self.last_learn_s) / (MEMORY_HORIZONS * self.horizon_s)))
            self.xx *= fade
            self.xy *= fade
        self.last_learn_s = now_s
        design = np.stack([np.ones_like(signal), signal], axis=1)
        np.add.at(self.xx, rows, design[:, :, None] * design[:, None, :])
        np.add.at(self.xy, rows, design * ret[:, None])
        touched = np.unique(rows)
        # Ridge scaled by the evidence so far: with little data the correction stays near zero.
        evidence = self.xx[touched, 0, 0]
        ridge = (RIDGE + RIDGE * evidence)[:, None, None] * np.eye(2)
        self.coef[touched] = np.linalg.solve(self.xx[touched] + ridge, self.xy[touched][:, :, None])[:, :, 0]


class PriceForecaster:
    """Per-pool spot price forecasts at ``horizons_s`` (see the module docstring)."""

    def __init__(self, horizons_s: Sequence[float] = DEFAULT_HORIZONS_S) -> None:
        if not horizons_s or any(h <= 0 for h in horizons_s):
            raise ValueError(f"horizons_s must be positive, got {horizons_s!r}")
        self.horizons_s = tuple(float(h) for h in horizons_s)
        self.pools = PoolIndex()
        self.last_price = np.full(0, np.nan)
        self.last_obs_s = np.zeros(0)
        self._horizons = {h: _Horizon(h) for h in self.horizons_s}
        self.last_now_s: float | None = None

    def _rows(self, keys: Sequence[str], add: bool) -> IntArray:
        rows = self.pools.rows(keys, add)
        n = len(self.pools)
        if add and n > self.last_price.size:
            grow = max(n, 2 * self.last_price.size, 8) - self.last_price.size
            self.last_price = np.concatenate([self.last_price, np.full(grow, np.nan)])
            self.last_obs_s = np.concatenate([self.last_obs_s, np.zeros(grow)])
            for state in self._horizons.values():
                state.ensure(self.last_price.size)
        return rows

    def _signal(self, state: _Horizon, rows: IntArray) -> FloatArray:
        out: FloatArray = np.nan_to_num(np.log(self.last_price[rows]) - state.log_mean[rows])
        return out

    def observe_array(self, now_s: float, pool_keys: Sequence[str], prices: FloatArray) -> None:
        """One tick of prices (USD/hour) for some pools; non-positive or NaN prices are skipped."""
        if self.last_now_s is not None and now_s < self.last_now_s:
            raise ValueError(f"time went backwards: now_s={now_s} after {self.last_now_s}")
        self.last_now_s = now_s
        values = np.asarray(prices, dtype=np.float64)
        ok = np.isfinite(values) & (values > 0)
        rows = self._rows(list(pool_keys), add=True)[ok]
        values = values[ok]
        for state in self._horizons.values():
            state.mature(now_s, self.last_price, inclusive=False)
        dt = now_s - self.last_obs_s[rows]
        self.last_price[rows] = values
        self.last_obs_s[rows] = now_s
        for state in self._horizons.values():
            state.mature(now_s, self.last_price, inclusive=True)
            old = state.log_mean[rows]
            a = np.exp(-dt / state.horizon_s)
            state.log_mean[rows] = np.where(np.isnan(old), np.log(values), a * old + (1 - a) * np.log(values))
            signal = self._signal(state, rows)
            corrected = state.corrected(rows, values, signal)
            step = np.abs(corrected - values)
            served = np.where(state.serves_corrected(rows, step), corrected, values)
            np.add.at(state.exposure, rows, np.abs(served - values))
            weight = np.minimum(dt / state.horizon_s, 1.0)
            state.pending.append(_Pending(now_s, rows, values.copy(), corrected, served, signal, weight))

    def observe(self, now_s: float, prices: Mapping[str, float]) -> None:
        """One tick of prices: ``prices[pool_key]`` in USD/hour."""
        keys = list(prices)
        self.observe_array(float(now_s), keys, np.array([float(prices[k]) for k in keys]))

    def predict(self, now_s: float, pool_keys: Sequence[str], horizon_s: float) -> FloatArray:
        """The served forecast of each pool's price ``horizon_s`` ahead (NaN for a pool never priced)."""
        _ = now_s  # forecasts are made from the last observed price; the time is kept for the interface
        state = self._horizons.get(float(horizon_s))
        if state is None:
            raise ValueError(f"horizon_s={horizon_s} is not one of {self.horizons_s}")
        rows = self._rows(list(pool_keys), add=False)
        out = np.full(rows.size, np.nan)
        known = rows >= 0
        r = rows[known]
        price = self.last_price[r]
        corrected = state.corrected(r, price, self._signal(state, r))
        out[known] = np.where(state.serves_corrected(r, np.abs(corrected - price)), corrected, price)
        return out

    def metrics(self) -> dict[str, dict[str, Any]]:
        """Pooled progressive-validation MAE (USD/hour) of the served forecast and of persistence."""
        out: dict[str, dict[str, Any]] = {}
        for h, state in self._horizons.items():
            n = float(state.n.sum())
            mae = float(state.abs_served.sum()) / n if n else float("nan")
            pmae = float(state.abs_persistence.sum()) / n if n else float("nan")
            skill = 1.0 - mae / pmae if n and pmae > 0 else (0.0 if n else float("nan"))
            out[horizon_label(h)] = {
                "mae": None if np.isnan(mae) else round(mae, 8),
                "persistence_mae": None if np.isnan(pmae) else round(pmae, 8),
                "skill": None if np.isnan(skill) else round(skill, 6),
                "samples": int(n),
            }
        return out

    def snapshot(self) -> bytes:
        return snapshot.dump(self)

    @classmethod
    def restore(cls, blob: bytes) -> PriceForecaster:
        return snapshot.load(blob, cls)
