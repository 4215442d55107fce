"""RegionActor: the live shell around one RegionEngine, for one (account, region).

A plain async class (``actors/remote.py`` applies ``ray.remote``), so its logic is tested without a
cluster. One call per batch of observations: validate and learn (the engine rejects a bad batch whole),
decide, carry the decisions out through the executor, publish them on the stream host, persist them in one
transaction. Failures after validation are caught per tick, logged with account and region, counted, and
the actor goes on. Its first call restores it from its newest checkpoint, which it takes off the tick every
``checkpoint_interval_s`` and on close (``actors/region_checkpoints.py``); ``reconfigure`` keeps what it
learned. What a tick leaves behind (numbering, store, stream host, fleet snapshot, retention) is
``actors/region_recording.py``; a real cloud's discovery and notices are ``actors/region_cloud.py``; its
hibernation schedules are ``actors/region_schedules.py``; the
JSON of its events and REST views is ``actors/views.py``; its configuration is ``actors/region_config.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import math
import time
from collections.abc import Sequence
from typing import Any

from actors.executor import Executor, Outcome, make_executor
from actors.region_checkpoints import Checkpointing
from actors.region_cloud import CloudView
from actors.region_config import (
    RegionConfig,
    compatible_types,
)
from actors.region_recording import Recording
from actors.region_schedules import Scheduling
from actors.store import Store
from actors.stream import Entry, stream_key
from actors.unsaved import UnsavedTicks
from actors.views import forecasts_json, model_metrics_json, prices_json, tick_events
from actors.wire import WireError, unpack_ticks
from engine.learning.price import PriceForecaster
from engine.learning.risk import RiskModel
from engine.policy import make_policy
from engine.region import BatchRejected, RegionEngine
from engine.types import Action, AvailabilityPoint, Decision, Instance, Pool, PricePoint, Rule

log = logging.getLogger(__name__)


class RegionActor(Checkpointing, CloudView, Recording, Scheduling):
    """Live prices, instance state and models of one (account, region)."""

    def __init__(self, config: RegionConfig, hub: Any = None, executor: Executor | None = None) -> None:
        self.config = config
        self.hub = hub  # a StreamHost, or a Ray handle to one; None: publish nowhere
        self.launch_specs: dict[str, Any] = {}  # instance id -> how the cloud launched it (AWS discovery)
        self._aws_sessions: Any = None  # actors.aws.session.AwsSessions, made on first use
        self._pending_alerts: list[dict[str, Any]] = []  # notices and execution steps for the next record
        self.executor = executor or self.make_executor(config)
        region = config.region
        self.engine = RegionEngine(
            region,
            policy=make_policy(config.policy, config.params),
            risk_model=RiskModel(horizon_s=config.params.risk_horizon_s, seed=config.seed),
            price_model=PriceForecaster(),
            compatible_types=lambda t: compatible_types(region, t),
        )
        self.store: Store | None = None
        self.seq = 0  # the decisions stream's last seq
        self.topic_seq: dict[str, int] = {}  # the last seq of the other topics (prices, instances, alerts)
        self.last_rule: dict[str, Rule] = {}
        self.stats = {"batches": 0, "rejected_batches": 0, "tick_errors": 0, "decisions": 0, "published": 0,
                      "store_failures": 0, "dropped_events": 0, "stale_ticks": 0}
        self.unsaved = UnsavedTicks(config.unsaved_limit_events)  # ticks waiting for an unreachable store
        self.store_overflow = False  # the unsaved queue dropped events and has not been written out since
        self._unsaved_task: asyncio.Task[None] | None = None
        self._record_lock = asyncio.Lock()
        self._executing: set[str] = set()  # instances whose decision the executor is carrying out now
        self.last_tick_s = math.nan
        self.last_tick_latency_s = math.nan
        self._fleet_due_s: float | None = None  # the tick time of a fleet snapshot not yet saved
        self._fleet_saved_at = -math.inf  # time.monotonic() of the last snapshot write
        self._fleet_task: asyncio.Task[None] | None = None
        self._pruned_at_s = -math.inf  # tick time of the last retention pass
        self._prune_task: asyncio.Task[None] | None = None
        self.published_at_pc = math.nan  # perf_counter (CLOCK_MONOTONIC: comparable across processes)
        self.sections_s: dict[str, float] = {}  # where the last tick's time went (the latency bench reads it)
        self._pool_by_key: dict[str, Pool] = {}  # the engine's own Pool objects, for unpacking batches
        self._opened = False  # the store is open and the newest checkpoint restored (on the first call)
        self._opening = asyncio.Lock()
        self._checkpoint_task: asyncio.Task[None] | None = None
        self._checkpoint_lock = asyncio.Lock()  # one save at a time: ``close`` waits for one in flight
        self._ticked = asyncio.Event()  # set as a tick ends: a due checkpoint is taken in the gap after it
        self._fleet_at_s = -math.inf  # tick time of the newest fleet change this actor holds
        self._checkpointed_sha: str | None = None  # of the last payload saved: an unchanged actor saves none
        self._pending_fleet: list[Instance] = []  # restored from the store, waiting for their pools
        self.stats.update(checkpoints_saved=0, checkpoints_skipped=0, checkpoint_errors=0)

    async def _open_store(self) -> Store | None:
        """The store, opened by the first call, which also restores the actor (see :meth:`_start`): every
        entry point comes through here before it touches the engine."""
        if not self._opened:
            async with self._opening:
                if not self._opened:
                    await self._start()
        return self.store

    async def ready(self) -> bool:
        await self._open_store()
        return True

    def make_executor(self, config: RegionConfig) -> Executor:
        """The executor for ``config.executor``; for an AWS account ``dry_run`` and ``execute`` go through
        AWS (imported only here: a replay actor never loads the SDK)."""
        if not config.on_aws:
            return make_executor(config.executor)
        from actors.aws.executor import AwsExecutor
        from actors.aws.gateway import AwsGateway
        from actors.aws.session import AwsAccess, AwsSessions
        from actors.aws.translate import tag_filter

        if self._aws_sessions is None:
            self._aws_sessions = AwsSessions()
        access = AwsAccess(config.credentials_mode, config.role_arn, config.external_id)
        gateway = AwsGateway(self._aws_sessions, access, config.region)
        managed = tag_filter(config.managed_tag)
        return make_executor(config.executor, lambda mode: AwsExecutor(
            mode, gateway, self.launch_specs, managed, on_launched=self.launch_specs.__setitem__))

    # -- setup -----------------------------------------------------------------------------------------
    async def add_pools(self, pools: Sequence[tuple[str, float]]) -> int:
        """Register pools as (``type@zone``, on-demand USD/hour); returns how many the engine knows."""
        await self._open_store()
        for key, on_demand in pools:
            self.engine.add_pool(Pool.from_key(key), on_demand)
        self._pool_by_key = {pool.key: pool for pool in self.engine.pools}
        if self._pending_fleet:
            self._adopt_pending_fleet()
        return len(self.engine.pools)

    async def set_fleet(self, instances: Sequence[Instance], now_s: float) -> int:
        store = await self._open_store()
        for instance in instances:
            self.engine.upsert_instance(instance, now_s)
        self._fleet_at_s = max(self._fleet_at_s, now_s)
        if store is not None:
            await store.save_fleet(self.config.account, self.config.region, self.engine.fleet(), now_s)
        return len(self.engine.instances)

    # -- the tick --------------------------------------------------------------------------------------
    async def ingest(self, prices: Sequence[PricePoint], availability: Sequence[AvailabilityPoint],
                     now_s: float) -> dict[str, Any]:
        """One batch of observations -> decisions. A bad batch raises BatchRejected and changes nothing.

        The hot path is: learn, decide, execute, then record the tick (its newsworthy decisions and its
        prices, instances and alerts events, numbered per topic and saved in one transaction), then one
        call to the stream host with all of it. The fleet snapshot is written after that call: it is for
        restarts, so it need not delay the decisions reaching the dashboards.
        """
        await self._open_store()
        started = time.perf_counter()
        self.sections_s = sections = {}
        try:
            interrupted = self.engine.observe(prices, availability, now_s)
        except ValueError:
            self.stats["rejected_batches"] += 1
            raise
        sections["observe"] = time.perf_counter() - started
        self.stats["batches"] += 1
        news: list[Decision] = []
        applied = False
        failed = False
        try:
            t0 = time.perf_counter()
            decisions = self.engine.decide(now_s)
            sections["decide"] = time.perf_counter() - t0
            # An instance whose replacement is still being carried out (a launch waits until the new instance
            # runs, minutes on a real cloud, while other ticks go on) is not carried out twice.
            changes = [d for d in decisions if d.action is not Action.KEEP and d.instance_id not in self._executing]
            self._executing.update(d.instance_id for d in changes)
            try:
                results = await self.executor.execute(changes)
            finally:
                self._executing.difference_update(d.instance_id for d in changes)
            for result in results:
                if result.outcome is Outcome.APPLIED and result.decision.instance_id in self.engine.instances:
                    self.engine.apply(result.decision, now_s)
                    if result.instance_id and result.instance_id != result.decision.instance_id:
                        self.engine.rename_instance(result.decision.instance_id, result.instance_id)
                        self.launch_specs.pop(result.decision.instance_id, None)
                    applied = True
                self._learn_from_execution(result, now_s)
            news = self._newsworthy(decisions)
        except Exception:
            failed = True
            self.stats["tick_errors"] += 1
            log.exception("tick failed for account=%s region=%s", self.config.account, self.config.region)
        t0 = time.perf_counter()
        batches: dict[str, list[Entry]] = {}
        try:
            pending, self._pending_alerts = self._pending_alerts, []
            fleet = self.engine.fleet() if applied or interrupted else None
            batches = await self._record(news, tick_events(prices, availability, interrupted, fleet, failed,
                                                           pending, now_s))
        except Exception:
            self.stats["tick_errors"] += 1
            log.exception("recording the tick failed for account=%s region=%s", self.config.account,
                          self.config.region)
        sections["store"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        await self._send(batches)
        sections["hub"] = time.perf_counter() - t0
        self.published_at_pc = time.perf_counter()
        self._ticked.set()
        self._schedule_saves(applied, now_s)
        self.last_tick_s = now_s
        self.last_tick_latency_s = time.perf_counter() - started
        published = len(batches.get(stream_key(self.config.account, self.config.region), ()))
        return {"interrupted": interrupted, "published": published,
                "last_seq": self.seq, "latency_s": self.last_tick_latency_s, "sections_s": sections,
                "started_at_pc": started, "published_at_pc": self.published_at_pc}

    async def ingest_many(
        self, ticks: Sequence[tuple[float, Sequence[PricePoint], Sequence[AvailabilityPoint]]]
    ) -> dict[str, Any]:
        """Several ticks in one call (the replay's batch), applied in order; validated whole first. Ticks
        older than what the actor has already seen (a batch that was on its way when the actor joined the
        feed with a newer state) are skipped and counted, not refused."""
        await self._open_store()  # first: a restore moves the actor's clock
        seen_s = self.engine.last_observed_s
        fresh = [tick for tick in ticks if not tick[0] < seen_s]
        self.stats["stale_ticks"] += len(ticks) - len(fresh)
        ticks = fresh
        if any(later[0] < earlier[0] for earlier, later in itertools.pairwise(ticks)):
            self.stats["rejected_batches"] += 1
            raise BatchRejected("ticks must be in time order: " + ", ".join(str(t[0]) for t in ticks[:10]))
        for now_s, prices, availability in ticks:
            try:
                self.engine.validate(prices, availability, now_s)
            except ValueError:
                self.stats["rejected_batches"] += 1
                raise
        summary: dict[str, Any] = {"interrupted": [], "published": 0}
        result: dict[str, Any] = {}
        for now_s, prices, availability in ticks:
            result = await self.ingest(prices, availability, now_s)
            summary["interrupted"] += result["interrupted"]
            summary["published"] += result["published"]
        summary["last_seq"] = self.seq
        for name in ("latency_s", "sections_s", "started_at_pc", "published_at_pc"):  # of the last tick
            if name in result:
                summary[name] = result[name]
        return summary

    async def ingest_packed(self, blob: bytes) -> dict[str, Any]:
        """:meth:`ingest_many` for ticks packed by :func:`actors.wire.pack_ticks`: the feeds' hot path,
        one bytes value instead of hundreds of objects for Ray to serialise. ``started_at_pc`` is taken
        before unpacking, so the bench's "queued" time is the transport alone."""
        started = time.perf_counter()
        await self._open_store()  # first: a restored engine brings the pools the batch names
        try:
            ticks = unpack_ticks(blob, self._pool_by_key)
        except WireError:
            self.stats["rejected_batches"] += 1
            raise
        summary = await self.ingest_many(ticks)
        summary["started_at_pc"] = started
        return summary

    def _newsworthy(self, decisions: list[Decision]) -> list[Decision]:
        """Every move, and a keep whose reason changed (so a dashboard sees 'waiting' or 'budget')."""
        news = []
        for d in decisions:
            if d.action is not Action.KEEP or self.last_rule.get(d.instance_id) is not d.rule:
                news.append(d)
            self.last_rule[d.instance_id] = d.rule
        return news

    async def latest_prices(self) -> list[dict[str, Any]]:
        """The latest price and availability of every pool, with the model's risk."""
        await self._open_store()
        return prices_json(self.engine)

    async def forecasts(self, horizons_s: Sequence[float]) -> dict[str, Any]:
        """Per pool: the latest price, the risk of losing spot within the risk horizon, price forecasts."""
        await self._open_store()
        return forecasts_json(self.engine, horizons_s, self.config.params.risk_horizon_s)

    async def model_metrics(self) -> dict[str, Any]:
        """How the online models are doing: progressive-validation errors and learning counters."""
        await self._open_store()
        return model_metrics_json(self.engine)

    async def instances(self) -> list[Instance]:
        await self._open_store()
        return self.engine.fleet()

    async def status(self) -> dict[str, Any]:
        await self._open_store()
        return {
            "account": self.config.account,
            "region": self.config.region,
            "policy": self.config.policy,
            "executor": self.executor.mode,
            "pools": len(self.engine.pools),
            "instances": len(self.engine.instances),
            "last_seq": self.seq,
            "last_tick_s": self.last_tick_s,
            "last_tick_latency_s": self.last_tick_latency_s,
            "unsaved_events": self.unsaved.events,
            "store_overflow": self.store_overflow,
            **self.stats,
        }

    async def checkpoint(self) -> bytes:
        return self.engine.snapshot()

    async def close(self) -> None:
        for task in (self._fleet_task, self._prune_task, self._checkpoint_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._fleet_task = self._prune_task = self._checkpoint_task = None
        await self._write_unsaved_on_close()
        await self.flush()
        if self._opened and self.store is not None:  # never before a restore: it would shadow a good one
            await self._checkpoint_quietly()
        if self.store is not None:
            await self.store.close()
            self.store = None

    # -- configuration ---------------------------------------------------------------------------------
    async def reconfigure(self, config: RegionConfig) -> dict[str, Any]:
        """A new configuration in place (an account's PATCH): policy, its parameters and the executor
        change; the learned models (with the horizon they learned), pools, fleet and streams stay. It is
        checkpointed at once, so that a restart keeps it too."""
        if (config.account, config.region) != (self.config.account, self.config.region):
            raise ValueError(f"actor of {self.config.account}/{self.config.region} cannot take the "
                             f"configuration of {config.account}/{config.region}")
        await self._open_store()
        self._apply_config(config)
        await self._checkpoint_quietly()
        return await self.status()

    def _apply_config(self, config: RegionConfig) -> None:
        previous = self.config
        self.config = dataclasses.replace(config, database_url=previous.database_url)  # the store stays open
        self.engine.policy = make_policy(config.policy, config.params)
        executor_fields = ("executor", "credentials_mode", "role_arn", "external_id", "managed_tag")
        if any(getattr(config, name) != getattr(previous, name) for name in executor_fields):
            self.executor = self.make_executor(self.config)
