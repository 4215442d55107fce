"""Registered accounts -> running region actors and the feeds that feed them.

Every (account, region) gets a region actor and one feed (``actors/feeds/base.py``), chosen by the
account's credentials mode: ``replay`` accounts follow the recorded market the server replays (no cloud
credentials: the actor gets the market's pools, the feed's current prices at once, then every batch);
``aws_default`` and ``aws_assume_role`` accounts get an AWS feed (discovery by the managed tag, spot
prices) and, when the account names an interruption queue, one consumer of it per account. Only
non-secret references (a role ARN) are kept. Changing an account's policy or executor reconfigures its
actors in place (their learned models, pools, fleet and streams stay); a region added starts an actor, a
region removed stops one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from actors.feeds.base import Feed, FeedHealth, FeedKey
from actors.feeds.replay import ReplayAttachment, Tick
from actors.region_config import (
    AWS_CREDENTIALS_MODES,
    DEFAULT_CHECKPOINT_INTERVAL_S,
    DEFAULT_NOTICE_HOLD_S,
    DEFAULT_PRICE_RETENTION_S,
    RegionConfig,
)
from actors.remote import NAMESPACE, region_actor_name
from actors.store.tenancy import Account
from actors.supervisor import Supervisor
from actors.unsaved import DEFAULT_LIMIT_EVENTS
from actors.wire import pack_ticks
from engine.market import MarketTrace
from engine.policy import PolicyParams
from engine.types import Instance

log = logging.getLogger(__name__)

REPLAY = "replay"


def on_demand_price(trace: MarketTrace, index: int) -> float:
    """On-demand USD/hour of a pool: the trace's, else the catalog's, else a conservative 3x spot."""
    import math

    from engine.catalog import default_catalog

    if trace.on_demand_usd_per_hour is not None and math.isfinite(trace.on_demand_usd_per_hour[index]):
        return float(trace.on_demand_usd_per_hour[index])
    pool = trace.pools[index]
    catalog = default_catalog()
    known = catalog.on_demand_usd_per_hour(pool.instance_type, pool.region) if pool.instance_type in catalog else None
    if known:
        return known
    assert trace.spot_price is not None
    return float(max(trace.spot_price[:, index].max(), 1e-6) * 3.0)


async def _name_released(name: str, timeout_s: float = 10.0) -> None:
    """Wait until Ray forgets a killed actor's name, so a new actor can take it."""
    import ray

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        try:
            ray.get_actor(name, namespace=NAMESPACE)
        except ValueError:
            return
        await asyncio.sleep(0.05)


@dataclass(frozen=True, slots=True)
class ActorSettings:
    """What the server sets for every region actor alike (the account sets the rest)."""

    price_retention_s: float = DEFAULT_PRICE_RETENTION_S
    notice_hold_s: float = DEFAULT_NOTICE_HOLD_S
    checkpoint_interval_s: float = DEFAULT_CHECKPOINT_INTERVAL_S
    unsaved_limit_events: int = DEFAULT_LIMIT_EVENTS


def region_config(account: Account, region: str, database_url: str,
                  actor: ActorSettings = ActorSettings()) -> RegionConfig:
    credentials = account.credentials
    return RegionConfig(account.name, region, policy=account.policy, params=PolicyParams(**account.policy_params),
                        database_url=database_url, executor=account.executor_mode,
                        credentials_mode=account.credentials_mode,
                        role_arn=credentials.get("role_arn"), external_id=credentials.get("external_id"),
                        managed_tag=str(account.aws.get("managed_tag") or DEFAULT_MANAGED_TAG),
                        config_at_s=account.updated_at_s, price_retention_s=actor.price_retention_s,
                        notice_hold_s=actor.notice_hold_s, checkpoint_interval_s=actor.checkpoint_interval_s,
                        unsaved_limit_events=actor.unsaved_limit_events)


DEFAULT_MANAGED_TAG = "spot-optimizer:managed=true"


