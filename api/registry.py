"""Registered accounts -> running region actors, and which of them the replay feeds.

An account in ``replay`` credentials mode follows the recorded market the server replays (no cloud
credentials needed): its actors get the market's pools, the feed's current prices at once, then every
batch. The AWS modes store only non-secret references (a role ARN); their actors start empty and wait for
a cloud feed. Changing an account's policy or executor restarts its actors with the new config (an actor
continues its decision sequence from the store, so streams stay gap-free).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actors.feeds.replay import Tick
from actors.region import DEFAULT_PRICE_RETENTION_S, RegionConfig
from actors.remote import NAMESPACE, region_actor_name
from actors.store.tenancy import Account
from actors.supervisor import Supervisor
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


def region_config(account: Account, region: str, database_url: str,
                  price_retention_s: float = DEFAULT_PRICE_RETENTION_S) -> RegionConfig:
    return RegionConfig(account.name, region, policy=account.policy, params=PolicyParams(**account.policy_params),
                        database_url=database_url, executor=account.executor_mode,
                        price_retention_s=price_retention_s)


@dataclass(slots=True)
class AccountRegistry:
    supervisor: Supervisor
    database_url: str
    market: MarketTrace | None = None
    price_retention_s: float = DEFAULT_PRICE_RETENTION_S
    current_tick: Callable[[str], Tick | None] = lambda _region: None  # the feed's latest full state
    replay_targets: dict[str, dict[str, Any]] = field(default_factory=dict)  # region -> account -> handle

    @property
    def replay_regions(self) -> list[str]:
        return sorted({p.region for p in self.market.pools}) if self.market is not None else []

    async def start(self, account: Account, fleet: dict[str, list[Instance]] | None = None,
                    fleet_at_s: float = 0.0) -> None:
        """Create (or find) the account's region actors; attach replay accounts to the feed."""
        for region in account.regions:
            handle = self.supervisor.get_or_create(region_config(account, region, self.database_url,
                                                                  self.price_retention_s))
            if account.credentials_mode == REPLAY and self.market is not None:
                market = self.market
                pools = [(p.key, on_demand_price(market, i)) for i, p in enumerate(market.pools) if p.region == region]
                await handle.add_pools.remote(pools)
            await handle.ready.remote()
            if fleet and fleet.get(region):
                await handle.set_fleet.remote(fleet[region], fleet_at_s)
            if account.credentials_mode == REPLAY:
                tick = self.current_tick(region)
                if tick is not None:
                    with contextlib.suppress(Exception):  # the next batch brings everything anyway
                        await handle.ingest_many.remote([tick])
                self.replay_targets.setdefault(region, {})[account.name] = handle

    async def stop(self, name: str) -> None:
        """Detach the account from the feed and end its actors."""
        import ray

        for targets in self.replay_targets.values():
            targets.pop(name, None)
        for key in [k for k in self.supervisor.actors if k[0] == name]:
            handle = self.supervisor.actors.pop(key)
            self.supervisor.configs.pop(key, None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(handle.close.remote(), 5.0)
            with contextlib.suppress(Exception):
                ray.kill(handle, no_restart=True)
            await _name_released(region_actor_name(*key))

    async def restart(self, account: Account) -> None:
        """New config for a running account: the fleet is carried over, the models start fresh."""
        fleets: dict[str, list[Instance]] = {}
        for region in account.regions:
            if self.supervisor.known(account.name, region):
                with contextlib.suppress(Exception):
                    fleets[region] = await self.supervisor.get(account.name, region).instances.remote()
        await self.stop(account.name)
        await asyncio.sleep(0)  # let Ray release the actor names before they are taken again
        await self._start_when_name_free(account, fleets)

    async def _start_when_name_free(self, account: Account, fleets: dict[str, list[Instance]]) -> None:
        for attempt in range(50):
            try:
                await self.start(account, fleets, self._now_s())
                return
            except Exception:
                if attempt == 49:
                    raise
                for key in [k for k in self.supervisor.actors if k[0] == account.name]:
                    self.supervisor.actors.pop(key)
                    self.supervisor.configs.pop(key, None)
                await asyncio.sleep(0.1)

    def _now_s(self) -> float:
        for region in self.replay_regions:
            tick = self.current_tick(region)
            if tick is not None:
                return tick[0]
        return 0.0

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
