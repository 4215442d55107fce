"""RegionActor: the live shell around one RegionEngine, for one (account, region).

A plain async class (``actors/remote.py`` applies ``ray.remote``), so its logic is tested without a
cluster. One call per batch of observations: validate and learn (the engine rejects a bad batch whole),
decide, carry the decisions out through the executor, publish them on the stream host, persist them in one
transaction. Failures after validation are caught per tick, logged with account and region, counted, and
the actor goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from actors.executor import ExecutionResult, Executor, Outcome, make_executor
from actors.store import Store, StreamEvent
from actors.store.codec import decision_to_json
from actors.stream import Entry, encode, stream_key
from actors.wire import WireError, pack, unpack_ticks
from engine.catalog import default_catalog
from engine.learning.price import PriceForecaster
from engine.learning.risk import RiskModel
from engine.policy import PolicyParams, make_policy
from engine.region import PoolState, RegionEngine
from engine.types import Action, AvailabilityPoint, Decision, Instance, Pool, PricePoint, Rule

log = logging.getLogger(__name__)

FLEET_SAVE_INTERVAL_S = 5.0  # the stored fleet snapshot is for restarts; REST reads the live actor
DEFAULT_PRICE_RETENTION_S = 7 * 86_400.0
PRUNE_EVERY_S = 3600.0  # of tick time: how often an actor deletes its price events past retention
DEFAULT_NOTICE_HOLD_S = 600.0
AWS_CREDENTIALS_MODES = frozenset({"aws_default", "aws_assume_role"})
GONE_STATES = frozenset({"shutting-down", "terminated", "stopping", "stopped"})


@dataclass(frozen=True, slots=True)
class RegionConfig:
    account: str
    region: str
    policy: str = "risk_aware"
    params: PolicyParams = field(default_factory=PolicyParams)
    database_url: str | None = None
    executor: str = "simulated"
    seed: int = 0
    price_retention_s: float = DEFAULT_PRICE_RETENTION_S  # stored price events older than this are deleted
    # A real cloud's account (plain references, never secrets): how the executor reaches it.
    credentials_mode: str = "replay"
    role_arn: str | None = None
    external_id: str | None = None
    managed_tag: str = "spot-optimizer:managed=true"
    notice_hold_s: float = DEFAULT_NOTICE_HOLD_S  # a pool a cloud warned about is no placement this long

    @property
    def on_aws(self) -> bool:
        return self.credentials_mode in AWS_CREDENTIALS_MODES


@functools.lru_cache(maxsize=256)
def _compatible_types(region: str, instance_type: str) -> tuple[str, ...]:
    catalog = default_catalog()
    if instance_type not in catalog:
        return (instance_type,)
    return tuple(catalog.compatible_types(instance_type, region))


class RegionActor:
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
            compatible_types=lambda t: _compatible_types(region, t),
        )
        self.store: Store | None = None
        self.seq = 0  # the decisions stream's last seq
        self.topic_seq: dict[str, int] = {}  # the last seq of the other topics (prices, instances, alerts)
        self.last_rule: dict[str, Rule] = {}
        self.stats = {"batches": 0, "rejected_batches": 0, "tick_errors": 0, "decisions": 0, "published": 0}
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

    async def _open_store(self) -> Store | None:
        if self.store is None and self.config.database_url:
            self.store = await Store.open(self.config.database_url, migrate=False)
            stored = await self.store.max_event_seqs(self.config.account, self.config.region)
            self.seq = stored.pop("decisions", 0)
            self.topic_seq = stored
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
        for key, on_demand in pools:
            self.engine.add_pool(Pool.from_key(key), on_demand)
        self._pool_by_key = {pool.key: pool for pool in self.engine.pools}
        return len(self.engine.pools)

    async def set_fleet(self, instances: Sequence[Instance], now_s: float) -> int:
        for instance in instances:
            self.engine.upsert_instance(instance, now_s)
        store = await self._open_store()
        if store is not None:
            await store.upsert_instances(self.config.account, self.config.region, self.engine.fleet(), now_s)
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
            changes = [d for d in decisions if d.action is not Action.KEEP]
            for result in await self.executor.execute(changes):
                if result.outcome is Outcome.APPLIED:
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
            batches = await self._record(news, self._tick_topics(prices, availability, interrupted, applied,
                                                                 failed, now_s))
        except Exception:
            self.stats["tick_errors"] += 1
            log.exception("recording the tick failed for account=%s region=%s", self.config.account,
                          self.config.region)
        sections["store"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        await self._send(batches)
        sections["hub"] = time.perf_counter() - t0
        self.published_at_pc = time.perf_counter()
        if applied:
            self._fleet_due_s = now_s
            if self._fleet_task is None or self._fleet_task.done():
                self._fleet_task = asyncio.create_task(self._save_fleet_later())
        if now_s - self._pruned_at_s >= PRUNE_EVERY_S and (self._prune_task is None or self._prune_task.done()):
            self._pruned_at_s = now_s
            self._prune_task = asyncio.create_task(self._prune(now_s - self.config.price_retention_s))
        self.last_tick_s = now_s
        self.last_tick_latency_s = time.perf_counter() - started
        published = len(batches.get(stream_key(self.config.account, self.config.region), ()))
        return {"interrupted": interrupted, "published": published,
                "last_seq": self.seq, "latency_s": self.last_tick_latency_s, "sections_s": sections,
                "started_at_pc": started, "published_at_pc": self.published_at_pc}

    async def ingest_many(
        self, ticks: Sequence[tuple[float, Sequence[PricePoint], Sequence[AvailabilityPoint]]]
    ) -> dict[str, Any]:
        """Several ticks in one call (the replay's batch), applied in order; validated whole first."""
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

    async def _record(self, decisions: list[Decision],
                      topics: dict[str, list[dict[str, Any]]]) -> dict[str, list[Entry]]:
        """Number the tick's decisions and its events per topic, save them in one transaction, and return
        them by stream key as stream entries (seq, JSON text) for the stream host.

        The sequences advance only once the tick is stored, so a failure leaves no gap, and nothing is
        streamed that a resuming client could not replay: a resume reads every topic from the store.
        Each event is encoded to JSON once, here, for both the store and the stream host.
        """
        account, region = self.config.account, self.config.region
        store = await self._open_store()  # first: opening it reads where each topic's numbering stands
        numbered = [(self.seq + k + 1, d) for k, d in enumerate(decisions)]
        batches: dict[str, list[Entry]] = {}
        if numbered:
            batches[stream_key(account, region)] = [
                (seq, encode(decision_to_json(account, region, seq, d))) for seq, d in numbered]
        next_seq = dict(self.topic_seq)
        stored: list[StreamEvent] = []
        for topic, payloads in topics.items():
            batch: list[Entry] = []
            for payload in payloads:
                next_seq[topic] = seq = next_seq.get(topic, 0) + 1
                text = encode({**payload, "seq": seq})
                batch.append((seq, text))
                stored.append(StreamEvent(topic, seq, float(payload["at_s"]), text))
            if batch:
                batches[stream_key(account, region, topic)] = batch
        if store is not None and (numbered or stored):
            await store.save_tick(account, region, numbered, stored)
        if numbered:
            self.seq = numbered[-1][0]
        self.topic_seq = next_seq
        self.stats["decisions"] += len(numbered)
        return batches

    async def _save_fleet_later(self) -> None:
        """Write the fleet snapshot off the tick, at most once per FLEET_SAVE_INTERVAL_S: a snapshot is
        idempotent (the newest wins), so moves in between are coalesced into one transaction instead of
        one per tick contending for the store with every other actor's decisions."""
        wait_s = self._fleet_saved_at + FLEET_SAVE_INTERVAL_S - time.monotonic()
        if wait_s > 0:
            await asyncio.sleep(wait_s)
        await self.flush()

    async def flush(self) -> None:
        """Write the pending fleet snapshot now (``close`` does; tests do before reading the store)."""
        now_s, self._fleet_due_s = self._fleet_due_s, None
        if now_s is None:
            return
        self._fleet_saved_at = time.monotonic()
        try:
            await self._persist_fleet(now_s)
        except asyncio.CancelledError:
            if self._fleet_due_s is None:  # cut off mid-write: ``close`` writes it again
                self._fleet_due_s = now_s
            raise

    async def _persist_fleet(self, now_s: float) -> None:
        """The fleet snapshot after a move (idempotent: the next one overwrites it, so a failure is logged,
        counted and healed by the next move or ``set_fleet``)."""
        store = self.store
        if store is None:
            return
        try:
            await store.upsert_instances(self.config.account, self.config.region, self.engine.fleet(), now_s)
        except Exception:
            self.stats["tick_errors"] += 1
            log.exception("saving the fleet failed for account=%s region=%s", self.config.account,
                          self.config.region)

    async def _prune(self, before_s: float) -> None:
        """Retention, off the tick: delete this actor's price events older than ``before_s`` (its own
        tick time, which for a replay is the recording's). Decisions, instances and alerts are kept."""
        store = self.store
        if store is None:
            return
        try:
            await store.prune_events(before_s, ("prices",), account=self.config.account, region=self.config.region)
        except Exception:
            log.exception("pruning price events failed for account=%s region=%s", self.config.account,
                          self.config.region)

    async def _send(self, batches: dict[str, list[Entry]]) -> None:
        """The tick's numbered events of every topic to the stream host in one call: each Ray round trip
        to the host costs a millisecond or more on a busy machine."""
        if self.hub is None or not batches:
            return
        try:
            remote = getattr(self.hub.publish_packed, "remote", None)
            if remote is not None:  # a Ray handle: one bytes value, see actors/wire.py
                await remote(pack(batches))
            else:
                await self.hub.publish_entries(batches)
        except Exception:
            self.stats["tick_errors"] += 1
            log.exception("publishing the tick failed for account=%s region=%s", self.config.account,
                          self.config.region)
            return
        self.stats["published"] += len(batches.get(stream_key(self.config.account, self.config.region), ()))

    def _tick_topics(self, prices: Sequence[PricePoint], availability: Sequence[AvailabilityPoint],
                     interrupted: Sequence[str], fleet_changed: bool, failed: bool,
                     now_s: float) -> dict[str, list[dict[str, Any]]]:
        """The events of one tick besides decisions (unnumbered), by topic: prices, instances, alerts."""
        topics: dict[str, list[dict[str, Any]]] = {}
        if prices or availability:
            topics["prices"] = [{
                "at_s": now_s,
                "prices": [{"pool": p.pool.key, "price_usd_per_hour": p.price_usd_per_hour} for p in prices],
                "availability": [{"pool": a.pool.key, "available": a.available} for a in availability],
            }]
        if fleet_changed or interrupted:
            topics["instances"] = [{"at_s": now_s, "instances": [instance_json(i) for i in self.engine.fleet()]}]
        alerts = []
        if interrupted:
            alerts.append({"at_s": now_s, "kind": "interruption", "instance_ids": list(interrupted),
                           "detail": f"{len(interrupted)} spot instance(s) interrupted"})
        if failed:
            alerts.append({"at_s": now_s, "kind": "tick_error", "instance_ids": [],
                           "detail": "a tick failed after validation; see the actor's log"})
        if self._pending_alerts:
            alerts += [{"at_s": now_s, **alert} for alert in self._pending_alerts]
            self._pending_alerts = []
        if alerts:
            topics["alerts"] = alerts
        return topics

    def _learn_from_execution(self, result: ExecutionResult, now_s: float) -> None:
        """A cloud's refusals are risk labels (the pool is noticed unavailable); every step is an alert."""
        for key in result.capacity_errors:
            pool = self._pool_by_key.get(key)
            if pool is not None:
                self.engine.notice_unavailable(pool, now_s, self.config.notice_hold_s)
        self._pending_alerts += [dict(step) for step in result.steps]
        if result.outcome is Outcome.FAILED and not result.steps:
            self._pending_alerts.append({"kind": "execution", "step": "failed",
                                         "instance_ids": [result.decision.instance_id], "detail": result.detail})

    # -- a cloud's view: discovery and notices ---------------------------------------------------------
    async def sync_fleet(self, instances: Sequence[Instance], specs: Sequence[Any], now_s: float) -> dict[str, Any]:
        """Make the fleet what the cloud reports (``specs``: how each was launched, by instance id). New
        instances join, gone ones leave; an ``instances`` event is stored and streamed when it changed."""
        joined, left = self.engine.sync_fleet(instances, now_s)
        self.launch_specs.clear()
        self.launch_specs.update({spec.instance_id: spec for spec in specs})
        if joined or left:
            detail = f"{len(joined)} instance(s) joined, {len(left)} left"
            await self._publish_events(now_s, [{"kind": "fleet_changed", "instance_ids": joined + left,
                                                "joined": joined, "left": left, "detail": detail}])
            await self._persist_fleet(now_s)
        return {"joined": joined, "left": left, "instances": len(self.engine.instances)}

    async def notice(self, kind: str, instance_id: str, now_s: float, state: str | None = None) -> dict[str, Any]:
        """A cloud's notice about one instance (an interruption warning, a rebalance recommendation, a
        state change), decided on at once: the returned summary means its decision (and execution) is
        stored, so the caller may now acknowledge the message. Unknown instances are ignored."""
        tracked = self.engine.instances.get(instance_id)
        if tracked is None:
            return {"known": False, "decisions": []}
        pool = tracked.instance.pool
        alert = {"kind": kind, "instance_ids": [instance_id], "pool": pool.key}
        if kind == "state_change":
            if state not in GONE_STATES:
                return {"known": True, "decisions": []}
            self.engine.remove_instance(instance_id)
            self.launch_specs.pop(instance_id, None)
            await self._publish_events(now_s, [{**alert, "state": state,
                                                "detail": f"{instance_id} is {state}: it left the fleet"}])
            await self._persist_fleet(now_s)
            return {"known": True, "decisions": []}
        if kind == "spot_interruption":
            self.engine.report_interruption([instance_id], now_s, self.config.notice_hold_s)
            alert["detail"] = f"spot interruption warning for {instance_id} in {pool.key}"
        else:
            self.engine.notice_unavailable(pool, now_s, self.config.notice_hold_s)
            alert["detail"] = f"rebalance recommendation for {instance_id} in {pool.key}"
        self._pending_alerts.append(alert)
        before = self.seq
        summary = await self.ingest([], [], now_s)
        summary["known"] = True
        summary["decisions"] = list(range(before + 1, self.seq + 1))
        return summary

    async def _publish_events(self, now_s: float, alerts: list[dict[str, Any]]) -> None:
        """Store and stream an ``instances`` event with the fleet and the given alerts, outside a tick."""
        topics = {"instances": [{"at_s": now_s, "instances": [instance_json(i) for i in self.engine.fleet()]}],
                  "alerts": [{"at_s": now_s, **a} for a in alerts]}
        try:
            await self._send(await self._record([], topics))
        except Exception:
            self.stats["tick_errors"] += 1
            log.exception("recording a fleet change failed for account=%s region=%s", self.config.account,
                          self.config.region)

    # -- reads -----------------------------------------------------------------------------------------
    def _priced_pools_with_risk(self) -> tuple[list[PoolState], list[str], list[float], bool]:
        """The pools with a known price, their keys, the model's risk for each (NaN before any
        observation), and whether the engine has observed anything yet."""
        now = self.engine.last_observed_s
        states = [s for s in self.engine.pool_states() if math.isfinite(s.price_usd_per_hour)]
        keys = [s.pool.key for s in states]
        known = bool(keys) and math.isfinite(now)
        model = self.engine.risk_model
        risk = [float(r) for r in model.predict(now, keys)] if known and model else [math.nan] * len(keys)
        return states, keys, risk, known

    async def latest_prices(self) -> list[dict[str, Any]]:
        """The latest price and availability of every pool, with the model's risk."""
        states, _, risk, _ = self._priced_pools_with_risk()
        return [{
            "pool": state.pool.key,
            "instance_type": state.pool.instance_type,
            "availability_zone": state.pool.availability_zone,
            "price_usd_per_hour": state.price_usd_per_hour,
            "on_demand_usd_per_hour": state.on_demand_usd_per_hour,
            "observed_at_s": state.price_at_s,
            "available": state.available,
            "risk": _finite_or_none(r),
            "capacity_score": state.capacity_score,
        } for state, r in zip(states, risk, strict=True)]

    async def forecasts(self, horizons_s: Sequence[float]) -> dict[str, Any]:
        """Per pool: the latest price, the risk of losing spot within the risk horizon, price forecasts."""
        now = self.engine.last_observed_s
        states, keys, risk, known = self._priced_pools_with_risk()
        price_model = self.engine.price_model
        by_horizon = {h: (price_model.predict(now, keys, h) if known and price_model else [math.nan] * len(keys))
                      for h in horizons_s}
        pools = [{
            "pool": state.pool.key,
            "price_usd_per_hour": state.price_usd_per_hour,
            "available": state.available,
            "risk": _finite_or_none(risk[k]),
            "forecast_usd_per_hour": {f"{h:g}": _finite_or_none(by_horizon[h][k]) for h in horizons_s},
        } for k, state in enumerate(states)]
        return {"now_s": now if math.isfinite(now) else None,
                "risk_horizon_s": self.config.params.risk_horizon_s, "pools": pools}

    async def model_metrics(self) -> dict[str, Any]:
        """How the online models are doing: progressive-validation errors and learning counters."""
        price_model, risk_model = self.engine.price_model, self.engine.risk_model
        price = price_model.metrics() if price_model is not None and hasattr(price_model, "metrics") else {}
        risk: dict[str, Any] = {}
        if risk_model is not None:
            risk = {"horizon_s": getattr(risk_model, "horizon_s", None),
                    "labels_learned": getattr(risk_model, "labels_learned", None),
                    "threshold": getattr(risk_model, "threshold", None),
                    "drift_events": len(getattr(risk_model, "drift_events", []))}
        return {"price": price, "risk": risk}

    async def instances(self) -> list[Instance]:
        return self.engine.fleet()

    async def status(self) -> dict[str, Any]:
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
            **self.stats,
        }

    async def checkpoint(self) -> bytes:
        return self.engine.snapshot()

    async def close(self) -> None:
        for task in (self._fleet_task, self._prune_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._fleet_task = self._prune_task = None
        await self.flush()
        if self.store is not None:
            await self.store.close()
            self.store = None


def _finite_or_none(value: Any) -> float | None:
    """JSON has no NaN or infinity: an unknown number is null."""
    number = float(value)
    return number if math.isfinite(number) else None


def instance_json(instance: Instance) -> dict[str, Any]:
    """The JSON of an instance, as REST and the ``instances`` topic show it."""
    return {"instance_id": instance.instance_id, "pool": instance.pool.key, "lifecycle": instance.lifecycle.value,
            "fleet": instance.fleet, "launched_at_s": instance.launched_at_s, "interrupted": instance.interrupted}
