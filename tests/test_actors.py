"""The runtime shell: the region actor as a plain object and on real Ray, the stream host, the replay."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from actors.demo import demo_fleet
from actors.executor import DryRun, SimulatedCloud
from actors.feeds.replay import ReplayFeed
from actors.feeds.schedule import spread_offsets
from actors.region import RegionActor, RegionConfig
from actors.store import Store
from actors.stream import StreamHost, stream_key
from engine.market import MarketTrace
from engine.region import BatchRejected
from engine.traces import bundled_market
from engine.types import Action, AvailabilityPoint, Instance, Pool, PricePoint

POOLS = (Pool("p3.2xlarge", "us-east-1a"), Pool("p3.2xlarge", "us-east-1c"))


def tiny_market(n_ticks: int = 40, tick_s: float = 600.0) -> MarketTrace:
    """Two pools; pool 0 is taken back at tick 10 and returns at tick 30."""
    available = np.ones((n_ticks, 2), dtype=bool)
    available[10:30, 0] = False
    price = np.tile([0.9, 1.0], (n_ticks, 1))
    return MarketTrace(POOLS, 1_700_000_000.0, tick_s, available, price, np.full(2, 3.06), "test")


async def heard(hub: StreamHost, *streams: str) -> dict[str, list[dict]]:
    """What a listener from the start hears on each stream, decoded from the host's JSON text."""
    entries = (await hub.listen(dict.fromkeys(streams, 0), timeout_s=0.1))["events"]
    return {stream: [json.loads(text) for _, text in entries.get(stream, [])] for stream in streams}


async def make_actor(account: str = "acct", database_url: str | None = None, hub: object = None,
                     executor: object = None) -> RegionActor:
    actor = RegionActor(RegionConfig(account, "us-east-1", policy="lowest_price", database_url=database_url),
                        hub=hub, executor=executor)  # type: ignore[arg-type]
    await actor.add_pools([(p.key, 3.06) for p in POOLS])
    return actor


async def test_a_bad_batch_is_refused_whole_and_the_actor_state_is_unchanged() -> None:
    actor = await make_actor()
    await actor.ingest([PricePoint(POOLS[0], 0.9, 0.0), PricePoint(POOLS[1], 1.0, 0.0)], [], now_s=0.0)
    before = actor.engine.snapshot()
    with pytest.raises(BatchRejected, match=r"prices\[1\]"):
        await actor.ingest([PricePoint(POOLS[0], 0.1, 5.0), PricePoint(POOLS[1], -1.0, 5.0)],
                           [AvailabilityPoint(POOLS[0], False, 5.0)], now_s=5.0)
    with pytest.raises(BatchRejected):  # a multi-tick batch with one bad tick is refused whole too
        await actor.ingest_many([(6.0, [PricePoint(POOLS[0], 0.2, 6.0)], []),
                                 (7.0, [PricePoint(Pool("p3.2xlarge", "us-east-1f"), 0.2, 7.0)], [])])
    assert actor.engine.snapshot() == before
    assert actor.stats["rejected_batches"] == 2
    assert {p["pool"]: p["price_usd_per_hour"] for p in await actor.latest_prices()} == {
        POOLS[0].key: 0.9, POOLS[1].key: 1.0}


