"""Prometheus exposition, built at scrape time from the runtime's own counters.

Counters live where the work happens (region actors, the feed, the fan-out); a scrape asks the actors
for their status in parallel and renders one fresh registry, so nothing here is global or registered
twice when several apps share a process (tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from api.runtime import Runtime

STATUS_TIMEOUT_S = 2.0


class _Snapshot(Collector):
    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> Any:
        return iter(self.families)


async def actor_statuses(runtime: Runtime) -> list[dict[str, Any]]:
    async def one(handle: Any) -> dict[str, Any] | None:
        with contextlib.suppress(Exception):
            return dict(await asyncio.wait_for(handle.status.remote(), STATUS_TIMEOUT_S))
        return None

    handles = [runtime.supervisor.get(a, r) for a, r in runtime.supervisor.list()]
    return [s for s in await asyncio.gather(*(one(h) for h in handles)) if s is not None]


async def render(runtime: Runtime) -> bytes:
    statuses = await actor_statuses(runtime)
    labels = ["account", "region"]
    decisions = CounterMetricFamily("spot_decisions", "decisions published by region actors", labels=labels)
    batches = CounterMetricFamily("spot_batches", "price batches accepted by region actors", labels=labels)
    rejected = CounterMetricFamily("spot_rejected_batches", "price batches refused whole", labels=labels)
    tick_errors = CounterMetricFamily("spot_tick_errors", "ticks that failed after validation", labels=labels)
    latency = GaugeMetricFamily("spot_tick_latency_seconds", "duration of the last tick in the actor",
                                labels=labels)
    unsaved = GaugeMetricFamily("spot_store_unsaved_events", "events decided and streamed, waiting for the store",
                                labels=labels)
    dropped = CounterMetricFamily("spot_store_dropped_events",
                                  "events the unsaved buffer dropped (overflow): in no store", labels=labels)
    for s in statuses:
        key = [str(s["account"]), str(s["region"])]
        decisions.add_metric(key, s.get("decisions", 0))
        batches.add_metric(key, s.get("batches", 0))
        rejected.add_metric(key, s.get("rejected_batches", 0))
        tick_errors.add_metric(key, s.get("tick_errors", 0))
        unsaved.add_metric(key, s.get("unsaved_events", 0))
        dropped.add_metric(key, s.get("dropped_events", 0))
        value = s.get("last_tick_latency_s")
        if isinstance(value, float) and math.isfinite(value):
            latency.add_metric(key, value)
    feed = runtime.feed
    feed_errors = CounterMetricFamily("spot_feed_errors", "replay batches that failed", labels=["feed"])
    feed_batches = CounterMetricFamily("spot_feed_batches", "replay batches sent", labels=["feed"])
    if feed is not None:
        feed_errors.add_metric(["replay"], feed.errors)
        feed_batches.add_metric(["replay"], feed.batches_sent)
    fanout = runtime.fanout
    depths = fanout.queue_depths()
    families: list[Any] = [
        decisions, batches, rejected, tick_errors, latency, unsaved, dropped, feed_errors, feed_batches,
        GaugeMetricFamily("spot_ws_clients", "connected WebSocket clients", value=len(fanout.clients)),
        GaugeMetricFamily("spot_ws_listeners", "stream listeners (one per subscribed stream)",
                          value=len(fanout.listeners)),
        GaugeMetricFamily("spot_ws_queue_depth_max", "deepest client outbox (events)", value=max(depths, default=0)),
        GaugeMetricFamily("spot_ws_queue_depth_total", "events waiting in all client outboxes", value=sum(depths)),
        CounterMetricFamily("spot_ws_events_dispatched", "events read from the stream host", value=fanout.dispatched),
        CounterMetricFamily("spot_ws_events_delivered", "event copies handed to client outboxes",
                            value=fanout.delivered),
        CounterMetricFamily("spot_ws_resyncs", "clients dropped with a resync (too slow)", value=fanout.resyncs),
        CounterMetricFamily("spot_ws_listener_errors", "failed long-polls on the stream host", value=fanout.errors),
        GaugeMetricFamily("spot_simulations_running", "bulk simulations in progress",
                          value=len(runtime.simulations.tasks)),
    ]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(families))
    return generate_latest(registry)
