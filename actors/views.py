"""The JSON clients see of a region: every event a region actor streams and stores (a tick's ``prices``,
``instances`` and ``alerts``; decisions are ``decision_json``), the REST views of its pools, forecasts,
models and instances, and the WebSocket message that carries an event. Pure functions of engine values;
the topics themselves are listed in ``actors/topics.py``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from actors.topics import MESSAGE_TYPES
from engine.region import PoolState, RegionEngine
from engine.types import AvailabilityPoint, Instance, PricePoint


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


# --- events of a tick, besides decisions: the payloads of the prices, instances and alerts topics ---------


def prices_event(prices: Sequence[PricePoint], availability: Sequence[AvailabilityPoint],
                 now_s: float) -> dict[str, Any]:
    """A tick's observations, as the ``prices`` topic carries them."""
    return {
        "at_s": now_s,
        "prices": [{"pool": p.pool.key, "price_usd_per_hour": p.price_usd_per_hour} for p in prices],
        "availability": [{"pool": a.pool.key, "available": a.available} for a in availability],
    }


def instances_event(fleet: Sequence[Instance], now_s: float) -> dict[str, Any]:
    """The whole fleet, as the ``instances`` topic carries it after a change."""
    return {"at_s": now_s, "instances": [instance_json(i) for i in fleet]}


def alert(kind: str, instance_ids: Sequence[str], detail: str, **extra: Any) -> dict[str, Any]:
    """An ``alerts`` event's body (:func:`alert_event` adds its time): what happened, to which instances,
    what else it knows, and a sentence for people.

    >>> alert("interruption", ["i-1"], "1 spot instance(s) interrupted")
    {'kind': 'interruption', 'instance_ids': ['i-1'], 'detail': '1 spot instance(s) interrupted'}
    """
    return {"kind": kind, "instance_ids": list(instance_ids), **extra, "detail": detail}


def execution_failed_alert(instance_id: str, detail: str) -> dict[str, Any]:
    """An execution that failed without reporting a step (a cloud's executor reports its own steps)."""
    return {"kind": "execution", "step": "failed", "instance_ids": [instance_id], "detail": detail}


def alert_event(at_s: float, body: Mapping[str, Any]) -> dict[str, Any]:
    """An alert's body at the tick time it belongs to."""
    return {"at_s": at_s, **body}


def tick_events(prices: Sequence[PricePoint], availability: Sequence[AvailabilityPoint],
                interrupted: Sequence[str], fleet: Sequence[Instance] | None, failed: bool,
                pending_alerts: Sequence[Mapping[str, Any]], now_s: float) -> dict[str, list[dict[str, Any]]]:
    """The events of one tick besides decisions (unnumbered), by topic: prices, instances (``fleet`` when
    it changed or lost instances, else None), alerts (interruptions, a failed tick, then ``pending_alerts``)."""
    topics: dict[str, list[dict[str, Any]]] = {}
    if prices or availability:
        topics["prices"] = [prices_event(prices, availability, now_s)]
    if fleet is not None:
        topics["instances"] = [instances_event(fleet, now_s)]
    alerts = []
    if interrupted:
        alerts.append(alert_event(now_s, alert("interruption", interrupted,
                                               f"{len(interrupted)} spot instance(s) interrupted")))
    if failed:
        alerts.append(alert_event(now_s, alert("tick_error", [],
                                               "a tick failed after validation; see the actor's log")))
    alerts += [alert_event(now_s, body) for body in pending_alerts]
    if alerts:
        topics["alerts"] = alerts
    return topics


# --- the WebSocket message of an event ----------------------------------------------------------------


def ws_message(stream: str, topic: str, seq: int, payload: str) -> str:
    """The WebSocket message of an event whose ``payload`` is already its JSON text (as the stream host and
    the store keep it): built once per event and shared by every client. Stream keys need no escaping."""
    return f'{{"type":"{MESSAGE_TYPES[topic]}","stream":"{stream}","seq":{int(seq)},"data":{payload}}}'
