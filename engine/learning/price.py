"""Spot price forecasts per pool at several horizons, never worse than persistence by construction.

Since AWS smoothed spot prices the last price is a very strong forecast. For each pool and horizon the
forecaster learns a correction on top of it (a ridge regression, with forgetting, of the log return over
the horizon on the price's distance from its own moving average, i.e. drift plus mean reversion) and
scores persistence, the corrected forecast and the served forecast on progressive validation as their
targets mature.

What it serves is a mix of the two experts, ``last + w * (corrected - last)`` with ``w`` in [0, 1], and
``w`` is set by a loss budget rather than by a race between running MAEs. A served forecast ``s`` can
lose to persistence ``p`` on its target ``y`` by at most ``|s - p|`` (``|s - y| - |p - y| <= |s - p|``),
so the forecaster keeps, per pool and horizon::

    exposure (sum of |s - p| over forecasts in flight)  <=  lead + seed

where ``lead`` is the realized lead of the served forecasts over persistence (sum over matured targets of
``|p - y| - |s - y|``) and ``seed`` is the running max of ``SEED_SKILL * persistence_error / sqrt(n)`` over
the pool's history (``n`` matured targets; about ``SEED_SKILL / sqrt(n)`` of persistence's error when the
price's volatility is steady).
A new forecast may only use what is left of that budget, and when it matures the lead falls by at most
what it had reserved, so ``lead + seed`` never falls below zero: at every moment and for every pool and
horizon, the served error is at most persistence's plus the seed (pooled skill >= about
``-SEED_SKILL / sqrt(n)``, vanishing as targets mature; with no seed at all no correction could ever be
tried, since the first one risks a loss). The budget grows with every win, so a correction that keeps
being right is soon served in full; one that starts losing after it was switched on can only spend what
it had won. The correction is tried only while its own matured lead over persistence is significant
under repeated looks (``proven_lead``), after ``MIN_EVIDENCE_HORIZONS`` of evidence, and each new forecast
reserves at most its share (time since the pool's previous price / horizon) of what is left, so the risk
is spread over the forecasts of a horizon. ``predict`` returns exactly the forecast that is scored.
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
# The correction is tried only after this many horizons of matured evidence (targets a few seconds apart
# are one sample, not many) and while its own matured MAE is below persistence's.
MIN_EVIDENCE_HORIZONS = 10.0
# The served MAE may exceed persistence's by at most this share / sqrt(matured targets): the stake that lets
# a correction be tried at all (see the module docstring); it only bounds a worst case, it is not fitted.
SEED_SKILL = 0.01
# The correction is tried only while its own matured lead over persistence is significant at this level,
# over all the looks taken (a conventional level, not fitted to a trace).
LEAD_ALPHA = 0.05


def seed_allowance(persistence_error: FloatArray, n: FloatArray) -> FloatArray:
    """The stake a pool may lose to try its correction: ``SEED_SKILL`` x persistence's error / sqrt(n).

    >>> seed_allowance(np.array([4.0, 0.0]), np.array([4.0, 0.0]))
    array([0.02, 0.  ])
    """
    out: FloatArray = SEED_SKILL * persistence_error / np.sqrt(np.maximum(n, 1.0))
    return out


def loss_budget(
    persistence_error: FloatArray, served_error: FloatArray, seed: FloatArray, exposure: FloatArray
) -> FloatArray:
    """Realized lead of the served forecasts over persistence, plus the seed, minus what is in flight.

    Errors are sums of absolute errors over matured targets; ``exposure`` is the sum of
    ``|served - persistence|`` over forecasts in flight. Never negative.

    >>> loss_budget(np.array([2.0, 2.0, 0.0]), np.array([1.0, 2.0, 0.0]), np.array([0.01, 0.01, 0.0]),
    ...             np.array([0.5, 0.0, 0.0]))
    array([0.51, 0.01, 0.  ])
    """
    out: FloatArray = np.maximum(persistence_error - served_error + seed - exposure, 0.0)
    return out


def proven_lead(lead: FloatArray, sq_lead: FloatArray, evidence: FloatArray, n: FloatArray) -> npt.NDArray[np.bool_]:
    """Whether a summed lead is significantly above zero, under repeated looks.

    Targets less than a horizon apart share most of their future, so the per-target leads are treated as
    fully correlated within a horizon: the variance of the sum is ``sum(lead_i**2) * n / evidence`` (targets
    per horizon). The lead is looked at again and again, so the k-th horizon of evidence gets the level
    ``LEAD_ALPHA / (k (k + 1))`` (these sum to ``LEAD_ALPHA``) and the Gaussian tail bound ``exp(-z**2 / 2)``
    turns it into ``z = sqrt(2 log(k (k + 1) / LEAD_ALPHA))``.

    >>> proven_lead(np.array([10.0, 10.0, -1.0]), np.array([1.0, 4.0, 1.0]), np.array([10.0, 10.0, 10.0]),
    ...             np.array([10.0, 60.0, 10.0]))
    array([ True, False, False])
    """
    k = np.maximum(evidence, 1.0)
    z = np.sqrt(2.0 * np.log(k * (k + 1.0) / LEAD_ALPHA))
    out: npt.NDArray[np.bool_] = lead > z * np.sqrt(sq_lead * np.maximum(n / k, 1.0))
    return out


def shrink_toward(price: FloatArray, corrected: FloatArray, max_step: FloatArray) -> FloatArray:
    """``price + w * (corrected - price)`` with the largest ``w`` in [0, 1] that moves at most ``max_step``.

    >>> shrink_toward(np.array([1.0, 1.0, 1.0]), np.array([1.2, 0.9, 1.1]), np.array([0.05, 1.0, 0.0]))
    array([1.05, 0.9 , 1.  ])
    """
    step = corrected - price
    out: FloatArray = price + np.minimum(np.maximum(step, -max_step), max_step)  # np.clip, without its overhead
    return out


def horizon_label(horizon_s: float) -> str:
    """The report key of a horizon.

    >>> horizon_label(3600.0), horizon_label(604800.0), horizon_label(90.0)
    ('1h', '168h', '90s')
    """
    return f"{horizon_s / 3600.0:g}h" if horizon_s % 3600.0 == 0 else f"{horizon_s:g}s"


_EYE2 = np.eye(2)


def _unique(rows: IntArray) -> IntArray:
    """The distinct rows (as np.unique); rows already strictly increasing, as a tick's usually are, as they are.

    >>> _unique(np.array([3, 1, 3])).tolist(), _unique(np.array([1, 2, 5])).tolist()
    ([1, 3], [1, 2, 5])
    """
    if rows.size < 2 or bool((rows[1:] > rows[:-1]).all()):
        return rows
    out: IntArray = np.unique(rows)
    return out


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
        self.served_now = np.full(0, np.nan)  # the forecast served at each pool's last price
        self.sq_lead = np.zeros(0)  # sum of squared per-target leads of the correction over persistence
        # Running max of seed_allowance: a stake once granted is never taken back, so lead + seed >= 0 holds.
        self.seed = np.zeros(0)
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
        for name in ("abs_persistence", "abs_corrected", "abs_served", "n", "evidence", "exposure", "sq_lead", "seed"):
            setattr(self, name, np.concatenate([getattr(self, name), np.zeros(grow)]))
        self.log_mean = np.concatenate([self.log_mean, np.full(grow, np.nan)])
        self.served_now = np.concatenate([self.served_now, np.full(grow, np.nan)])

    def corrected(self, rows: IntArray, price: FloatArray, signal: FloatArray) -> FloatArray:
        ret = self.coef[rows, 0] + self.coef[rows, 1] * signal
        out: FloatArray = price * np.exp(np.minimum(np.maximum(ret, -1.0), 1.0))
        return out

    def budget(self, rows: IntArray) -> FloatArray:
        """What the forecasts of ``rows`` may still lose to persistence (USD/hour, summed over targets)."""
        return loss_budget(self.abs_persistence[rows], self.abs_served[rows], self.seed[rows], self.exposure[rows])

    def serve(self, rows: IntArray, price: FloatArray, corrected: FloatArray, share: FloatArray) -> FloatArray:
        """The forecast to serve now for ``rows``; reserves its worst-case loss in ``exposure``."""
        trying = (self.evidence[rows] >= MIN_EVIDENCE_HORIZONS) & proven_lead(
            self.abs_persistence[rows] - self.abs_corrected[rows], self.sq_lead[rows], self.evidence[rows], self.n[rows]
        )
        allowed = np.where(trying, share * self.budget(rows), 0.0)
        served = shrink_toward(price, corrected, allowed)
        np.add.at(self.exposure, rows, np.abs(served - price))
        self.served_now[rows] = served
        return served

    def mature(self, now_s: float, last_price: FloatArray, inclusive: bool) -> None:
        limit = now_s + TIME_EPS_S if inclusive else now_s - TIME_EPS_S
        while self.pending and self.pending[0].t_s + self.horizon_s <= limit:
            e = self.pending.popleft()
            target = last_price[e.rows]
            ok = np.isfinite(target)
            r = e.rows[ok]
            target = target[ok]
            persistence_error = np.abs(e.last_price[ok] - target)
            corrected_error = np.abs(e.corrected[ok] - target)
            np.add.at(self.abs_persistence, r, persistence_error)
            np.add.at(self.abs_corrected, r, corrected_error)
            np.add.at(self.sq_lead, r, (persistence_error - corrected_error) ** 2)
            np.add.at(self.abs_served, r, np.abs(e.served[ok] - target))
            np.add.at(self.n, r, 1.0)
            np.add.at(self.exposure, e.rows, -np.abs(e.served - e.last_price))
            np.add.at(self.evidence, r, e.weight[ok])
            touched = _unique(r)
            self.seed[touched] = np.maximum(
                self.seed[touched], seed_allowance(self.abs_persistence[touched], self.n[touched])
            )
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
        touched = _unique(rows)
        # Ridge relative to each input's own scale (the signal is a log distance of order 1e-3, so an
        # absolute ridge would silence it) plus a floor: with little data the correction stays near zero.
        diagonal = np.diagonal(self.xx[touched], axis1=1, axis2=2)
        ridge = (RIDGE + RIDGE * diagonal)[:, :, None] * _EYE2
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
        # Prices are positive and finite, the mean is finite or NaN (no price yet): NaN -> 0 is all
        # np.nan_to_num would do.
        signal = np.log(self.last_price[rows]) - state.log_mean[rows]
        out: FloatArray = np.where(np.isnan(signal), 0.0, signal)
        return out

    def observe_array(self, now_s: float, pool_keys: Sequence[str], prices: FloatArray) -> None:
        """One tick of prices (USD/hour) for some pools; non-positive or NaN prices are skipped."""
        if self.last_now_s is not None and now_s < self.last_now_s:
            raise ValueError(f"time went backwards: now_s={now_s} after {self.last_now_s}")
        self.last_now_s = now_s
        values = np.asarray(prices, dtype=np.float64)
        ok = np.isfinite(values) & (values > 0)
        rows = self._rows(pool_keys, add=True)[ok]
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
            weight = np.minimum(dt / state.horizon_s, 1.0)
            served = state.serve(rows, values, corrected, weight)
            state.pending.append(_Pending(now_s, rows, values.copy(), corrected, served, signal, weight))

    def observe(self, now_s: float, prices: Mapping[str, float]) -> None:
        """One tick of prices: ``prices[pool_key]`` in USD/hour."""
        keys = list(prices)
        self.observe_array(float(now_s), keys, np.array([float(prices[k]) for k in keys]))

    def predict(self, now_s: float, pool_keys: Sequence[str], horizon_s: float) -> FloatArray:
        """The served forecast of each pool's price ``horizon_s`` ahead (NaN for a pool never priced)."""
        _ = now_s  # the forecast served at the last observed price; the time is kept for the interface
        state = self._horizons.get(float(horizon_s))
        if state is None:
            raise ValueError(f"horizon_s={horizon_s} is not one of {self.horizons_s}")
        rows = self._rows(pool_keys, add=False)
        out = np.full(rows.size, np.nan)
        known = rows >= 0
        out[known] = state.served_now[rows[known]]
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

    def pool_errors(self, horizon_s: float) -> dict[str, dict[str, float]]:
        """Per pool at ``horizon_s``: summed absolute errors (USD/hour) of the served forecast and of
        persistence over the matured targets, their count, and the seed the served one may lose at most."""
        state = self._horizons.get(float(horizon_s))
        if state is None:
            raise ValueError(f"horizon_s={horizon_s} is not one of {self.horizons_s}")
        return {
            key: {
                "served_error": float(state.abs_served[row]),
                "persistence_error": float(state.abs_persistence[row]),
                "seed": float(state.seed[row]),
                "samples": float(state.n[row]),
            }
            for row, key in enumerate(self.pools.keys)
        }

    def snapshot(self) -> bytes:
        return snapshot.dump(self)

    @classmethod
    def restore(cls, blob: bytes) -> PriceForecaster:
        return snapshot.load(blob, cls)
