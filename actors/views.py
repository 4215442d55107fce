"""What a region actor shows: its pools' prices, risk and forecasts, its models' metrics and its instances,
as the JSON that REST and the ``instances`` topic carry. Pure functions of the engine."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from engine.region import PoolState, RegionEngine
from engine.types import Instance


def priced_pools_with_risk(engine: RegionEngine) -> tuple[list[PoolState], list[str], list[float], bool]:
    """The pools with a known price, their keys, the model's risk for each (NaN before any
    observation), and whether the engine has observed anything yet."""
    now = engine.last_observed_s
    states = [s for s in engine.pool_states() if math.isfinite(s.price_usd_per_hour)]
    keys = [s.pool.key for s in states]
    known = bool(keys) and math.isfinite(now)
    model = engine.risk_model
    risk = [float(r) for r in model.predict(now, keys)] if known and model else [math.nan] * len(keys)
    return states, keys, risk, known


def prices_json(engine: RegionEngine) -> list[dict[str, Any]]:
    """The latest price and availability of every pool, with the model's risk."""
    states, _, risk, _ = priced_pools_with_risk(engine)
    return [{
        "pool": state.pool.key,
        "instance_type": state.pool.instance_type,
        "availability_zone": state.pool.availability_zone,
        "price_usd_per_hour": state.price_usd_per_hour,
        "on_demand_usd_per_hour": state.on_demand_usd_per_hour,
        "observed_at_s": state.price_at_s,
        "available": state.available,
        "risk": finite_or_none(r),
        "capacity_score": state.capacity_score,
    } for state, r in zip(states, risk, strict=True)]


def forecasts_json(engine: RegionEngine, horizons_s: Sequence[float], risk_horizon_s: float) -> dict[str, Any]:
    """Per pool: the latest price, the risk of losing spot within the risk horizon, price forecasts."""
    now = engine.last_observed_s
    states, keys, risk, known = priced_pools_with_risk(engine)
    price_model = engine.price_model
    by_horizon = {h: (price_model.predict(now, keys, h) if known and price_model else [math.nan] * len(keys))
                  for h in horizons_s}
    pools = [{
        "pool": state.pool.key,
        "price_usd_per_hour": state.price_usd_per_hour,
        "available": state.available,
        "risk": finite_or_none(risk[k]),
        "forecast_usd_per_hour": {f"{h:g}": finite_or_none(by_horizon[h][k]) for h in horizons_s},
    } for k, state in enumerate(states)]
    # The horizon the risk model learned with (a PATCH of risk_horizon_s keeps the learned model).
    learned_horizon_s = getattr(engine.risk_model, "horizon_s", None) or risk_horizon_s
    return {"now_s": now if math.isfinite(now) else None, "risk_horizon_s": learned_horizon_s, "pools": pools}


def model_metrics_json(engine: RegionEngine) -> dict[str, Any]:
    """How the online models are doing: progressive-validation errors and learning counters."""
    price_model, risk_model = engine.price_model, engine.risk_model
    price = price_model.metrics() if price_model is not None and hasattr(price_model, "metrics") else {}
    risk: dict[str, Any] = {}
    if risk_model is not None:
        risk = {"horizon_s": getattr(risk_model, "horizon_s", None),
                "labels_learned": getattr(risk_model, "labels_learned", None),
                "threshold": getattr(risk_model, "threshold", None),
                "drift_events": len(getattr(risk_model, "drift_events", []))}
    return {"price": price, "risk": risk}


def finite_or_none(value: Any) -> float | None:
    """JSON has no NaN or infinity: an unknown number is null."""
    number = float(value)
    return number if math.isfinite(number) else None


def instance_json(instance: Instance) -> dict[str, Any]:
    """The JSON of an instance, as REST and the ``instances`` topic show it."""
    return {"instance_id": instance.instance_id, "pool": instance.pool.key, "lifecycle": instance.lifecycle.value,
            "fleet": instance.fleet, "launched_at_s": instance.launched_at_s, "interrupted": instance.interrupted}
