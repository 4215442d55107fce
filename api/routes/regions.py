"""Per account and region: prices (latest, recent window), instances, forecasts and risk per pool,
decisions (filters and a seq cursor), model metrics. Everything goes through :data:`api.deps.RegionDep`."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query

from actors.store import MAX_PAGE
from actors.views import instance_json
from api.deps import RegionDep, RuntimeDep
from api.errors import InvalidInput
from api.schemas import ERRORS
from engine.types import Action

router = APIRouter(prefix="/api/v1/accounts/{account}/regions/{region}", responses=ERRORS)

Epoch = Annotated[float | None, Query(ge=0, le=253_402_300_799, allow_inf_nan=False,
                                      description="epoch seconds")]
ActionName = Annotated[Action | None, Query(description="only this action")]


@router.get("/prices", tags=["prices"])
async def latest_prices(ref: RegionDep, runtime: RuntimeDep) -> dict[str, Any]:
    """The latest spot price of every pool in the region, with its availability and predicted risk, and
    the ``feed``'s health: whether these prices are fresh, or stale since when and why."""
    prices = await ref.handle.latest_prices.remote()
    feed = runtime.registry.health(ref.account.name).get(ref.region)
    return {"account": ref.account.name, "region": ref.region, "prices": prices, "feed": feed}


@router.get("/prices/history", tags=["prices"])
async def price_history(
    ref: RegionDep,
    runtime: RuntimeDep,
    since_s: Epoch = None,
    until_s: Epoch = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="newest ticks kept")] = 1000,
) -> dict[str, Any]:
    """Price and availability changes per tick in a time window (the newest ``limit`` ticks in it),
    oldest first: the ``prices`` events the region actor stored, each with its stream ``seq``."""
    if since_s is not None and until_s is not None and until_s < since_s:
        raise InvalidInput("query.until_s: must not be before since_s")
    events = await runtime.store.events_window(ref.account.name, ref.region, "prices", since_s, until_s, limit)
    ticks = [json.loads(e.payload) for e in events]
    return {"account": ref.account.name, "region": ref.region, "ticks": ticks, "count": len(ticks)}


@router.get("/instances", tags=["instances"])
async def instances(ref: RegionDep) -> dict[str, Any]:
    """The fleet as the region actor sees it now."""
    fleet = await ref.handle.instances.remote()
    return {"account": ref.account.name, "region": ref.region, "instances": [instance_json(i) for i in fleet]}


@router.get("/forecasts", tags=["forecasts"])
async def forecasts(
    ref: RegionDep,
    horizon_s: Annotated[list[float] | None, Query(description="price forecast horizons (repeatable)")] = None,
) -> dict[str, Any]:
    """Per pool: interruption risk over the policy's risk horizon and price forecasts at each horizon."""
    horizons = horizon_s or [3600.0, 86_400.0]
    if len(horizons) > 8 or not all(0 < h <= 30 * 86_400 for h in horizons):
        raise InvalidInput("query.horizon_s: up to 8 horizons, each in (0, 2592000] seconds")
    result = await ref.handle.forecasts.remote(sorted(set(horizons)))
    return {"account": ref.account.name, "region": ref.region, **result}


@router.get("/decisions", tags=["decisions"])
async def decisions(
    ref: RegionDep,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="page size")] = 50,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1,
                                        description="cursor: only decisions with seq below this")] = None,
    action: ActionName = None,
    instance_id: Annotated[str | None, Query(min_length=1, max_length=255, pattern=r"^[^\x00]*$")] = None,
    since_s: Epoch = None,
    until_s: Epoch = None,
) -> dict[str, Any]:
    """Decisions, newest first; pass ``next_before`` back as ``before`` for the next page."""
    records = await runtime.store.list_decisions(
        ref.account.name, ref.region, limit=limit, before=before, action=action, instance_id=instance_id,
        since_s=since_s, until_s=until_s)
    items = [r.to_json() for r in records]
    next_before = items[-1]["seq"] if len(items) == limit else None
    return {"account": ref.account.name, "region": ref.region, "decisions": items, "next_before": next_before}


@router.get("/metrics", tags=["forecasts"])
async def model_metrics(ref: RegionDep) -> dict[str, Any]:
    """The online models' progressive-validation metrics and the actor's counters."""
    metrics = await ref.handle.model_metrics.remote()
    status = await ref.handle.status.remote()
    return {"account": ref.account.name, "region": ref.region, "models": metrics, "actor": _finite(status)}


def _finite(values: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN: unknown numbers become null."""
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in values.items()}
