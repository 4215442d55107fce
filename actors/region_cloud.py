"""A region actor's view of a real cloud: the fleet as discovery reports it, notices about single instances
(interruption warnings, rebalance recommendations, state changes) decided on at once, and what the
executor learned on the way (capacity refusals as risk labels, every step as an ``alerts`` event).

A mixin of :class:`actors.region.RegionActor`: it uses the actor's engine, tick, store and stream host.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from actors.executor import ExecutionResult, Outcome
from actors.region_config import RegionConfig
from actors.views import alert, alert_event, execution_failed_alert, instances_event
from engine.region import RegionEngine
from engine.types import Instance, Lifecycle

log = logging.getLogger("actors.region")

GONE_STATES = frozenset({"shutting-down", "terminated", "stopping", "stopped"})


class CloudView:
    """Discovery and notices for a region actor (see the module docstring)."""

    config: RegionConfig
    engine: RegionEngine
    stats: dict[str, Any]
    launch_specs: dict[str, Any]
    _pending_alerts: list[dict[str, Any]]

    def _learn_from_execution(self, result: ExecutionResult, now_s: float) -> None:
        """A cloud's refusals are risk labels (the pool is noticed unavailable); every step is an alert."""
        for key in result.capacity_errors:
            pool = self._pool_by_key.get(key)
            if pool is not None:
                self.engine.notice_unavailable(pool, now_s, self.config.notice_hold_s)
        self._pending_alerts += [dict(step) for step in result.steps]
        if result.outcome is Outcome.FAILED and not result.steps:
            self._pending_alerts.append(execution_failed_alert(result.decision.instance_id, result.detail))

    # -- a cloud's view: discovery and notices ---------------------------------------------------------
    async def sync_fleet(self, instances: Sequence[Instance], specs: Sequence[Any], now_s: float) -> dict[str, Any]:
        """Make the fleet what the cloud reports (``specs``: how each was launched, by instance id). New
        instances join, gone ones leave; an ``instances`` event is stored and streamed when it changed."""
        await self._open_store()
        joined, left = self.engine.sync_fleet(instances, now_s)
        # A hibernated instance is not discovered (stopped, or a spot one let go): its spec stays for the wake.
        stopped = {i.instance_id for i in self.engine.fleet() if i.lifecycle is Lifecycle.STOPPED}
        asleep = {iid: spec for iid, spec in self.launch_specs.items() if iid in stopped}
        self.launch_specs.clear()
        self.launch_specs.update({spec.instance_id: spec for spec in specs})
        self.launch_specs.update({iid: spec for iid, spec in asleep.items() if iid not in self.launch_specs})
        self.engine.hibernation.set_tags({spec.instance_id: dict(spec.tags) for spec in specs})  # for selectors
        self.engine.hibernation.set_exempt([spec.instance_id for spec in specs],
                                           [spec.instance_id for spec in specs if spec.auto_scaling_group])
        if joined or left:
            detail = f"{len(joined)} instance(s) joined, {len(left)} left"
            await self._publish_events(now_s, [alert("fleet_changed", joined + left, detail, joined=joined,
                                                     left=left)])
            await self._persist_fleet(now_s)
        return {"joined": joined, "left": left, "instances": len(self.engine.instances)}

    async def notice(self, kind: str, instance_id: str, now_s: float, state: str | None = None) -> dict[str, Any]:
        """A cloud's notice about one instance (an interruption warning, a rebalance recommendation, a
        state change), decided on at once: the returned summary means its decision (and execution) is
        stored, so the caller may now acknowledge the message. Unknown instances are ignored."""
        await self._open_store()
        tracked = self.engine.instances.get(instance_id)
        if tracked is None:
            return {"known": False, "decisions": []}
        pool = tracked.instance.pool
        if kind == "state_change":
            if state not in GONE_STATES or tracked.instance.lifecycle is Lifecycle.STOPPED:  # gone as hibernated
                return {"known": True, "decisions": []}
            self.engine.remove_instance(instance_id)
            self.launch_specs.pop(instance_id, None)
            gone = f"{instance_id} is {state}: it left the fleet"
            await self._publish_events(now_s, [alert(kind, [instance_id], gone, pool=pool.key, state=state)])
            await self._persist_fleet(now_s)
            return {"known": True, "decisions": []}
        if kind == "spot_interruption":
            self.engine.report_interruption([instance_id], now_s, self.config.notice_hold_s)
            detail = f"spot interruption warning for {instance_id} in {pool.key}"
        else:
            self.engine.notice_unavailable(pool, now_s, self.config.notice_hold_s)
            detail = f"rebalance recommendation for {instance_id} in {pool.key}"
        self._pending_alerts.append(alert(kind, [instance_id], detail, pool=pool.key))
        before = self.seq
        summary = await self.ingest([], [], now_s)
        summary["known"] = True
        summary["decisions"] = list(range(before + 1, self.seq + 1))
        return summary

    async def _publish_events(self, now_s: float, alerts: list[dict[str, Any]]) -> None:
        """Store and stream an ``instances`` event with the fleet and the given alerts, outside a tick."""
        topics = {"instances": [instances_event(self.engine.fleet(), now_s)],
                  "alerts": [alert_event(now_s, a) for a in alerts]}
        try:
            await self._send(await self._record([], topics))
        except Exception:
            self.stats["tick_errors"] += 1
            log.exception("recording a fleet change failed for account=%s region=%s", self.config.account,
                          self.config.region)
