"""Region actor checkpoints: the store's table on both databases, restore after a restart (as a plain
object and on real Ray, by killing the actor's process), a checkpoint that fails its checks, and an
in-place reconfigure that keeps the learned models."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import time
from dataclasses import replace

import numpy as np
import pytest
import sqlalchemy as sa

from actors.checkpoint import CHECKPOINT_VERSION
from actors.feeds.replay import ReplayFeed
from actors.region import RegionActor, RegionConfig
from actors.store import KEEP_CHECKPOINTS, InvalidRecordError, Store
from actors.store.checkpoints import sha256_hex
from actors.store.tables import CHECKPOINTS
from actors.stream import StreamHost, stream_key
from engine.market import MarketTrace
from engine.policy import PolicyParams
from engine.types import AvailabilityPoint, Instance, Pool, PricePoint

ACCOUNT, REGION = "acct", "us-east-1"
POOLS = (Pool("p3.2xlarge", "us-east-1a"), Pool("p3.2xlarge", "us-east-1c"))
TICK_S = 600.0  # ten minutes: the risk model's labels mature after six ticks (its horizon is an hour)


def region_config(url: str | None = None, **changes: object) -> RegionConfig:
    """The test actors' config; no background checkpoints unless a test asks for them."""
    return replace(RegionConfig(ACCOUNT, REGION, policy="lowest_price", database_url=url, checkpoint_interval_s=0.0),
                   **changes)


async def started_actor(url: str | None = None, hub: object = None, **changes: object) -> RegionActor:
    """An actor as a feed starts it: its pools first (which, on a database, restores it)."""
    actor = RegionActor(region_config(url, **changes), hub=hub)
    await actor.add_pools([(p.key, 3.06) for p in POOLS])
    return actor


async def run_ticks(actor: RegionActor, start: int, stop: int) -> None:
    """Ticks ``start`` .. ``stop - 1``; pool 0 loses its capacity at ticks 10-13."""
    for k in range(start, stop):
        now_s = k * TICK_S
        await actor.ingest([PricePoint(POOLS[0], 0.9, now_s), PricePoint(POOLS[1], 1.0 + 0.01 * (k % 3), now_s)],
                           [AvailabilityPoint(POOLS[0], not 10 <= k < 14, now_s),
                            AvailabilityPoint(POOLS[1], True, now_s)], now_s)


async def interrupt(actor: RegionActor, now_s: float) -> int:
    """Take the capacity of the pool instance ``i-1`` runs in: it must move (a new decision); returns the
    decisions stream's last seq."""
    pool = next(i.pool for i in await actor.instances() if i.instance_id == "i-1")
    other = POOLS[1] if pool == POOLS[0] else POOLS[0]
    result = await actor.ingest([], [AvailabilityPoint(pool, False, now_s), AvailabilityPoint(other, True, now_s)],
                                now_s)
    assert "i-1" in result["interrupted"]
    return actor.seq


def labels(actor: RegionActor) -> int:
    return actor.engine.risk_model.labels_learned  # type: ignore[union-attr]


async def crash(actor: RegionActor) -> None:
    """End an actor as a killed process would: no close, so no last checkpoint."""
    for task in (actor._fleet_task, actor._prune_task, actor._checkpoint_task):
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if actor.store is not None:
        await actor.store.close()


# --- the store ---------------------------------------------------------------------------------------


