"""What a region actor's tick leaves behind: its decisions and events numbered per topic, saved in one
transaction (or queued in order while the store is unreachable) and sent to the stream host in one call;
the fleet snapshot written off the tick; old price events pruned.

A mixin of :class:`actors.region.RegionActor`: it reads the actor's configuration, engine, store and
stream host, and keeps the numbering, the unsaved queue and the save tasks the actor holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from typing import TYPE_CHECKING, Any

from actors.region_config import RegionConfig
from actors.store import Store, StreamEvent
from actors.store.decision_json import decision_to_json
from actors.store.errors import InvalidRecordError
from actors.stream import Entry, encode, stream_key
from actors.unsaved import PendingTick, UnsavedTicks
from actors.views import alert
from actors.wire import pack
from engine.region import RegionEngine
from engine.types import Decision

log = logging.getLogger("actors.region")

FLEET_SAVE_INTERVAL_S = 5.0  # the stored fleet snapshot is for restarts; REST reads the live actor
PRUNE_EVERY_S = 3600.0  # of tick time: how often an actor deletes its price events past retention
UNSAVED_RETRY_MIN_S, UNSAVED_RETRY_MAX_S = 0.5, 10.0  # retrying the store while it is unreachable
CLOSE_FLUSH_S = 5.0


class Recording:
    """Number, save, publish and prune a region actor's events (see the module docstring)."""

    config: RegionConfig
    engine: RegionEngine
    store: Store | None
    stats: dict[str, Any]
    seq: int
    topic_seq: dict[str, int]
    unsaved: UnsavedTicks
    store_overflow: bool
    _pending_alerts: list[dict[str, Any]]
    _record_lock: asyncio.Lock
    _unsaved_task: asyncio.Task[None] | None
    _fleet_due_s: float | None
    _fleet_saved_at: float
    _fleet_task: asyncio.Task[None] | None
    _fleet_at_s: float
    _pruned_at_s: float
    _prune_task: asyncio.Task[None] | None

    if TYPE_CHECKING:  # the actor's, and the checkpointing mixin's
        async def _open_store(self) -> Store | None: ...

        def stream_host(self) -> Any: ...

    async def _record(self, decisions: list[Decision],
                      topics: dict[str, list[dict[str, Any]]]) -> dict[str, list[Entry]]:
        """:meth:`_record_now`, one at a time: calls overlap (a tick waiting on the executor while the next
        arrives), and two records numbering at once would give out the same seqs."""
        async with self._record_lock:
            return await self._record_now(decisions, topics)

    async def _record_now(self, decisions: list[Decision],
                          topics: dict[str, list[dict[str, Any]]]) -> dict[str, list[Entry]]:
        """Number the tick's decisions and its events per topic, save them in one transaction, and return
        them by stream key as stream entries (seq, JSON text) for the stream host.

        When the store cannot be reached the tick is still numbered and streamed, and queued in order for
        the store (:mod:`actors.unsaved`): a resume reads the store, then the stream host's tail. A tick
        the store refuses as invalid is a bug, not an outage: it raises, and nothing advances.
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
            await self._save_or_queue(store, PendingTick(numbered, stored))
        if numbered:
            self.seq = numbered[-1][0]
        self.topic_seq = next_seq
        self.stats["decisions"] += len(numbered)
        return batches

    async def _save_or_queue(self, store: Store, tick: PendingTick) -> None:
        """Save the tick, or queue it behind the ticks already waiting (each stream reaches the store in
        seq order) and make sure the queue is being written out."""
        if not self.unsaved:
            try:
                await self._save_tick(store, tick)
                return
            except InvalidRecordError:
                raise
            except Exception as exc:
                self.stats["store_failures"] += 1
                log.warning("the store is unreachable for account=%s region=%s (%s); deciding and streaming "
                            "on, queueing ticks for it", self.config.account, self.config.region,
                            type(exc).__name__)
        dropped = self.unsaved.add(tick)
        if dropped:
            self.store_overflow = True
            self.stats["dropped_events"] += dropped
            log.error("unsaved buffer full for account=%s region=%s: %d oldest events dropped (%d in all); raise "
                      "SPOT_UNSAVED_LIMIT or restore the store", self.config.account, self.config.region, dropped,
                      self.unsaved.dropped_events)
            self._pending_alerts.append(alert("store_overflow", [], f"{dropped} events dropped: the store has been "
                                              f"unreachable for longer than {self.unsaved.limit_events} events",
                                              dropped=dropped))
        if self._unsaved_task is None or self._unsaved_task.done():
            self._unsaved_task = asyncio.create_task(self._write_unsaved(store))

    async def _save_tick(self, store: Store, tick: PendingTick) -> None:
        await store.save_tick(self.config.account, self.config.region, tick.decisions, tick.events)

    async def _write_unsaved(self, store: Store) -> None:
        """Write the queue out once the store answers, oldest first, backing off while it does not."""
        delay_s = UNSAVED_RETRY_MIN_S
        while self.unsaved:
            try:
                written = await self.unsaved.flush(functools.partial(self._save_tick, store))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("store still unreachable for account=%s region=%s: %s", self.config.account,
                          self.config.region, exc)
                await asyncio.sleep(delay_s * random.uniform(0.5, 1.0))
                delay_s = min(UNSAVED_RETRY_MAX_S, delay_s * 2)
                continue
            log.warning("the store is back for account=%s region=%s: %d queued events written",
                        self.config.account, self.config.region, written)
        self.store_overflow = False

    async def _write_unsaved_on_close(self) -> None:
        """Stop writing the queue out in the background and give it one last try; what still fails is
        logged as lost."""
        if self._unsaved_task is not None and not self._unsaved_task.done():
            self._unsaved_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._unsaved_task
        if self.unsaved and self.store is not None:
            store = self.store
            try:
                await asyncio.wait_for(self.unsaved.flush(functools.partial(self._save_tick, store)), CLOSE_FLUSH_S)
            except Exception:
                log.error("closing account=%s region=%s with %d events never saved", self.config.account,
                          self.config.region, self.unsaved.events)

    async def _send(self, batches: dict[str, list[Entry]]) -> None:
        """The tick's numbered events of every topic to the stream host in one call: each Ray round trip
        to the host costs a millisecond or more on a busy machine."""
        if not batches or (hub := self.stream_host()) is None:
            return
        try:
            remote = getattr(hub.publish_packed, "remote", None)
            if remote is not None:  # a Ray handle: one bytes value, see actors/wire.py
                await remote(pack(batches))
            else:
                await hub.publish_entries(batches)
        except Exception:
            self.stats["tick_errors"] += 1
            log.exception("publishing the tick failed for account=%s region=%s", self.config.account,
                          self.config.region)
            return
        self.stats["published"] += len(batches.get(stream_key(self.config.account, self.config.region), ()))

    def _schedule_saves(self, fleet_changed: bool, now_s: float) -> None:
        """After a tick: a fleet snapshot when the fleet changed, a retention pass every PRUNE_EVERY_S of
        tick time; both off the tick."""
        if fleet_changed:
            self._fleet_at_s = max(self._fleet_at_s, now_s)
            self._fleet_due_s = now_s
            if self._fleet_task is None or self._fleet_task.done():
                self._fleet_task = asyncio.create_task(self._save_fleet_later())
        if now_s - self._pruned_at_s >= PRUNE_EVERY_S and (self._prune_task is None or self._prune_task.done()):
            self._pruned_at_s = now_s
            self._prune_task = asyncio.create_task(self._prune(now_s - self.config.price_retention_s))

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
            await store.save_fleet(self.config.account, self.config.region, self.engine.fleet(), now_s)
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
        except Exception as exc:  # retried at the next pass; an unreachable store is reported by the ticks
            log.warning("pruning price events failed for account=%s region=%s: %s", self.config.account,
                        self.config.region, exc)
