"""Replay account-regions for the memory and soak benches, made through the real code path: the demo
replay account narrowed to one region over REST (``PATCH``), more replay accounts registered over REST
(``POST /api/v1/accounts``), one region each, the replayed regions in turn. Each gets a small fleet, as
discovery would give an AWS account's actor, so every actor decides, learns and publishes."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from actors.demo import demo_fleet
from api.testing import ADMIN_KEY, LiveServer, bearer_headers, demo_key

REGISTER_CONCURRENCY = 4  # a new actor costs its process's start-up: a few at a time, as operators would


async def bench_tenant(http: httpx.AsyncClient, prefix: str) -> str:
    """A new tenant's API key."""
    response = await http.post("/api/v1/tenants", json={"name": f"{prefix}-{uuid.uuid4().hex[:6]}"},
                               headers=bearer_headers(ADMIN_KEY))
    response.raise_for_status()
    return str(response.json()["api_key"]["key"])


async def narrow_demo(http: httpx.AsyncClient, server: LiveServer) -> None:
    """The demo replay account watches the demo region only: one account-region."""
    settings = server.app.state.settings
    key = await demo_key(http)
    response = await http.patch(f"/api/v1/accounts/{settings.account}", json={"regions": [settings.demo_region]},
                                headers=bearer_headers(key))
    response.raise_for_status()


async def register(http: httpx.AsyncClient, server: LiveServer, key: str, count: int, fleet_size: int,
                   prefix: str = "bench") -> list[tuple[str, str]]:
    """``count`` more replay account-regions of the tenant of ``key``, each with ``fleet_size`` instances."""
    runtime = server.runtime
    regions = runtime.registry.replay_regions
    market = runtime.market
    assert market is not None, "the server must replay"
    instance_type = server.app.state.settings.demo_instance_type
    semaphore = asyncio.Semaphore(REGISTER_CONCURRENCY)

    async def one(k: int) -> tuple[str, str]:
        name, region = f"{prefix}-{uuid.uuid4().hex[:8]}", regions[k % len(regions)]
        body = {"name": name, "regions": [region], "credentials_mode": "replay"}
        async with semaphore:
            response = await http.post("/api/v1/accounts", json=body, headers=bearer_headers(key))
            response.raise_for_status()
            if fleet_size:
                fleet = demo_fleet(market, instance_type, region, fleet_size, fleet=name)
                await runtime.supervisor.get(name, region).set_fleet.remote(fleet, market.start_s)
        return name, region

    return list(await asyncio.gather(*(one(k) for k in range(count))))
