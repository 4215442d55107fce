"""Whole-trace risk: the prediction the online :class:`RiskModel` made at each tick of a trace.

The simulator needs the risk a live engine would have served at every tick; this replays the trace
through the very same model, one causal pass, on arrays over pools.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from engine.learning.risk import RiskModel
from engine.market import MarketTrace

FloatArray = npt.NDArray[np.float64]


def price_ratio_of(trace: MarketTrace) -> FloatArray | None:
    """Spot over on-demand per tick and pool, when the trace has both (else None)."""
    if trace.spot_price is None or trace.on_demand_usd_per_hour is None:
        return None
    return trace.spot_price / trace.on_demand_usd_per_hour[None, :]


def replay(model: RiskModel, trace: MarketTrace) -> tuple[FloatArray, npt.NDArray[np.bool_], FloatArray]:
    """Feed a trace to ``model``: the risk served at each tick (T, P), the model's own positive calls then
    (T, P), and its F1 cuts then (T, 2: when available, when unavailable)."""
    rows = model.rows_of([pool.key for pool in trace.pools])
    unavailable = (~trace.available).astype(np.float64)
    ratio = price_ratio_of(trace)
    out = np.empty(unavailable.shape)
    positive = np.empty(unavailable.shape, dtype=bool)
    thresholds = np.empty((trace.n_ticks, 2))
    for t in range(trace.n_ticks):
        extras = None if ratio is None else {"price_ratio": ratio[t]}
        out[t] = model.observe_rows(trace.start_s + t * trace.tick_s, rows, unavailable[t], extras)
        positive[t] = model.positive_rows(rows, out[t])
        thresholds[t] = model.threshold_by_state
    return out, positive, thresholds


def risk_series(trace: MarketTrace, horizon_s: float = 3600.0, seed: int = 0) -> FloatArray:
    """P(unavailable at some tick in (t, t + H]) as predicted online at each tick: shape (T, P)."""
    return replay(RiskModel(horizon_s=horizon_s, seed=seed), trace)[0]