async def test_an_interruption_is_handled_persisted_and_published(tmp_path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"
    await (await Store.open(url)).close()  # migrate once, as the app does at start
    hub = StreamHost()
    cloud = SimulatedCloud()
    actor = await make_actor(database_url=url, hub=hub, executor=cloud)
    await actor.set_fleet([Instance("i-1", POOLS[0])], now_s=0.0)
    await actor.ingest([PricePoint(POOLS[0], 0.9, 0.0), PricePoint(POOLS[1], 1.0, 0.0)],
                       [AvailabilityPoint(POOLS[0], True, 0.0), AvailabilityPoint(POOLS[1], True, 0.0)], 0.0)
    result = await actor.ingest([], [AvailabilityPoint(POOLS[0], False, 60.0)], now_s=60.0)
    assert result["interrupted"] == ["i-1"]
    assert [d.action for d in cloud.calls] == [Action.REPLACE]
    assert (await actor.instances())[0].pool == POOLS[1]
    await actor.flush()  # the fleet snapshot is saved off the tick

    events = (await heard(hub, stream_key("acct", "us-east-1")))[stream_key("acct", "us-east-1")]
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    assert events[-1]["action"] == "replace" and events[-1]["rule"] == "interrupted"

    store = await Store.open(url)
    try:
        stored = await store.list_decisions("acct", "us-east-1")
        assert [r.seq for r in stored] == [e["seq"] for e in reversed(events)]
        assert (await store.list_instances("acct", "us-east-1"))[0].pool == POOLS[1]
    finally:
        await store.close()
    await actor.close()

    # A restarted actor continues the sequence instead of reusing numbers.
    again = await make_actor(database_url=url)
    await again.ready()
    assert again.seq == events[-1]["seq"]
    await again.close()


async def test_an_actor_restarted_straight_into_a_tick_continues_every_topics_numbering(tmp_path) -> None:
    """Ray re-runs only ``__init__`` on a restart: the first tick itself must pick up the stored seqs."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'restart.db'}"
    await (await Store.open(url)).close()
    hub = StreamHost()
    first = await make_actor(database_url=url, hub=hub)
    await first.set_fleet([Instance("i-1", POOLS[0])], now_s=0.0)
    await first.ingest([PricePoint(POOLS[0], 0.9, 0.0), PricePoint(POOLS[1], 1.0, 0.0)], [], 0.0)
    await first.ingest([], [AvailabilityPoint(POOLS[0], False, 60.0)], now_s=60.0)
    before = await hub.streams()
    await first.close()

    restarted = await make_actor(database_url=url, hub=hub)  # no ready(), no set_fleet: straight into a tick
    await restarted.ingest([PricePoint(POOLS[0], 0.95, 120.0)], [AvailabilityPoint(POOLS[0], True, 120.0)], 120.0)
    after = await hub.streams()
    prices = stream_key("acct", "us-east-1", "prices")
    assert after[prices] == before[prices] + 1  # published (the host refuses a seq it has seen)
    assert restarted.stats["tick_errors"] == 0
    await restarted.close()


async def test_fleet_snapshots_are_saved_off_the_tick_and_coalesced(tmp_path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fleet.db'}"
    await (await Store.open(url)).close()
    actor = await make_actor(database_url=url, hub=StreamHost(), executor=SimulatedCloud())
    await actor.set_fleet([Instance("i-1", POOLS[0])], now_s=0.0)
    store = await actor._open_store()
    assert store is not None
    writes: list[float] = []
    original = store.save_fleet

    async def counting(account: str, region: str, fleet: list[Instance], now_s: float) -> None:
        writes.append(now_s)
        await original(account, region, fleet, now_s)

    store.save_fleet = counting  # type: ignore[method-assign]
    await actor.ingest([PricePoint(POOLS[0], 0.9, 0.0), PricePoint(POOLS[1], 1.0, 0.0)], [], 0.0)
    await actor.ingest([], [AvailabilityPoint(POOLS[0], False, 60.0)], now_s=60.0)  # moves to POOLS[1]
    await asyncio.sleep(0.05)  # the first snapshot is written at once, off the tick
    await actor.ingest([], [AvailabilityPoint(POOLS[1], False, 120.0),
                            AvailabilityPoint(POOLS[0], True, 120.0)], now_s=120.0)  # moves back
    assert writes == [60.0]  # the second move waits for the interval instead of its own transaction
    await actor.close()  # writes the newest snapshot
    assert writes == [60.0, 120.0]
    reopened = await Store.open(url)
    try:
        assert (await reopened.list_instances("acct", "us-east-1"))[0].pool == POOLS[0]
    finally:
        await reopened.close()


async def test_a_dry_run_executor_changes_nothing() -> None:
    actor = await make_actor(executor=DryRun())
    await actor.set_fleet([Instance("i-1", POOLS[0])], now_s=0.0)
    await actor.ingest([PricePoint(POOLS[0], 0.9, 0.0), PricePoint(POOLS[1], 1.0, 0.0)], [], 0.0)
    await actor.ingest([], [AvailabilityPoint(POOLS[0], False, 60.0)], now_s=60.0)
    assert (await actor.instances())[0].pool == POOLS[0]


async def test_stream_host_long_poll_returns_when_an_event_arrives() -> None:
    hub = StreamHost(capacity=3)
    key = stream_key("a", "r")
    waiting = asyncio.create_task(hub.listen({key: 0}, timeout_s=5.0))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await hub.publish(key, [{"seq": 1}])
    assert (await asyncio.wait_for(waiting, 1.0))["events"][key] == [(1, '{"seq":1}')]  # kept as JSON text
    with pytest.raises(ValueError, match="not after"):
        await hub.publish(key, [{"seq": 1}])
    await hub.publish(key, [{"seq": s} for s in range(2, 7)])
    behind = await hub.listen({key: 1}, timeout_s=0.1)
    assert [seq for seq, _ in behind["events"][key]] == [4, 5, 6]
    assert behind["truncated"] == [key]  # the listener missed evicted events and must resume from the store


async def test_replay_plays_every_tick_in_order_and_loops_forward_in_time() -> None:
    market = tiny_market(n_ticks=10)
    received: list[float] = []

    async def send(region: str, ticks: list) -> None:
        assert region == "us-east-1"
        received.extend(t[0] for t in ticks)

    feed = ReplayFeed(market, send, speed=1800.0, interval_s=1.0)  # 3 ticks per batch
    for _ in range(5):
        await feed.step()
    assert received == [market.start_s + 600.0 * k for k in range(len(received))]
    assert len(received) == 13  # 10 ticks, then the second lap continues the clock


async def test_the_demo_fleet_follows_real_prices_through_the_replay() -> None:
    """200 real hours of us-east-1: the fleet leaves spot when the zones are taken back and returns."""
    market = bundled_market()
    hub = StreamHost(capacity=100_000)
    actor = RegionActor(RegionConfig("demo", "us-east-1", policy="risk_aware"), hub=hub)
    await actor.add_pools([(p.key, 3.06) for p in market.pools if p.region == "us-east-1"])
    await actor.set_fleet(demo_fleet(market, "p3.2xlarge", "us-east-1", 4), market.start_s)

    async def send(region: str, ticks: list) -> None:
        if region == "us-east-1":
            await actor.ingest_many(ticks)

    feed = ReplayFeed(market, send, speed=7200.0, interval_s=1.0, loop=False)
    for _ in range(100):
        await feed.step()
    assert actor.stats["tick_errors"] == 0
    events = (await heard(hub, "demo/us-east-1/decisions"))["demo/us-east-1/decisions"]
    actions = {e["action"] for e in events}
    assert {"fallback_on_demand", "return_to_spot"} <= actions
    assert all(e["reason"] for e in events)


def test_demo_fleet_names_what_the_history_has_when_asked_for_something_else() -> None:
    with pytest.raises(ValueError, match=r"no m5\.large pools in us-east-1"):
        demo_fleet(bundled_market(), "m5.large", "us-east-1", 2)


@pytest.mark.ray
def test_the_supervisor_finds_the_same_actor_on_real_ray(ray_session) -> None:
    import ray

    from actors.supervisor import Supervisor

    supervisor = Supervisor()
    config = RegionConfig("ray-test", "us-east-1", policy="lowest_price")
    handle = supervisor.get_or_create(config)
    assert supervisor.get_or_create(config) is handle
    ray.get(handle.add_pools.remote([(p.key, 3.06) for p in POOLS]))
    ray.get(handle.set_fleet.remote([Instance("i-1", POOLS[0])], 0.0))
    ray.get(handle.ingest.remote([PricePoint(POOLS[0], 0.9, 0.0), PricePoint(POOLS[1], 1.0, 0.0)], [], 0.0))
    ray.get(handle.ingest.remote([], [AvailabilityPoint(POOLS[0], False, 60.0)], 60.0))
    assert ray.get(handle.instances.remote())[0].pool == POOLS[1]
    with pytest.raises(ray.exceptions.RayTaskError, match="BatchRejected"):
        ray.get(handle.ingest.remote([PricePoint(POOLS[0], float("inf"), 70.0)], [], 70.0))
    assert ray.get(handle.status.remote())["rejected_batches"] == 1
    with pytest.raises(ValueError, match="account"):
        supervisor.get_or_create(RegionConfig("bad name!", "us-east-1"))
    ray.kill(handle)


async def test_a_batch_that_fails_to_persist_is_streamed_queued_and_saved_later_without_a_gap(tmp_path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gap.db'}"
    await (await Store.open(url)).close()
    hub = StreamHost()
    actor = await make_actor(database_url=url, hub=hub)
    await actor.set_fleet([Instance("i-1", POOLS[0])], now_s=0.0)
    await actor.ingest([PricePoint(POOLS[0], 0.9, 0.0), PricePoint(POOLS[1], 1.0, 0.0)], [], 0.0)
    first = actor.seq
    store = await actor._open_store()
    assert store is not None

    async def broken(*_: object) -> None:
        raise ConnectionError("database went away")

    original, store.save_tick = store.save_tick, broken  # type: ignore[method-assign]
    await actor.ingest([], [AvailabilityPoint(POOLS[0], False, 60.0)], now_s=60.0)
    assert actor.stats["store_failures"] == 1 and actor.stats["tick_errors"] == 0
    assert actor.seq > first and actor.unsaved.events > 0  # decided, numbered and streamed; queued for the store
    store.save_tick = original  # type: ignore[method-assign]
    await actor.ingest([], [AvailabilityPoint(POOLS[1], False, 120.0)], now_s=120.0)
    for _ in range(100):  # the queue is written out in the background, in order, before anything newer
        if not actor.unsaved:
            break
        await asyncio.sleep(0.05)
    assert not actor.unsaved
    streams = [stream_key("acct", "us-east-1", topic) for topic in ("decisions", "prices", "alerts")]
    published = await heard(hub, *streams)
    for stream in streams:  # every topic numbered without a gap, and the same in the store
        seqs = [e["seq"] for e in published[stream]]
        assert seqs == list(range(1, len(seqs) + 1)), stream
    stored = await store.events_after("acct", "us-east-1", "prices", 0)
    assert [e.seq for e in stored] == [e["seq"] for e in published[streams[1]]]
    await actor.close()


async def test_replay_sends_each_region_at_its_own_phase_of_the_interval() -> None:
    pools = (Pool("p3.2xlarge", "us-east-1a"), Pool("p3.2xlarge", "us-west-2a"), Pool("p3.2xlarge", "eu-west-1a"))
    market = MarketTrace(pools, 1_700_000_000.0, 600.0, np.ones((4, 3), dtype=bool), np.full((4, 3), 0.9),
                         np.full(3, 3.06), "test")
    loop = asyncio.get_running_loop()
    sent_at: dict[str, float] = {}

    async def send(region: str, ticks: list) -> None:
        sent_at[region] = loop.time()

    feed = ReplayFeed(market, send, speed=600.0, interval_s=1.0, loop=False)
    start = loop.time()
    await feed.step(spread_s=0.3)
    offsets = spread_offsets(sent_at, 0.3)
    for region, at in sent_at.items():  # never before its phase (sleeps only ever run late)
        assert at - start >= offsets[region] - 0.005
    assert sorted(sent_at, key=sent_at.__getitem__) == sorted(offsets, key=offsets.__getitem__)
    sent_at.clear()
    await feed.step()  # no spread: a direct step (as tests and bulk replays use) sends at once
    assert max(sent_at.values()) - min(sent_at.values()) < 0.25


async def test_an_actor_deletes_its_stored_price_events_past_retention_in_its_own_tick_time(tmp_path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'retention.db'}"
    await (await Store.open(url)).close()
    actor = RegionActor(RegionConfig("acct", "us-east-1", policy="lowest_price", database_url=url,
                                     price_retention_s=1800.0))
    await actor.add_pools([(p.key, 3.06) for p in POOLS])
    await actor.set_fleet([Instance("i-1", POOLS[0])], now_s=0.0)
    start = 1_700_000_000.0  # a replay's clock, years behind the wall clock
    for k in range(8):  # a tick every 10 minutes; retention runs on the first tick and once an hour after
        now = start + 600.0 * k
        await actor.ingest([PricePoint(POOLS[0], 0.9 + k / 100, now)], [AvailabilityPoint(POOLS[1], k % 2 == 0, now)],
                           now)
        if actor._prune_task is not None:
            await actor._prune_task
    store = await actor._open_store()
    assert store is not None
    kept = [e.at_s - start for e in await store.events_after("acct", "us-east-1", "prices", 0)]
    assert kept == [600.0 * k for k in range(3, 8)]  # the pass at 3600 s removed what was older than 1800 s
    decisions = await store.decisions_after("acct", "us-east-1", 0)
    assert actor.seq >= 1 and [d.seq for d in decisions] == list(range(1, actor.seq + 1))  # decisions are kept
    await actor.close()


async def test_replay_ticks_older_than_the_actor_has_seen_are_skipped_and_counted() -> None:
    actor = await make_actor()
    await actor.ingest_many([(120.0, [PricePoint(POOLS[0], 0.9, 120.0)], [])])  # the feed's current state
    summary = await actor.ingest_many([(60.0, [PricePoint(POOLS[0], 0.8, 60.0)], []),   # a batch on its way
                                       (180.0, [PricePoint(POOLS[0], 0.7, 180.0)], [])])
    assert actor.stats["stale_ticks"] == 1 and actor.stats["rejected_batches"] == 0
    assert actor.engine.last_observed_s == 180.0 and summary["interrupted"] == []
    with pytest.raises(ValueError, match="time order"):
        await actor.ingest_many([(300.0, [], []), (240.0, [], [])])


class SlowCloud:
    """Carries each placement change out after ``delay_s`` (a launch waiting for its instance to run)."""

    mode = "execute"

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.calls: list[str] = []

    async def execute(self, decisions: list) -> list:  # type: ignore[type-arg]
        from actors.executor import ExecutionResult, Outcome

        self.calls += [d.instance_id for d in decisions]
        await asyncio.sleep(self.delay_s)
        return [ExecutionResult(d, Outcome.APPLIED) for d in decisions]


async def test_overlapping_ticks_never_carry_one_instance_out_twice_nor_reuse_a_seq(tmp_path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'overlap.db'}"
    await (await Store.open(url)).close()
    hub, cloud = StreamHost(), SlowCloud(delay_s=0.3)
    actor = await make_actor(database_url=url, hub=hub, executor=cloud)
    await actor.set_fleet([Instance("i-1", POOLS[0])], now_s=0.0)
    await actor.ingest([PricePoint(p, 0.9 + 0.1 * k, 0.0) for k, p in enumerate(POOLS)], [], 0.0)
    interrupt = actor.ingest([], [AvailabilityPoint(POOLS[0], False, 60.0)], 60.0)  # waits on the slow launch
    ticks = [actor.ingest([PricePoint(POOLS[1], 0.8 - 0.01 * k, 60.0 + k)], [], 60.0 + k) for k in range(1, 4)]
    await asyncio.gather(interrupt, *ticks)
    assert cloud.calls.count("i-1") == 1  # decided again meanwhile, carried out once
    published = await heard(hub, stream_key("acct", "us-east-1"))
    seqs = [e["seq"] for e in next(iter(published.values()))]
    assert seqs == list(range(1, len(seqs) + 1))  # no seq given out twice
    await actor.close()
