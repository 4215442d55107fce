"""Progressive-validation report of the risk model against its baselines (and of the price forecaster).

All models run online over the same trace and learn from the same delayed labels; each prediction is
scored against its label, pooled over every pool and per pool. F1 uses the threshold each model chose
online from matured past predictions (persistence's F1 is that of "positive iff unavailable now"; the
risk model's alarm has one cut per current state, see :class:`engine.learning.metrics.StateF1Threshold`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from engine.learning.baselines import baseline_predictions, window_ticks
from engine.learning.metrics import F1Threshold, brier, f1_score, log_loss, scores
from engine.learning.price import PriceForecaster
from engine.learning.risk import RiskModel
from engine.learning.series import replay
from engine.market import MarketTrace

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

SCORED = ("model", "persistence", "recent_unavailability")


def online_thresholds(p: FloatArray, y: FloatArray, ok: BoolArray, delay: int) -> FloatArray:
    """Per tick, the F1-best threshold on the (prediction, label) pairs matured by then."""
    chooser = F1Threshold()
    out = np.empty(p.shape[0])
    step = max(delay, 1)
    fed = 0
    current = 0.5
    for start in range(0, p.shape[0], step):
        upto = start - delay + 1  # ticks j <= start - delay have matured at tick start
        if upto > fed:
            m = ok[fed:upto]
            chooser.learn_many(p[fed:upto][m], y[fed:upto][m])
            fed = upto
            current = chooser.choose()
        out[start : start + step] = current
    return out


def _rounded(d: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (round(v, 6) if isinstance(v, float) and np.isfinite(v) else (None if isinstance(v, float) else v))
        for k, v in d.items()
    }


def evaluate(trace: MarketTrace, horizon_s: float = 3600.0, seed: int = 0) -> dict[str, Any]:
    """The JSON-ready report described in the module docstring (see ``spot-optimizer evaluate``)."""
    unavailable = ~trace.available
    predictions, y, ok = baseline_predictions(unavailable, trace.tick_s, horizon_s)
    model_p, model_positive, model_threshold = replay(RiskModel(horizon_s=horizon_s, seed=seed), trace)
    predictions = {"model": model_p, **predictions}
    _, delay = window_ticks(horizon_s, trace.tick_s)
    positive = {
        "model": model_positive,
        "persistence": unavailable,
    }
    recent_threshold = online_thresholds(predictions["recent_unavailability"], y, ok, delay)
    positive["recent_unavailability"] = predictions["recent_unavailability"] >= recent_threshold[:, None]
    final_threshold = {
        "model": float(model_threshold[-1, 0]),
        "persistence": None,
        "recent_unavailability": float(recent_threshold[-1]),
    }

    def pooled(name: str, mask: BoolArray) -> dict[str, Any]:
        out = scores(y[mask], predictions[name][mask], positive[name][mask])
        return _rounded({**out, "threshold": final_threshold[name]})

    risk: dict[str, Any] = {
        "pools": trace.n_pools,
        "samples": int(ok.sum()),
        "base_rate": round(float(y[ok].mean()), 6) if ok.any() else None,
    }
    for name in SCORED:
        risk[name] = pooled(name, ok)
    # The model's alarm has one cut per state; "threshold" is the cut when available.
    risk["model"]["threshold_unavailable"] = round(float(model_threshold[-1, 1]), 6)
    risk["base_rate_model"] = _rounded(
        {"log_loss": log_loss(y[ok], predictions["base_rate"][ok]), "brier": brier(y[ok], predictions["base_rate"][ok])}
    )
    per_pool: dict[str, Any] = {}
    for p, pool in enumerate(trace.pools):
        col = ok[:, p]
        entry: dict[str, Any] = {
            "samples": int(col.sum()),
            "base_rate": round(float(y[col, p].mean()), 6) if col.any() else None,
        }
        for name in SCORED:
            out = scores(y[col, p], predictions[name][col, p], positive[name][col, p])
            entry[name] = _rounded(out)
        per_pool[pool.key] = entry
    risk["per_pool"] = per_pool
    report: dict[str, Any] = {"horizon_minutes": round(horizon_s / 60.0, 6), "risk": risk}
    if trace.spot_price is not None:
        report["price"] = price_report(trace)
    return report


def price_report(trace: MarketTrace) -> dict[str, Any]:
    """Progressive-validation MAE of the price forecaster against persistence at 1 h, 24 h and 168 h."""
    assert trace.spot_price is not None
    forecaster = PriceForecaster()
    keys = [pool.key for pool in trace.pools]
    for t in range(trace.n_ticks):
        forecaster.observe_array(trace.start_s + t * trace.tick_s, keys, trace.spot_price[t])
    return forecaster.metrics()


__all__ = ["evaluate", "f1_score", "online_thresholds"]
