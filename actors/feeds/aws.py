"""The AWS feed of one (account, region): the fleet by its managed tag, the pools it may use, and their
spot prices, polled and handed to the region actor.

- Discovery, every ``discovery_s``: ``DescribeInstances`` filtered by the managed tag. The fleet's types
  and the catalog's compatible types, in the zones that offer them (``DescribeInstanceTypeOfferings``),
  are the pools; a zone that does not offer a type is no candidate. Instances that left are dropped,
  new ones join. A type the bundled catalog does not know is described (``DescribeInstanceTypes``) for
  the log, and its instances are skipped with a warning: without an on-demand price nothing can be
  weighed against it.
- Prices, every ``price_poll_s``: ``DescribeSpotPriceHistory`` from the newest timestamp seen (the first
  poll looks back ``price_lookback_s``), for the pools' types and the fleet's product descriptions,
  de-duplicated per pool, sent as one packed tick (the replay's wire format) at the poll's time.

A failing call is retried with backoff by the gateway; a poll that still fails leaves the actor deciding
on the last data, marks the source stale (since when, and why) and is tried again sooner than the period,
with jitter. Refused credentials are an ``error`` state on the account, retried at the period, never a
crash loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actors.aws.errors import AwsError, CredentialsError
from actors.aws.gateway import AwsGateway
from actors.aws.session import AwsAccess, AwsSessions
from actors.aws.translate import DiscoveredInstance, tag_filter
from actors.feeds.base import FeedHealth, FeedKey
from actors.wire import pack_ticks
from engine.catalog import Catalog, default_catalog
from engine.types import Instance, Lifecycle, Pool, PricePoint, region_of_zone

log = logging.getLogger(__name__)

RETRY_BASE_S = 5.0


@dataclass(frozen=True, slots=True)
class AwsFeedSettings:
    price_poll_s: float = 300.0
    discovery_s: float = 60.0
    price_lookback_s: float = 3 * 3600.0  # the first price poll's window: the prices in force then, too


@dataclass(slots=True)
class AwsFeed:
    """Feeds one region actor from one AWS account-region."""

    key: FeedKey
    access: AwsAccess
    managed_tag: str
    sessions: AwsSessions
    settings: AwsFeedSettings = field(default_factory=AwsFeedSettings)
    clock: Callable[[], float] = time.time
    catalog: Catalog = field(default_factory=default_catalog)
    gateway: AwsGateway | None = None
    actor: Any = None
    pools: dict[str, float] = field(default_factory=dict)  # pool key -> on-demand USD/hour, as sent
    product_descriptions: tuple[str, ...] = ("Linux/UNIX",)
    newest_price_s: dict[str, float] = field(default_factory=dict)  # pool key -> newest timestamp seen
    since_s: float | None = None  # the next poll's StartTime (None: look back)
    skipped_types: set[str] = field(default_factory=set)
    _health: FeedHealth = field(default_factory=FeedHealth)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _prices_due: asyncio.Event = field(default_factory=asyncio.Event)
    _rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        tag_filter(self.managed_tag)  # a malformed tag is the caller's error, now
        if self.gateway is None:
            self.gateway = AwsGateway(self.sessions, self.access, self.key.region)
        self._health.source("discovery")
        self._health.source("prices")

    # -- the Feed protocol -----------------------------------------------------------------------------
    async def start(self, actor: Any) -> None:
        self.actor = actor
        self._tasks = [asyncio.create_task(self._run_discovery(), name=f"aws-discovery:{self.key.account}"),
                       asyncio.create_task(self._run_prices(), name=f"aws-prices:{self.key.account}")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    def health(self) -> FeedHealth:
        return self._health

    # -- one pass of each source ---------------------------------------------------------------------
    async def discover_once(self) -> dict[str, Any]:
        """Discovery: the tagged fleet, the pools it may use, both handed to the actor."""
        assert self.gateway is not None and self.actor is not None
        region = self.key.region
        key, value = tag_filter(self.managed_tag)
        tagged = await self.gateway.managed_instances(key, value)
        found = [i for i in tagged if region_of_zone(i.availability_zone) == region]
        unknown = sorted({i.instance_type for i in found if i.instance_type not in self.catalog} - self.skipped_types)
        if unknown:
            described = await self.gateway.instance_types(unknown)
            for name in unknown:
                log.warning("account=%s region=%s: instance type %s is not in the bundled catalog (%s); its "
                            "instances are skipped", self.key.account, region, name,
                            "described by AWS" if name in described else "unknown to AWS too")
            self.skipped_types.update(unknown)
        fleet = [i for i in found if i.instance_type in self.catalog
                 and self.catalog.on_demand_usd_per_hour(i.instance_type, region)]
        wanted_types = sorted({t for i in fleet for t in self.catalog.compatible_types(i.instance_type, region)})
        offered = await self.gateway.offerings(wanted_types) if wanted_types else {}
        new_pools: list[tuple[str, float]] = []
        for instance_type in wanted_types:
            on_demand = self.catalog.on_demand_usd_per_hour(instance_type, region)
            zones = set(offered.get(instance_type, ()))
            zones |= {i.availability_zone for i in fleet if i.instance_type == instance_type}  # it runs there
            for zone in sorted(zones):
                pool_key = Pool(instance_type, zone).key
                if on_demand and pool_key not in self.pools:
                    self.pools[pool_key] = on_demand
                    new_pools.append((pool_key, on_demand))
        # Every pass sends every pool (adding is idempotent), so an actor Ray restarted without them gets
        # them back before its fleet; new pools get the price look-back once.
        await self.actor.add_pools.remote(sorted(self.pools.items()))
        if new_pools:
            self.since_s = None
            self._prices_due.set()
        descriptions = tuple(sorted({i.product_description for i in fleet})) or ("Linux/UNIX",)
        if descriptions != self.product_descriptions:
            self.product_descriptions = descriptions
            self._prices_due.set()
        instances = [engine_instance(i) for i in fleet]
        result: dict[str, Any] = await self.actor.sync_fleet.remote(instances, fleet, self.clock())
        return {**result, "pools": len(self.pools), "new_pools": len(new_pools), "skipped_types": unknown}

    async def poll_prices_once(self) -> int:
        """Prices: new points since the newest seen, as one tick at the poll's time; returns how many."""
        assert self.gateway is not None and self.actor is not None
        if not self.pools:
            return 0
        now_s = self.clock()
        types = sorted({Pool.from_key(k).instance_type for k in self.pools})
        # From the newest timestamp seen: AWS answers with each pool's price in force at StartTime too, so
        # nothing is missed; pools new since the last poll get the look-back window once.
        start_s = self.since_s if self.since_s is not None else now_s - self.settings.price_lookback_s
        history = await self.gateway.spot_price_history(types, self.product_descriptions, start_s)
        points: list[PricePoint] = []
        newest = dict(self.newest_price_s)
        for price in history:  # sorted by time: per pool the newest point wins in the engine too
            pool_key = f"{price.instance_type}@{price.availability_zone}"
            if pool_key not in self.pools or not math.isfinite(price.price_usd_per_hour):
                continue
            if price.timestamp_s <= newest.get(pool_key, -math.inf):
                continue  # seen in an earlier poll
            newest[pool_key] = max(newest.get(pool_key, -math.inf), price.timestamp_s)
            points.append(PricePoint(Pool.from_key(pool_key), price.price_usd_per_hour, price.timestamp_s,
                                     price.product_description))
        tick_s = max([now_s, *(p.timestamp_s for p in points)])  # a clock behind AWS's never rejects a batch
        await self.actor.ingest_packed.remote(pack_ticks([(tick_s, points, [])]))
        self.newest_price_s = newest
        if newest:
            self.since_s = max(newest.values())
        return len(points)

    # -- loops -----------------------------------------------------------------------------------------
    async def _run_discovery(self) -> None:
        await self._loop("discovery", self.settings.discovery_s, self.discover_once, None)

    async def _run_prices(self) -> None:
        await self._loop("prices", self.settings.price_poll_s, self.poll_prices_once, self._prices_due)

    async def _loop(self, name: str, period_s: float, step: Callable[[], Any], due: asyncio.Event | None) -> None:
        """Run ``step`` every ``period_s`` (sooner when ``due`` is set); after a failure retry sooner,
        backing off exponentially with full jitter up to the period."""
        source = self._health.source(name)
        while True:
            if due is not None:
                due.clear()
            try:
                await step()
                source.ok(self.clock())
                self._health.credentials_error = None
                wait_s = period_s
            except asyncio.CancelledError:
                raise
            except CredentialsError as exc:
                self._health.credentials_error = f"{exc.operation}: {exc.code}: credentials refused"
                source.failed(self.clock(), str(exc))
                log.error("account=%s region=%s %s: %s", self.key.account, self.key.region, name, exc)
                wait_s = period_s
            except AwsError as exc:
                source.failed(self.clock(), str(exc))
                log.warning("account=%s region=%s %s failed (%d in a row): %s", self.key.account,
                            self.key.region, name, source.failures, exc)
                wait_s = self._rng.uniform(0, min(period_s, RETRY_BASE_S * 2 ** source.failures))
            except Exception as exc:
                source.failed(self.clock(), f"{type(exc).__name__}: {exc}")
                log.exception("account=%s region=%s %s failed", self.key.account, self.key.region, name)
                wait_s = self._rng.uniform(0, min(period_s, RETRY_BASE_S * 2 ** source.failures))
            if due is None:
                await asyncio.sleep(wait_s)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(due.wait(), timeout=wait_s)


def engine_instance(found: DiscoveredInstance) -> Instance:
    """A discovered instance as the engine sees it: its pool, how it is bought, its group as its fleet
    (the disruption budget is per fleet)."""
    return Instance(found.instance_id, Pool(found.instance_type, found.availability_zone),
                    Lifecycle.SPOT if found.lifecycle == "spot" else Lifecycle.ON_DEMAND, found.launch_time_s,
                    found.auto_scaling_group or "default")