async def test_the_store_keeps_the_newest_checkpoints_and_returns_them_newest_first(store: Store) -> None:
    payloads = [bytes([k, 0, 255]) * 100_000 + b"\x00" for k in range(5)]  # binary, NUL bytes, 300 KB
    ids = [await store.save_checkpoint(ACCOUNT, REGION, p, version=CHECKPOINT_VERSION, tick_s=None if k == 0 else k,
                                       created_at_s=1_700_000_000.0 + k) for k, p in enumerate(payloads)]
    await store.save_checkpoint("other", REGION, b"x", version=1, tick_s=1.0, created_at_s=0.0)

    loaded = await store.load_checkpoints(ACCOUNT, REGION)
    assert [c.id for c in loaded] == ids[::-1][:KEEP_CHECKPOINTS]
    assert [c.payload for c in loaded] == payloads[::-1][:KEEP_CHECKPOINTS]
    assert [c.tick_s for c in loaded] == [4.0, 3.0, 2.0]
    assert all(c.intact and c.sha256 == sha256_hex(c.payload) and c.version == CHECKPOINT_VERSION for c in loaded)
    assert loaded[0].created_at_s == 1_700_000_004.0
    assert [c.payload for c in await store.load_checkpoints("other", REGION)] == [b"x"]
    assert await store.load_checkpoints(ACCOUNT, "us-west-2") == []

    first = await store.save_checkpoint(ACCOUNT, "us-west-2", b"a", version=1, tick_s=float("nan"), created_at_s=0.0)
    (only,) = await store.load_checkpoints(ACCOUNT, "us-west-2")
    assert (only.id, only.tick_s) == (first, None)  # no tick yet: NULL on both databases
    with pytest.raises(InvalidRecordError, match="account"):
        await store.save_checkpoint("x" * 500, REGION, b"a", version=1, tick_s=None, created_at_s=0.0)
    with pytest.raises(ValueError, match="keep"):
        await store.save_checkpoint(ACCOUNT, REGION, b"a", version=1, tick_s=None, created_at_s=0.0, keep=0)
    assert len(await store.load_checkpoints(ACCOUNT, REGION)) == KEEP_CHECKPOINTS  # refused before writing


# --- restore as a plain object -----------------------------------------------------------------------


async def test_a_new_actor_on_the_same_database_resumes_models_pools_fleet_and_numbering(store: Store,
                                                                                       store_url: str) -> None:
    hub = StreamHost()
    first = await started_actor(store_url, hub)
    await first.set_fleet([Instance("i-1", POOLS[0]), Instance("i-2", POOLS[1])], 0.0)
    await run_ticks(first, 0, 20)
    learned, fleet, seq = labels(first), await first.instances(), first.seq
    pools = {s.pool: s.on_demand_usd_per_hour for s in first.engine.pool_states()}
    assert learned > 0 and seq > 0
    await first.close()  # checkpoints

    again = RegionActor(region_config(store_url), hub=hub)  # as Ray re-runs __init__: nothing but the config
    assert (await again.status())["pools"] == 2
    assert {s.pool: s.on_demand_usd_per_hour for s in again.engine.pool_states()} == pools
    assert await again.instances() == fleet
    assert labels(again) >= learned
    assert again.seq == seq
    assert await interrupt(again, 20 * TICK_S) > seq  # numbering goes on (no gap, no duplicate: below)
    await run_ticks(again, 21, 24)
    assert again.stats["tick_errors"] == 0  # the stream host refuses a seq it has already seen
    stored = [r.seq for r in await store.list_decisions(ACCOUNT, REGION, limit=1000)]
    assert sorted(stored) == list(range(1, again.seq + 1))
    await again.close()


async def test_the_stored_fleet_wins_when_it_is_newer_than_the_checkpoint(store: Store, store_url: str) -> None:
    first = await started_actor(store_url)
    await first.set_fleet([Instance("i-1", POOLS[0])], 0.0)
    await run_ticks(first, 0, 8)
    assert (await first.save_checkpoint())["saved"]
    await interrupt(first, 8 * TICK_S)  # a move after the checkpoint ...
    await first.flush()  # ... saved by the fleet snapshot; then the process dies
    moved = await first.instances()
    await crash(first)

    again = await started_actor(store_url)
    assert await again.instances() == moved
    assert again.seq == first.seq  # the move's decision came from the store, not the checkpoint
    await again.close()


