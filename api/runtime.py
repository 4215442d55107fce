"""The running service: Ray, the store and tenancy, the stream host, the supervisor and the registered
accounts, the replay feed, the fan-out and the simulations.

Built in the app's lifespan from Settings, torn down at shutdown. Nothing here runs at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from actors.demo import DEMO_POLICY_OVERRIDES, demo_fleet
from actors.feeds.aws import AwsFeedSettings
from actors.feeds.replay import ReplayFeed
from actors.ray_runtime import connect, kill_actors, service_target
from actors.registry import AccountRegistry, ActorSettings, on_demand_price
from actors.store import MAX_REPLAY, Store
from actors.store.tenancy import Account, ConflictError, Tenancy
from actors.stream import Entry, encode, parse_stream_key
from actors.supervisor import Supervisor
from actors.wire import Tick
from api.auth import TokenBucket
from api.fanout import Fanout
from api.notify import start_webhooks
from api.settings import Settings
from api.simulations import SimulationService
from engine.market import MarketTrace
from engine.price_history import price_points_to_market_trace, read_price_history
from engine.traces import bundled_market, load_market, with_catalog_on_demand
from engine.types import AvailabilityPoint, Instance, PricePoint

log = logging.getLogger(__name__)

PRICE_HISTORY_TICK_S = 300.0
DEMO_KEY_LABEL = "serve-bootstrap"
ACTOR_CLOSE_TIMEOUT_S = 5.0
__all__ = ["Runtime", "describe_source", "load_replay_market", "on_demand_price"]


def load_replay_market(settings: Settings) -> MarketTrace:
    """The history to replay: the files the settings name, else the bundled real slice.

    Raises ``engine.traces.TraceError`` (naming the file, row and field) on a bad file.
    """
    if settings.availability_path is not None:
        return load_market(settings.availability_path, settings.prices_path)
    if settings.prices_path is not None:
        points = read_price_history(settings.prices_path)
        trace = price_points_to_market_trace(points, tick_s=PRICE_HISTORY_TICK_S)
        return with_catalog_on_demand(trace)
    return bundled_market()


def start_ray(settings: Settings) -> None:
    """Start (or join) the server's Ray: the one ``connect`` the CLI's simulations use too."""
    connect(service_target(settings.ray_address, settings.ray_num_cpus))


def actor_settings(settings: Settings) -> ActorSettings:
    return ActorSettings(price_retention_s=settings.price_retention_s, notice_hold_s=settings.aws_notice_hold_s,
                         checkpoint_interval_s=settings.checkpoint_s, unsaved_limit_events=settings.unsaved_limit)


def aws_feed_settings(settings: Settings) -> AwsFeedSettings:
    return AwsFeedSettings(price_poll_s=settings.aws_price_poll_s, discovery_s=settings.aws_discovery_s)


@dataclass(slots=True)
class Runtime:
    settings: Settings
    store: Store
    tenancy: Tenancy
    supervisor: Supervisor
    registry: AccountRegistry
    hub: Any
    fanout: Fanout
    limiter: TokenBucket
    token_secret: bytes
    simulations: SimulationService
    market: MarketTrace | None = None
    feed: ReplayFeed | None = None
    demo_api_key: str | None = None
    demo_tenant_id: str | None = None
    started_at_s: float = field(default_factory=time.time)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    async def start(cls, settings: Settings) -> Runtime:
        from actors.remote import stream_host, stream_host_name

        market = load_replay_market(settings) if settings.replay else None
        start_ray(settings)
        database_url = settings.resolved_database_url()
        store = await Store.open(database_url, migrate=settings.migrate_on_start)
        hub_name = stream_host_name()  # region actors find it by name (see actors/remote.py)
        hub = stream_host(hub_name, settings.stream_capacity)
        supervisor = Supervisor(hub_name=hub_name, actor_memory_mb=settings.region_actor_memory_mb)
        registry = AccountRegistry(supervisor, database_url, market, actor_settings(settings),
                                   aws=aws_feed_settings(settings))
        tenancy = Tenancy(store.engine)
        fanout = Fanout(hub, queue_size=settings.ws_queue_size)
        secret = settings.token_secret.encode() if settings.token_secret else secrets.token_bytes(32)
        runtime = cls(settings, store, tenancy, supervisor, registry, hub, fanout,
                      TokenBucket(settings.rate_limit_per_s, settings.rate_limit_burst), secret,
                      SimulationService(tenancy), market)
        fanout.fill_gap = runtime.events_between
        runtime.tasks.append(asyncio.create_task(fanout.heartbeats(settings.ws_heartbeat_s, runtime.stop),
                                                 name="heartbeats"))
        runtime.tasks += start_webhooks(store, settings, runtime.stop)  # the webhook consumer (api/notify.py)
        registry.current_tick = runtime.current_tick
        try:
            if settings.bootstrap_demo_tenant:
                await runtime._bootstrap_demo()
            for account in await tenancy.list_accounts():
                if not (market is not None and account.name == settings.account):
                    await registry.start(account)
            if market is not None:
                await runtime._start_replay(market)
        except BaseException:
            await runtime.close()
            raise
        return runtime

    async def _bootstrap_demo(self) -> None:
        """A local tenant owning the replay account, so a first run shows something without setup.

        Without an admin key, a fresh key for it is made at every start (the previous one is revoked),
        kept in ``demo_api_key`` for the start-up banner, and never stored in clear.
        """
        settings, now_s = self.settings, time.time()
        tenant = await self.tenancy.tenant_by_name(settings.demo_tenant)
        if tenant is None:
            tenant = await self.tenancy.create_tenant(settings.demo_tenant, now_s)
        self.demo_tenant_id = tenant.id
        if settings.replay and await self.tenancy.get_account(None, settings.account) is None:
            regions = tuple(self.registry.replay_regions)
            with contextlib.suppress(ConflictError):  # an old tombstone keeps the name: nothing to own
                await self.tenancy.create_account(Account(
                    settings.account, tenant.id, regions, "replay", "simulated", settings.policy,
                    dict(DEMO_POLICY_OVERRIDES), {}, now_s, now_s))
        if not settings.admin_api_key:
            await self.tenancy.revoke_keys_labelled(tenant.id, DEMO_KEY_LABEL, now_s)
            _, self.demo_api_key = await self.tenancy.create_key(tenant.id, DEMO_KEY_LABEL, now_s)

    async def _start_replay(self, market: MarketTrace) -> None:
        settings = self.settings
        owned = await self.tenancy.get_account(None, settings.account)
        account = owned or Account(settings.account, self.demo_tenant_id or "", tuple(self.registry.replay_regions),
                                   "replay", "simulated", settings.policy, dict(DEMO_POLICY_OVERRIDES), {})
        account = dataclasses.replace(account, credentials_mode="replay")
        fleet: dict[str, list[Instance]] = {}
        if (settings.demo_fleet_size and settings.demo_region in account.regions
                and not await self.store.list_instances(account.name, settings.demo_region)):  # else restored
            fleet[settings.demo_region] = demo_fleet(market, settings.demo_instance_type, settings.demo_region,
                                                     settings.demo_fleet_size)
        await self.registry.start(account, fleet, market.start_s)
        self.feed = ReplayFeed(market, self.registry.send, speed=settings.replay_speed,
                               interval_s=settings.replay_tick_interval_s)
        self.feed.resume_after(await self._restored_replay_clock())
        self.tasks.append(asyncio.create_task(self.feed.run(self.stop), name="replay"))

    async def _restored_replay_clock(self) -> float:
        """The latest tick any replay actor restored from its checkpoint (-inf: none): the replay goes on
        after it instead of from the start of the trace."""
        handles = [h for targets in self.registry.replay_targets.values() for h in targets.values()]
        statuses = await asyncio.gather(*(h.status.remote() for h in handles))
        return max((float(s["last_tick_s"]) for s in statuses if s["last_tick_s"] == s["last_tick_s"]),
                   default=-math.inf)

    def current_tick(self, region: str) -> Tick | None:
        """Every pool's latest replayed price and availability in ``region``: a new actor's first tick."""
        feed = self.feed
        if feed is None or feed._last_price is None or feed._last_available is None or feed.next_tick == 0:
            return None
        now_s = feed.now_s(feed.next_tick - 1)
        pools = [(i, p) for i, p in enumerate(feed.trace.pools) if p.region == region]
        prices = [PricePoint(p, float(feed._last_price[i]), now_s) for i, p in pools]
        availability = [AvailabilityPoint(p, bool(feed._last_available[i]), now_s) for i, p in pools]
        return (now_s, prices, availability)

    async def stored_after(self, stream: str, after: int, limit: int) -> list[Entry]:
        """Up to ``limit`` stored events of ``stream`` with seq > ``after``, ascending, as stream entries
        (seq, JSON text): what a resuming client missed. Decisions come from their table, the other topics
        from the stored events."""
        account, region, topic = parse_stream_key(stream)
        if topic == "decisions":
            records = await self.store.decisions_after(account, region, after, limit=limit)
            return [(r.seq, encode(r.to_json())) for r in records]
        return [(e.seq, e.payload) for e in await self.store.events_after(account, region, topic, after, limit=limit)]

    async def events_between(self, stream: str, after: int, before: int) -> list[Entry]:
        """Stored entries of ``stream`` with after < seq < before: a listener's gap, which the ring buffer
        had evicted."""
        out: list[Entry] = []
        while True:
            page = await self.stored_after(stream, after, MAX_REPLAY)
            out += [entry for entry in page if entry[0] < before]
            if len(page) < MAX_REPLAY or page[-1][0] >= before:
                return out
            after = page[-1][0]

    async def close(self) -> None:
        self.stop.set()
        await self.registry.close()
        await self.simulations.close()
        await self.fanout.close()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        handles = [self.supervisor.get(account, region) for account, region in self.supervisor.list()]
        with contextlib.suppress(Exception):  # each actor checkpoints as it closes; a slow one is killed anyway
            await asyncio.wait_for(asyncio.gather(*(h.close.remote() for h in handles), return_exceptions=True),
                                   ACTOR_CLOSE_TIMEOUT_S)
        kill_actors([*handles, self.hub])
        await self.store.close()


def describe_source(settings: Settings) -> str:
    """What the replay plays, for the start-up banner."""
    if settings.availability_path or settings.prices_path:
        return ", ".join(str(p) for p in (settings.availability_path, settings.prices_path) if p)
    return "bundled real p3.2xlarge prices and availability (2023-02-15, 9 zones)"
