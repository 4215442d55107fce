"""The running service: Ray, the store, the stream host, the supervisor, the replay feed and the fan-out.

Built in the app's lifespan from Settings, torn down at shutdown. Nothing here runs at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Any

from actors.demo import demo_fleet
from actors.feeds.replay import ReplayFeed, Tick
from actors.region import RegionConfig
from actors.store import Store
from actors.supervisor import Supervisor
from api.fanout import Fanout
from api.settings import Settings
from engine.catalog import default_catalog
from engine.market import MarketTrace
from engine.policy import PolicyParams
from engine.price_history import price_points_to_market_trace, read_price_history
from engine.traces import bundled_market, load_market, on_demand_from_catalog

log = logging.getLogger(__name__)

PRICE_HISTORY_TICK_S = 300.0


def load_replay_market(settings: Settings) -> MarketTrace:
    """The history to replay: the files the settings name, else the bundled real slice.

    Raises ``engine.traces.TraceError`` (naming the file, row and field) on a bad file.
    """
    if settings.availability_path is not None:
        return load_market(settings.availability_path, settings.prices_path)
    if settings.prices_path is not None:
        points = read_price_history(settings.prices_path)
        trace = price_points_to_market_trace(points, tick_s=PRICE_HISTORY_TICK_S)
        return load_market_on_demand(trace)
    return bundled_market()


def load_market_on_demand(trace: MarketTrace) -> MarketTrace:
    """Fill on-demand prices from the catalog when the history did not state them."""
    if trace.on_demand_usd_per_hour is not None:
        return trace
    return dataclasses.replace(trace, on_demand_usd_per_hour=on_demand_from_catalog(trace.pools))


def on_demand_price(trace: MarketTrace, index: int) -> float:
    """On-demand USD/hour of a pool: the trace's, else the catalog's, else a conservative 3x spot."""
    if trace.on_demand_usd_per_hour is not None and math.isfinite(trace.on_demand_usd_per_hour[index]):
        return float(trace.on_demand_usd_per_hour[index])
    pool = trace.pools[index]
    catalog = default_catalog()
    known = catalog.on_demand_usd_per_hour(pool.instance_type, pool.region) if pool.instance_type in catalog else None
    if known:
        return known
    assert trace.spot_price is not None
    return float(max(trace.spot_price[:, index].max(), 1e-6) * 3.0)


def start_ray(settings: Settings) -> None:
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if settings.ray_address:
        ray.init(address=settings.ray_address, namespace="spot-optimizer", log_to_driver=False)
    else:
        ray.init(num_cpus=settings.ray_num_cpus, include_dashboard=False, namespace="spot-optimizer",
                 log_to_driver=False, configure_logging=False)


@dataclass(slots=True)
class Runtime:
    settings: Settings
    store: Store
    supervisor: Supervisor
    hub: Any
    fanout: Fanout
    market: MarketTrace | None = None
    feed: ReplayFeed | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    async def start(cls, settings: Settings) -> Runtime:
        from actors.remote import stream_host

        market = load_replay_market(settings) if settings.replay else None
        start_ray(settings)
        database_url = settings.resolved_database_url()
        store = await Store.open(database_url, migrate=True)
        hub = stream_host()
        supervisor = Supervisor(hub=hub)
        runtime = cls(settings, store, supervisor, hub, Fanout(hub), market)
        if market is not None:
            await runtime._start_replay(market, database_url)
        runtime.tasks.append(asyncio.create_task(runtime.fanout.run(runtime.stop), name="fanout"))
        return runtime

    async def _start_replay(self, market: MarketTrace, database_url: str) -> None:
        settings = self.settings
        params = PolicyParams()
        handles = {}
        for region in sorted({p.region for p in market.pools}):
            config = RegionConfig(settings.account, region, policy=settings.policy, params=params,
                                  database_url=database_url)
            handle = self.supervisor.get_or_create(config)
            pools = [(p.key, on_demand_price(market, i)) for i, p in enumerate(market.pools) if p.region == region]
            await handle.add_pools.remote(pools)
            await handle.ready.remote()
            handles[region] = handle
            self.fanout.watch(settings.account, region)
        if settings.demo_fleet_size:
            fleet = demo_fleet(market, settings.demo_instance_type, settings.demo_region, settings.demo_fleet_size)
            await handles[settings.demo_region].set_fleet.remote(fleet, market.start_s)

        async def send(region: str, ticks: list[Tick]) -> Any:
            return await handles[region].ingest_many.remote(ticks)

        self.feed = ReplayFeed(market, send, speed=settings.replay_speed,
                               interval_s=settings.replay_tick_interval_s)
        self.tasks.append(asyncio.create_task(self.feed.run(self.stop), name="replay"))

    async def close(self) -> None:
        self.stop.set()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.store.close()
        import ray

        for account, region in self.supervisor.list():
            with contextlib.suppress(Exception):
                ray.kill(self.supervisor.get(account, region), no_restart=True)
        with contextlib.suppress(Exception):
            ray.kill(self.hub, no_restart=True)


def describe_source(settings: Settings) -> str:
    """What the replay plays, for the start-up banner."""
    if settings.availability_path or settings.prices_path:
        return ", ".join(str(p) for p in (settings.availability_path, settings.prices_path) if p)
    return "bundled real p3.2xlarge prices and availability (2023-02-15, 9 zones)"
