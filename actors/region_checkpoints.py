"""A region actor's checkpoints: restored on its first call, taken off the tick every
``checkpoint_interval_s`` and on close (the format is ``actors/checkpoint.py``).

A mixin of :class:`actors.region.RegionActor`: it reads and sets the actor's engine, stream positions,
store and stats, and its own tasks and flags.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import random
import time
from typing import Any

from actors.checkpoint import CHECKPOINT_VERSION, ActorState, checked_state, encode_state
from actors.region_config import RegionConfig, compatible_types
from actors.store import CheckpointRecord, Store
from actors.store.checkpoints import sha256_hex
from actors.views import alert, alert_event
from engine.policy import PolicyParams, make_policy
from engine.region import RegionEngine
from engine.types import Rule

log = logging.getLogger("actors.region")

CHECKPOINT_TICK_WAIT_S = 5.0  # a due checkpoint waits this long at most for a tick to end, then goes anyway


class Checkpointing:
    """Restore and checkpoint a region actor (see the module docstring)."""

    config: RegionConfig
    store: Store | None
    engine: RegionEngine
    stats: dict[str, Any]
    hub: Any

    # -- checkpoints: restore on the first call, save every checkpoint_interval_s and on close -----------
    def stream_host(self) -> Any:
        """Where ticks are published (``actors/remote.py`` finds its host by name instead)."""
        return self.hub

    async def _start(self) -> None:
        """Open the store, continue every topic's numbering from it, restore the newest checkpoint that
        loads (and the stored fleet if newer), then checkpoint every ``checkpoint_interval_s``."""
        account, region = self.config.account, self.config.region
        if self.store is None and self.config.database_url:
            self.store = await Store.open(self.config.database_url, migrate=False)
        store = self.store
        skipped: list[tuple[CheckpointRecord, str]] = []
        if store is not None:
            stored = await store.max_event_seqs(account, region)
            self.seq = stored.pop("decisions", 0)
            self.topic_seq = stored
            skipped = await self._restore(store)
            await self._load_schedules(store)
        self._opened = True
        if store is not None and self.config.checkpoint_interval_s > 0:
            self._checkpoint_task = asyncio.create_task(self._checkpoint_loop())
        if skipped:
            await self._report_skipped(skipped)

    async def _restore(self, store: Store) -> list[tuple[CheckpointRecord, str]]:
        """Adopt the newest checkpoint that passes its checks; return the newer ones that did not."""
        account, region = self.config.account, self.config.region
        skipped: list[tuple[CheckpointRecord, str]] = []
        for record in await store.load_checkpoints(account, region):
            try:
                state = checked_state(record)
                engine = RegionEngine.restore(state.engine, compatible_types=lambda t: compatible_types(region, t))
            except Exception as exc:  # any failure to load is a reason to try an older one, never fatal
                skipped.append((record, f"{type(exc).__name__}: {exc}"))
                self.stats["checkpoints_skipped"] += 1
                log.warning("skipping checkpoint %s of account=%s region=%s: %s", record.id, account, region, exc)
                continue
            self._adopt(engine, state)
            log.info("restored checkpoint %s of account=%s region=%s (tick %s)", record.id, account, region,
                     record.tick_s)
            break
        stored_at_s = await store.fleet_updated_at_s(account, region)
        if stored_at_s is not None and stored_at_s > self._fleet_at_s:  # moves saved after the checkpoint
            self._pending_fleet = await store.list_instances(account, region)
            self._fleet_at_s = stored_at_s
            self._adopt_pending_fleet()
        return skipped

    def _adopt_pending_fleet(self) -> None:
        """The restored instances whose pools the engine knows (the others wait for ``add_pools``)."""
        for instance in self._pending_fleet:
            if instance.pool in self.engine.pools:
                self.engine.upsert_instance(instance, self._fleet_at_s)
        self._pending_fleet = [i for i in self._pending_fleet if i.pool not in self.engine.pools]

    def _adopt(self, engine: RegionEngine, state: ActorState) -> None:
        """Continue from a checkpoint: its engine (models, pools, fleet) under the newer configuration, and
        each stream's numbering from whichever is further, the store's or the checkpoint's."""
        saved = _config_from_dict(state.config)
        if saved is not None and saved.config_at_s > self.config.config_at_s:
            self._apply_config(saved)
        engine.policy = make_policy(self.config.policy, self.config.params)
        self.engine = engine
        self._pool_by_key = {pool.key: pool for pool in engine.pools}
        self.seq = max(self.seq, state.seq)
        for topic, seq in state.topic_seq.items():
            self.topic_seq[topic] = max(self.topic_seq.get(topic, 0), seq)
        rules = {rule.value: rule for rule in Rule}
        self.last_rule = {iid: rules[value] for iid, value in state.last_rule.items() if value in rules}
        self._fleet_at_s = state.fleet_at_s
        if math.isfinite(engine.last_observed_s):
            self.last_tick_s = engine.last_observed_s

    async def _report_skipped(self, skipped: list[tuple[CheckpointRecord, str]]) -> None:
        """One ``checkpoint_skipped`` alert per checkpoint that did not load."""
        now_s = self.engine.last_observed_s
        alerts = {"alerts": [alert_event(
            now_s if math.isfinite(now_s) else (r.tick_s if r.tick_s is not None else r.created_at_s),
            alert("checkpoint_skipped", [], f"checkpoint {r.id} did not load ({reason}); an older one was used",
                  checkpoint_id=r.id)) for r, reason in skipped]}
        try:
            await self._send(await self._record([], alerts))
        except Exception:
            log.exception("reporting skipped checkpoints failed for account=%s region=%s", self.config.account,
                          self.config.region)

    async def save_checkpoint(self) -> dict[str, Any]:
        """Checkpoint now (the background loop, ``reconfigure`` and ``close`` do). Only pickling the engine
        runs on the actor's loop; compressing, hashing and writing do not. An unchanged actor writes nothing."""
        store = await self._open_store()
        if store is None:
            return {"saved": False}
        async with self._checkpoint_lock:
            return await self._save_checkpoint(store)

    async def _save_checkpoint(self, store: Store) -> dict[str, Any]:
        # Not the database URL: it may hold a password, and a restored actor keeps its own anyway.
        config = {k: v for k, v in dataclasses.asdict(self.config).items() if k != "database_url"}
        state = ActorState(self.engine.snapshot(), self.seq, dict(self.topic_seq),
                           {iid: rule.value for iid, rule in self.last_rule.items()}, self._fleet_at_s, config)
        tick_s = self.last_tick_s if math.isfinite(self.last_tick_s) else None
        payload, sha = await asyncio.to_thread(_encode_and_hash, state)
        if sha == self._checkpointed_sha:
            return {"saved": False, "tick_s": tick_s}
        checkpoint_id = await store.save_checkpoint(self.config.account, self.config.region, payload,
                                                    version=CHECKPOINT_VERSION, tick_s=tick_s,
                                                    created_at_s=time.time(), sha256=sha)
        self._checkpointed_sha = sha
        self.stats["checkpoints_saved"] += 1
        return {"saved": True, "id": checkpoint_id, "tick_s": tick_s, "bytes": len(payload)}

    async def _checkpoint_quietly(self) -> None:
        try:
            await self.save_checkpoint()
        except Exception:
            self.stats["checkpoint_errors"] += 1
            log.exception("checkpoint failed for account=%s region=%s", self.config.account, self.config.region)

    async def _checkpoint_loop(self) -> None:
        """A first checkpoint after the first tick (pools and fleet are safe early), then one about every
        ``checkpoint_interval_s`` (jittered, so actors started together drift apart), each right after a
        tick: pickling a big engine holds the loop a while, and there it delays the next tick least."""
        while True:
            self._ticked.clear()
            # asyncio.timeout, not wait_for: on 3.11 wait_for loses a cancel that lands as the tick ends
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(CHECKPOINT_TICK_WAIT_S, self.config.checkpoint_interval_s)):
                    await self._ticked.wait()
            # Shielded: cancelling the loop (``close``) must not cut a write off mid-transaction.
            await asyncio.shield(self._checkpoint_quietly())
            await asyncio.sleep(self.config.checkpoint_interval_s * random.uniform(0.9, 1.1))


def _encode_and_hash(state: ActorState) -> tuple[bytes, str]:
    payload = encode_state(state)
    return payload, sha256_hex(payload)


def _config_from_dict(saved: dict[str, Any] | Any) -> RegionConfig | None:
    """A checkpoint's RegionConfig (its unknown fields dropped, missing ones defaulted), or None."""
    try:
        known = {f.name for f in dataclasses.fields(RegionConfig)}
        values = {k: v for k, v in dict(saved).items() if k in known}
        values["params"] = PolicyParams(**values.get("params", {}))
        return RegionConfig(**values)
    except (TypeError, ValueError):
        return None
