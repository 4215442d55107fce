"""Liveness, readiness (Ray, store, feed) and Prometheus metrics."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials

from api import metrics
from api.auth import is_admin_key
from api.deps import RuntimeDep, bearer_scheme
from api.errors import Unauthorized
from api.runtime import Runtime

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_S = 2.0
FEED_STALE_S = 30.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process serves requests."""
    return {"status": "ok"}


async def _ray_ready(runtime: Runtime) -> bool:
    try:
        await asyncio.wait_for(runtime.hub.last_seq.remote("readyz/probe/decisions"), CHECK_TIMEOUT_S)
    except Exception:
        return False
    return True


def _feed_state(runtime: Runtime) -> dict[str, Any]:
    feed = runtime.feed
    if feed is None:
        return {"ok": True, "running": False}
    task = next((t for t in runtime.tasks if t.get_name() == "replay"), None)
    alive = task is not None and not task.done()
    warming = time.time() - runtime.started_at_s < FEED_STALE_S
    ok = alive and (feed.batches_sent > 0 or warming) and feed.errors <= feed.batches_sent // 2
    return {"ok": ok, "running": alive, "batches": feed.batches_sent, "errors": feed.errors}


@router.get("/readyz", responses={503: {"description": "a dependency is down"}})
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Readiness: Ray answers (the stream host), the store answers, the replay feed is moving, no cloud
    feed is stale or refused (each one that is says since when and why), and no region actor's buffer of
    unsaved events has overflowed (events waiting for the store are listed)."""
    ray_ok, store_ok, statuses = await asyncio.gather(_ray_ready(runtime), runtime.store.ping(),
                                                      metrics.actor_statuses(runtime))
    feed = _feed_state(runtime)
    stale = {name: health.as_json() for name, health in runtime.registry.stale().items()}
    unsaved = {f"{s['account']}/{s['region']}": s["unsaved_events"] for s in statuses if s.get("unsaved_events")}
    overflowing = sorted(f"{s['account']}/{s['region']}" for s in statuses if s.get("store_overflow"))
    ready = ray_ok and store_ok and feed["ok"] and not stale and not overflowing
    body = {"status": "ready" if ready else "not_ready",
            "checks": {"ray": ray_ok, "store": store_ok, "feed": feed,
                       "cloud_feeds": {"ok": not stale, "stale": stale},
                       "unsaved": {"ok": not overflowing, "events": unsaved, "overflowing": overflowing}}}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
async def prometheus(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Response:
    """Prometheus metrics. With an admin key configured, scrapes must send it (labels name accounts)."""
    admin_key = runtime.settings.admin_api_key
    if admin_key and (credentials is None or not is_admin_key(credentials.credentials, admin_key)):
        raise Unauthorized("send the admin key to read /metrics")
    return Response(await metrics.render(runtime), media_type="text/plain; version=0.0.4; charset=utf-8")