@dataclass(slots=True)
class AccountRegistry:
    supervisor: Supervisor
    database_url: str
    market: MarketTrace | None = None
    actor_settings: ActorSettings = field(default_factory=ActorSettings)
    current_tick: Callable[[str], Tick | None] = lambda _region: None  # the feed's latest full state
    replay_targets: dict[str, dict[str, Any]] = field(default_factory=dict)  # region -> account -> handle
    aws: Any = None  # actors.feeds.aws.AwsFeedSettings; the AWS modules load only once an AWS account starts
    feeds: dict[FeedKey, Feed] = field(default_factory=dict)
    consumers: dict[str, Any] = field(default_factory=dict)  # account -> its InterruptionConsumer
    _aws_sessions: Any = None

    @property
    def replay_regions(self) -> list[str]:
        return sorted({p.region for p in self.market.pools}) if self.market is not None else []

    async def start(self, account: Account, fleet: dict[str, list[Instance]] | None = None,
                    fleet_at_s: float = 0.0) -> None:
        """Create (or find) the account's region actors and start a feed for each."""
        for region in account.regions:
            handle = self.supervisor.get_or_create(self._config(account, region))
            await handle.ready.remote()
            feed = self._make_feed(account, region, (fleet or {}).get(region, []), fleet_at_s)
            if feed is not None:
                running = self.feeds.pop(feed.key, None)
                if running is not None:
                    await running.stop()
                await feed.start(handle)
                self.feeds[feed.key] = feed
        self._start_consumer(account)

    def _make_feed(self, account: Account, region: str, fleet: list[Instance], fleet_at_s: float) -> Feed | None:
        """The feed of an account-region, by credentials mode (replay without a market: none)."""
        if account.credentials_mode == REPLAY:
            if self.market is None:
                return None
            return ReplayAttachment(FeedKey("replay", account.name, region), self.market, self.replay_targets,
                                    self.current_tick, on_demand_price, fleet, fleet_at_s)
        if account.credentials_mode in AWS_CREDENTIALS_MODES:
            from actors.feeds.aws import AwsFeed, AwsFeedSettings

            return AwsFeed(FeedKey("aws", account.name, region), self._aws_access(account),
                           str(account.aws.get("managed_tag") or DEFAULT_MANAGED_TAG), self._sessions(),
                           self.aws or AwsFeedSettings())
        raise ValueError(f"account {account.name!r}: no feed for credentials_mode {account.credentials_mode!r}")

    def _sessions(self) -> Any:
        if self._aws_sessions is None:
            from actors.aws.session import AwsSessions

            self._aws_sessions = AwsSessions()
        return self._aws_sessions

    @staticmethod
    def _aws_access(account: Account) -> Any:
        from actors.aws.session import AwsAccess

        credentials = account.credentials
        return AwsAccess(account.credentials_mode, credentials.get("role_arn"), credentials.get("external_id"))

    def _start_consumer(self, account: Account) -> None:
        """One interruption queue consumer per AWS account that names a queue."""
        queue_url = account.aws.get("interruption_queue_url")
        if account.credentials_mode not in AWS_CREDENTIALS_MODES or not queue_url or account.name in self.consumers:
            return
        from actors.aws.gateway import AwsGateway
        from actors.feeds.interruptions import InterruptionConsumer, queue_region

        gateway = AwsGateway(self._sessions(), self._aws_access(account), queue_region(queue_url, account.regions[0]))
        name = account.name
        consumer = InterruptionConsumer(name, queue_url, gateway,
                                        lambda region: self.supervisor.actors.get((name, region)))
        consumer.start()
        self.consumers[name] = consumer

    async def stop_feeds(self, name: str) -> None:
        """Stop the account's feeds and its queue consumer (its actors keep running)."""
        for key in [k for k in self.feeds if k.account == name]:
            await self.feeds.pop(key).stop()
        consumer = self.consumers.pop(name, None)
        if consumer is not None:
            await consumer.stop()

    async def restart_feeds(self, account: Account) -> None:
        """New AWS settings or credentials: the feeds start again; the actors and their models stay."""
        await self.stop_feeds(account.name)
        for region in account.regions:
            handle = self.supervisor.actors.get((account.name, region))
            feed = self._make_feed(account, region, [], 0.0) if handle is not None else None
            if feed is not None:
                await feed.start(handle)
                self.feeds[feed.key] = feed
        self._start_consumer(account)

    def _health(self, key: FeedKey, feed: Feed) -> FeedHealth:
        """A feed's health with its account's interruption queue beside it."""
        consumer = self.consumers.get(key.account)
        health = feed.health()
        return health if consumer is None else health.with_source("interruptions", consumer.health)

    def health(self, name: str) -> dict[str, Any]:
        """Per region of the account: its feed's state, why, and since when (see FeedHealth)."""
        return {key.region: self._health(key, feed).as_json()
                for key, feed in sorted(self.feeds.items()) if key.account == name}

    def stale(self) -> dict[str, FeedHealth]:
        """Every feed that is not ``ok`` or ``starting``, by ``provider/account/region`` (for /readyz)."""
        healths = {f"{key.provider}/{key.account}/{key.region}": self._health(key, feed)
                   for key, feed in self.feeds.items()}
        return {name: health for name, health in healths.items() if health.state not in ("ok", "starting")}

    async def close(self) -> None:
        for name in sorted({k.account for k in self.feeds} | set(self.consumers)):
            await self.stop_feeds(name)
        if self._aws_sessions is not None:
            await self._aws_sessions.close()
            self._aws_sessions = None

    async def stop(self, name: str) -> None:
        """Stop the account's feeds and end its actors."""
        await self.stop_feeds(name)
        for key in [k for k in self.supervisor.actors if k[0] == name]:
            await self._end_actor(key)

    async def _end_actor(self, key: tuple[str, str]) -> None:
        """Close the actor (it checkpoints) and kill it for good."""
        from actors.ray_runtime import kill_actors

        handle = self.supervisor.actors.pop(key)
        self.supervisor.configs.pop(key, None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(handle.close.remote(), 5.0)
        kill_actors([handle])
        await _name_released(region_actor_name(*key))

    async def restart(self, account: Account) -> None:
        """New config for a running account: the actors of regions that stay are reconfigured in place
        (models, pools, fleet and streams stay), regions added start, regions removed stop."""
        name = account.name
        running = {region for owner, region in self.supervisor.actors if owner == name}
        for region in sorted(running - set(account.regions)):
            for key in [k for k in self.feeds if k.account == name and k.region == region]:
                await self.feeds.pop(key).stop()
            await self._end_actor((name, region))
        for region in account.regions:
            if region in running:
                config = self._config(account, region)
                await self.supervisor.get(name, region).reconfigure.remote(config)
                self.supervisor.configs[(name, region)] = config
        added = tuple(region for region in account.regions if region not in running)
        if added:
            await self.start(replace(account, regions=added))

    def _config(self, account: Account, region: str) -> RegionConfig:
        return region_config(account, region, self.database_url, self.actor_settings)

    async def send(self, region: str, ticks: list[Tick]) -> Any:
        """The feed's sender: one batch of a region to every replay account in it."""
        targets = list(self.replay_targets.get(region, {}).items())
        packed = pack_ticks(ticks)  # once for every account: see actors/wire.py
        results = await asyncio.gather(*(h.ingest_packed.remote(packed) for _, h in targets), return_exceptions=True)
        failures = [(name, r) for (name, _), r in zip(targets, results, strict=True) if isinstance(r, BaseException)]
        for name, error in failures:
            log.error("replay batch for account=%s region=%s failed: %s", name, region, error)
        if failures and len(failures) == len(targets):
            raise failures[0][1]
        return results