@pytest.mark.parametrize("corruption", ["checksum", "version", "unreadable"])
async def test_a_checkpoint_that_fails_its_checks_is_skipped_for_the_older_one(store: Store, store_url: str,
                                                                            corruption: str) -> None:
    hub = StreamHost()
    first = await started_actor(store_url, hub)
    await first.set_fleet([Instance("i-1", POOLS[0])], 0.0)
    await run_ticks(first, 0, 12)
    assert (await first.save_checkpoint())["saved"]
    at_older = labels(first)
    await run_ticks(first, 12, 20)
    await first.close()
    newest = (await store.load_checkpoints(ACCOUNT, REGION))[0]
    damage = {"checksum": {"payload": newest.payload[:-1] + bytes([newest.payload[-1] ^ 1])},
              "version": {"version": CHECKPOINT_VERSION + 1},
              "unreadable": {"payload": b"not a checkpoint", "sha256": sha256_hex(b"not a checkpoint")}}[corruption]
    async with store.engine.begin() as conn:
        await conn.execute(sa.update(CHECKPOINTS).where(CHECKPOINTS.c.id == newest.id).values(**damage))

    again = await started_actor(store_url, hub)
    assert labels(again) == at_older < labels(first)
    assert again.stats["checkpoints_skipped"] == 1
    assert again.seq == first.seq  # the store is further than the older checkpoint
    alerts = [json.loads(e.payload) for e in await store.events_after(ACCOUNT, REGION, "alerts", 0)]
    assert alerts[-1]["kind"] == "checkpoint_skipped" and alerts[-1]["checkpoint_id"] == newest.id
    heard = await hub.listen({stream_key(ACCOUNT, REGION, "alerts"): 0}, timeout_s=0.1)
    assert "checkpoint_skipped" in heard["events"][stream_key(ACCOUNT, REGION, "alerts")][-1][1]
    await run_ticks(again, 20, 22)
    assert again.stats["tick_errors"] == 0
    await again.close()


async def test_checkpoints_are_taken_in_the_background_and_not_repeated_when_nothing_changed(
        store: Store, store_url: str) -> None:
    actor = await started_actor(store_url, checkpoint_interval_s=0.05)
    await run_ticks(actor, 0, 3)

    async def newest_tick_s() -> float | None:
        stored = await store.load_checkpoints(ACCOUNT, REGION)
        return stored[0].tick_s if stored else None

    deadline = time.monotonic() + 5.0
    while await newest_tick_s() != 2 * TICK_S:
        assert time.monotonic() < deadline, "no checkpoint of the last tick"
        await asyncio.sleep(0.02)
    saved = actor.stats["checkpoints_saved"]
    await asyncio.sleep(0.3)  # several more periods without a tick: nothing new to write
    assert actor.stats["checkpoints_saved"] == saved and actor.stats["checkpoint_errors"] == 0
    await run_ticks(actor, 3, 4)
    await actor.close()  # changed since: written again (by the background loop or by close, whichever is first)
    assert actor.stats["checkpoints_saved"] > saved
    assert await newest_tick_s() == 3 * TICK_S
    assert len(await store.load_checkpoints(ACCOUNT, REGION)) <= KEEP_CHECKPOINTS


def test_a_restarted_replay_goes_on_after_the_restored_clock_at_the_same_place_in_the_trace() -> None:
    start_s = 1_700_000_000.0
    market = MarketTrace(POOLS, start_s, TICK_S, np.ones((10, 2), dtype=bool), np.full((10, 2), 0.9),
                         np.full(2, 3.06), "test")

    async def send(_region: str, _ticks: list) -> None:  # type: ignore[type-arg]
        return None

    feed = ReplayFeed(market, send, speed=TICK_S, interval_s=1.0)
    feed.resume_after(-math.inf)  # nothing restored
    assert (feed.lap, feed.next_tick) == (0, 0)
    feed.resume_after(start_s + 3 * TICK_S + 10.0)
    assert (feed.lap, feed.next_tick) == (0, 4)
    last_of_lap_2 = start_s + (2 * 10 + 9) * TICK_S
    feed.resume_after(last_of_lap_2)
    assert (feed.lap, feed.next_tick) == (3, 0)
    feed.resume_after(start_s)  # behind the feed already: no change
    assert (feed.lap, feed.next_tick) == (3, 0)
    batch = feed.take_batch()
    assert batch is not None and [t[0] for t in batch[REGION]] == [last_of_lap_2 + TICK_S]


# --- reconfigure -------------------------------------------------------------------------------------


