"""Replay recorded spot prices and availability into region actors at a chosen speed.

Every ``interval_s`` of wall time the feed advances simulated time by ``speed x interval_s`` and sends each
region's actor one batch: the ticks it passed, each with the prices and availability that changed (all of
them on the first tick). Each region is sent at its own phase of the interval, so regions do not all
tick at the same instant. At the end of the trace it starts again, shifted forward in time, so the clock
never runs backwards and a demo can run for as long as it is left on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from actors.feeds.base import FeedHealth, FeedKey
from actors.feeds.schedule import spread_offsets
from actors.wire import Tick
from engine.market import MarketTrace
from engine.types import AvailabilityPoint, Instance, PricePoint

log = logging.getLogger(__name__)

Sender = Callable[[str, list[Tick]], Awaitable[Any]]


@dataclass(slots=True)
class ReplayFeed:
    """Plays a MarketTrace into per-region senders."""

    trace: MarketTrace
    send: Sender  # (region, ticks) -> awaitable; one call per region per batch
    speed: float = 3600.0  # simulated seconds per wall second
    interval_s: float = 0.5
    loop: bool = True
    spread: bool = True  # regions at their own phases of the interval: see actors/feeds/schedule.py
    next_tick: int = 0
    lap: int = 0
    batches_sent: int = 0
    errors: int = 0
    _last_price: np.ndarray | None = field(default=None, repr=False)
    _last_available: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.trace.spot_price is None:
            raise ValueError("the replay needs prices: load the trace with a prices file")
        if not (self.speed > 0 and self.interval_s > 0):
            raise ValueError("speed and interval_s must be positive")

    @property
    def regions(self) -> list[str]:
        return sorted({p.region for p in self.trace.pools})

    def now_s(self, tick: int) -> float:
        return self.trace.timestamp_s(tick) + self.lap * self.trace.n_ticks * self.trace.tick_s

    def resume_after(self, t_s: float) -> None:
        """Play on from the first tick after ``t_s`` (the same place in the trace, whole laps later):
        actors restored from checkpoints taken at ``t_s`` must never see their clock run backwards."""
        trace = self.trace
        if not math.isfinite(t_s) or t_s < self.now_s(self.next_tick):
            return
        lap, offset_s = divmod(t_s - trace.start_s, trace.n_ticks * trace.tick_s)
        tick = math.floor(offset_s / trace.tick_s) + 1
        self.lap, self.next_tick = (int(lap), tick) if tick < trace.n_ticks else (int(lap) + 1, 0)

    def ticks_per_batch(self) -> int:
        return max(1, math.floor(self.speed * self.interval_s / self.trace.tick_s))

    def take_batch(self) -> dict[str, list[Tick]] | None:
        """The next batch of ticks grouped by region; None when the trace is over (and not looping)."""
        trace = self.trace
        assert trace.spot_price is not None
        if self.next_tick >= trace.n_ticks:
            if not self.loop:
                return None
            self.next_tick, self.lap = 0, self.lap + 1
        end = min(trace.n_ticks, self.next_tick + self.ticks_per_batch())
        batch: dict[str, list[Tick]] = {region: [] for region in self.regions}
        for t in range(self.next_tick, end):
            now = self.now_s(t)
            price, available = trace.spot_price[t], trace.available[t]
            first = self._last_price is None or self._last_available is None
            price_changed = np.ones(trace.n_pools, bool) if first else price != self._last_price
            avail_changed = np.ones(trace.n_pools, bool) if first else available != self._last_available
            per_region: dict[str, Tick] = {r: (now, [], []) for r in self.regions}
            for p, pool in enumerate(trace.pools):
                if price_changed[p]:
                    per_region[pool.region][1].append(PricePoint(pool, float(price[p]), now))
                if avail_changed[p]:
                    per_region[pool.region][2].append(AvailabilityPoint(pool, bool(available[p]), now))
            for region, tick in per_region.items():
                batch[region].append(tick)
            self._last_price, self._last_available = price.copy(), available.copy()
        self.next_tick = end
        return batch

    async def step(self, spread_s: float = 0.0) -> bool:
        """Send one batch to every region; False when the trace is over.

        With ``spread_s`` the regions are sent at their own phases over that many seconds
        (:func:`actors.feeds.schedule.spread_offsets`) instead of all at once.
        """
        batch = self.take_batch()
        if batch is None:
            return False
        loop = asyncio.get_running_loop()
        start = loop.time()
        offsets = spread_offsets(batch, spread_s) if spread_s > 0 else dict.fromkeys(batch, 0.0)

        async def send_at(region: str, ticks: list[Tick]) -> Any:
            delay = start + offsets[region] - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            return await self.send(region, ticks)

        results = await asyncio.gather(*(send_at(region, ticks) for region, ticks in batch.items()),
                                       return_exceptions=True)
        for region, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                self.errors += 1
                log.error("replay batch for region=%s failed: %s", region, result)
        self.batches_sent += 1
        return True

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Play until the trace ends (when not looping) or ``stop`` is set: a batch every ``interval_s``
        (on a fixed schedule, so a slow batch does not stretch the clock), its regions phase-spread over
        the interval when ``spread`` is on."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        due = loop.time()
        while not stop.is_set():
            if not await self.step(self.interval_s if self.spread else 0.0):
                return
            due = max(due + self.interval_s, loop.time())
            try:
                await asyncio.wait_for(stop.wait(), timeout=max(0.0, due - loop.time()))
            except TimeoutError:
                pass


@dataclass(slots=True)
class ReplayAttachment:
    """The replay as a :class:`~actors.feeds.base.Feed` of one (account, region): attaching gives the
    actor the market's pools of the region, the account's replay fleet, the feed's current prices at once,
    then every batch (the shared :class:`ReplayFeed` sends them through ``targets``)."""

    key: FeedKey
    trace: MarketTrace
    targets: dict[str, dict[str, Any]]  # region -> account -> actor handle: whom ReplayFeed batches go to
    current_tick: Callable[[str], Tick | None]
    on_demand_price: Callable[[MarketTrace, int], float]
    fleet: list[Instance] = field(default_factory=list)
    fleet_at_s: float = 0.0
    _health: FeedHealth = field(default_factory=FeedHealth)

    async def start(self, actor: Any) -> None:
        region = self.key.region
        pools = [(p.key, self.on_demand_price(self.trace, i)) for i, p in enumerate(self.trace.pools)
                 if p.region == region]
        await actor.add_pools.remote(pools)
        if self.fleet:
            await actor.set_fleet.remote(self.fleet, self.fleet_at_s)
        tick = self.current_tick(region)
        if tick is not None:
            with contextlib.suppress(Exception):  # the next batch brings everything anyway
                await actor.ingest_many.remote([tick])
        self.targets.setdefault(region, {})[self.key.account] = actor

    async def stop(self) -> None:
        self.targets.get(self.key.region, {}).pop(self.key.account, None)

    def health(self) -> FeedHealth:
        return self._health
