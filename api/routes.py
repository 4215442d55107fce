"""REST routes of /api/v1 and the health check."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from api.errors import NotFound
from api.runtime import Runtime

router = APIRouter()


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def known_region(runtime: Runtime, account: str, region: str) -> Any:
    """The region actor's handle, or 404 when this account has no such region."""
    if not runtime.supervisor.known(account, region):
        raise NotFound(f"unknown account {account!r} or region {region!r}")
    return runtime.supervisor.get(account, region)


@router.get("/healthz", tags=["health"])
async def healthz() -> dict[str, str]:
    """Liveness: the process serves requests."""
    return {"status": "ok"}


@router.get("/api/v1/accounts", tags=["accounts"])
async def accounts(runtime: RuntimeDep) -> dict[str, Any]:
    """Accounts and the regions each one is watched in."""
    return {"accounts": [{"account": a, "regions": r} for a, r in runtime.supervisor.accounts().items()]}


@router.get("/api/v1/accounts/{account}/regions/{region}/prices", tags=["prices"])
async def latest_prices(account: str, region: str, runtime: RuntimeDep) -> dict[str, Any]:
    """The latest spot price of every pool in the region, with its availability and predicted risk."""
    handle = await known_region(runtime, account, region)
    prices = await handle.latest_prices.remote()
    return {"account": account, "region": region, "prices": prices}


@router.get("/api/v1/accounts/{account}/regions/{region}/instances", tags=["instances"])
async def instances(account: str, region: str, runtime: RuntimeDep) -> dict[str, Any]:
    """The fleet as the region actor sees it now."""
    handle = await known_region(runtime, account, region)
    fleet = await handle.instances.remote()
    return {"account": account, "region": region, "instances": [
        {"instance_id": i.instance_id, "pool": i.pool.key, "lifecycle": i.lifecycle.value, "fleet": i.fleet,
         "launched_at_s": i.launched_at_s, "interrupted": i.interrupted} for i in fleet]}


@router.get("/api/v1/accounts/{account}/regions/{region}/decisions", tags=["decisions"])
async def decisions(
    account: str,
    region: str,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="page size")] = 50,
    before: Annotated[int | None, Query(ge=1, description="cursor: only decisions with seq below this")] = None,
) -> dict[str, Any]:
    """Decisions, newest first; pass ``next_before`` back as ``before`` for the next page."""
    await known_region(runtime, account, region)
    records = await runtime.store.list_decisions(account, region, limit=limit, before=before)
    items = [r.to_json() for r in records]
    next_before = items[-1]["seq"] if len(items) == limit else None
    return {"account": account, "region": region, "decisions": items, "next_before": next_before}