async def test_reconfigure_keeps_the_models_and_a_restart_keeps_the_new_configuration(store: Store,
                                                                                      store_url: str) -> None:
    actor = await started_actor(store_url)
    await actor.set_fleet([Instance("i-1", POOLS[0])], 0.0)
    await run_ticks(actor, 0, 20)
    engine, learned = actor.engine, labels(actor)
    changed = replace(actor.config, policy="risk_aware", executor="dry_run",
                      params=PolicyParams(min_saving_fraction=0.2), config_at_s=time.time())
    status = await actor.reconfigure(changed)
    assert actor.engine is engine and labels(actor) == learned
    assert (actor.engine.policy.name, actor.engine.params.min_saving_fraction) == ("risk_aware", 0.2)
    assert (status["policy"], status["executor"]) == ("risk_aware", "dry_run")
    await run_ticks(actor, 20, 22)
    assert labels(actor) >= learned and actor.stats["tick_errors"] == 0
    with pytest.raises(ValueError, match="cannot take"):
        await actor.reconfigure(replace(changed, region="us-west-2"))
    await actor.close()

    # Ray re-runs __init__ with the config the actor was created with: the newer one checkpointed wins.
    stale = RegionActor(region_config(store_url))
    await stale.ready()
    assert (stale.config.policy, stale.executor.mode, stale.engine.policy.name) == ("risk_aware", "dry_run",
                                                                                    "risk_aware")
    assert stale.config.database_url == store_url and labels(stale) >= learned
    await stale.close()


# --- real Ray ----------------------------------------------------------------------------------------


@pytest.mark.ray
@pytest.mark.slow
async def test_ray_restarts_a_killed_region_actor_from_its_checkpoint(ray_session, tmp_path, capfd) -> None:
    import ray

    from actors.remote import stream_host, stream_host_name
    from actors.supervisor import Supervisor

    url = f"sqlite+aiosqlite:///{tmp_path / 'restart.db'}"
    await (await Store.open(url)).close()
    hub_name = stream_host_name()
    hub = stream_host(hub_name)
    supervisor = Supervisor(hub_name=hub_name)
    config = replace(region_config(url), account="ray-restart", checkpoint_interval_s=3600.0)
    handle = supervisor.get_or_create(config)
    try:
        await handle.add_pools.remote([(p.key, 3.06) for p in POOLS])
        await handle.set_fleet.remote([Instance("i-1", POOLS[0])], 0.0)
        for k in range(20):
            now_s = k * TICK_S
            await handle.ingest.remote([PricePoint(POOLS[0], 0.9, now_s), PricePoint(POOLS[1], 1.0, now_s)],
                                       [AvailabilityPoint(POOLS[0], not 10 <= k < 14, now_s),
                                        AvailabilityPoint(POOLS[1], True, now_s)], now_s)
        assert (await handle.save_checkpoint.remote())["saved"]
        learned = (await handle.model_metrics.remote())["risk"]["labels_learned"]
        before = await handle.status.remote()
        assert learned > 0 and before["last_seq"] > 0

        pid = await handle.process_id.remote()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 60.0
        while True:  # Ray restarts it (max_restarts=-1); calls fail until the new process is up
            try:
                new_pid = await asyncio.wait_for(handle.process_id.remote(), 10.0)
                if new_pid != pid:
                    break
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError, TimeoutError):
                pass
            assert time.monotonic() < deadline, "the region actor did not come back"
            await asyncio.sleep(0.2)

        after = await handle.status.remote()
        assert (after["pools"], after["instances"], after["last_seq"]) == (2, 1, before["last_seq"])
        assert (await handle.model_metrics.remote())["risk"]["labels_learned"] >= learned
        fleet = await handle.instances.remote()
        now_s = 20 * TICK_S
        result = await handle.ingest.remote([], [AvailabilityPoint(fleet[0].pool, False, now_s)], now_s)
        assert result["interrupted"] == ["i-1"] and result["last_seq"] == before["last_seq"] + 1
        assert (await handle.status.remote())["tick_errors"] == 0  # published: the host had no such seq yet
        assert await hub.last_seq.remote(stream_key("ray-restart", REGION)) == result["last_seq"]
        store = await Store.open(url, migrate=False)
        try:
            stored = [r.seq for r in await store.list_decisions("ray-restart", REGION, limit=1000)]
        finally:
            await store.close()
        assert sorted(stored) == list(range(1, result["last_seq"] + 1))
        assert "constructor arguments in the object store" not in capfd.readouterr().err
    finally:
        ray.kill(handle, no_restart=True)
        ray.kill(hub, no_restart=True)
