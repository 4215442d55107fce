"""Packed hot-path payloads: what goes in comes out, and a malformed payload is refused by name."""

from __future__ import annotations

import pickle

import pytest

from actors.region import RegionActor, RegionConfig
from actors.stream import StreamHost, stream_key
from actors.wire import WireError, pack, pack_ticks, unpack, unpack_ticks
from engine.types import AvailabilityPoint, Pool, PricePoint

POOLS = (Pool("p3.2xlarge", "us-east-1a"), Pool("p3.2xlarge", "us-east-1c"))


def ticks() -> list[tuple[float, list[PricePoint], list[AvailabilityPoint]]]:
    return [
        (60.0, [PricePoint(POOLS[0], 0.91, 59.5), PricePoint(POOLS[1], 1.25, 60.0)],
         [AvailabilityPoint(POOLS[0], False, 60.0)]),
        (120.0, [], [AvailabilityPoint(POOLS[0], True, 120.0), AvailabilityPoint(POOLS[1], False, 119.0)]),
    ]


def test_packed_ticks_unpack_to_the_same_observations() -> None:
    assert unpack_ticks(pack_ticks(ticks())) == ticks()


def test_unpacking_reuses_the_receivers_own_pool_objects() -> None:
    mine = {p.key: Pool(p.instance_type, p.availability_zone) for p in POOLS}
    (_, prices, availability), _ = unpack_ticks(pack_ticks(ticks()), mine)
    assert prices[0].pool is mine[POOLS[0].key] and availability[0].pool is mine[POOLS[0].key]


def test_a_malformed_pool_key_is_refused_naming_the_tick_and_the_field() -> None:
    blob = pickle.dumps((1, [(60.0, ["no-at-sign"], b"\0" * 8, b"\0" * 8, [], b"", b"")]))
    with pytest.raises(WireError, match=r"ticks\[0\]: prices\[0\]: field 'pool'"):
        unpack_ticks(blob)


def test_columns_of_different_lengths_are_refused() -> None:
    good = pickle.loads(pack_ticks(ticks()))[1][0]
    short = (good[0], good[1], good[2][:8], *good[3:])
    with pytest.raises(WireError, match=r"ticks\[0\]: field 'prices': 2 pools, 1 prices"):
        unpack_ticks(pickle.dumps((1, [short])))


@pytest.mark.parametrize("blob", [b"not a pickle", pickle.dumps((99, [])), pickle.dumps("text")])
def test_what_is_not_a_packed_batch_is_refused(blob: bytes) -> None:
    with pytest.raises(WireError):
        unpack_ticks(blob)


def test_pack_round_trips_events_and_refuses_what_is_not_bytes() -> None:
    events = {"events": {"a/b/decisions": [{"seq": 1, "data": [1.5, None]}]}, "truncated": []}
    assert unpack(pack(events)) == events
    with pytest.raises(WireError, match="expected packed bytes"):
        unpack({"seq": 1})  # type: ignore[arg-type]


async def test_an_actor_takes_packed_ticks_like_ingest_many_and_refuses_a_bad_blob_whole() -> None:
    hub = StreamHost()
    actor = RegionActor(RegionConfig("acct", "us-east-1", policy="lowest_price"), hub=hub)
    await actor.add_pools([(p.key, 3.06) for p in POOLS])
    summary = await actor.ingest_packed(pack_ticks(ticks()))
    assert summary["started_at_pc"] <= summary["published_at_pc"]
    assert {p["pool"]: p["price_usd_per_hour"] for p in await actor.latest_prices()} == {
        POOLS[0].key: 0.91, POOLS[1].key: 1.25}
    before = actor.engine.snapshot()
    with pytest.raises(WireError):
        await actor.ingest_packed(b"garbage")
    assert actor.engine.snapshot() == before
    assert actor.stats["rejected_batches"] == 1
    assert await hub.last_seq(stream_key("acct", "us-east-1", "prices")) == 2


async def test_a_host_takes_a_packed_tick_and_answers_listens_packed() -> None:
    hub = StreamHost()
    key, alerts = stream_key("acct", "us-east-1"), stream_key("acct", "us-east-1", "alerts")
    tick = {key: [(1, '{"seq":1,"at_s":1.0}')], alerts: [(7, '{"seq":7,"kind":"interruption"}')]}
    assert await hub.publish_packed(pack(tick)) == {key: 1, alerts: 7}
    answer = unpack(await hub.listen_packed({key: 0, alerts: 6}, 0.0))
    assert answer == {"events": tick, "truncated": []}


async def test_a_tick_with_one_stale_seq_is_refused_whole() -> None:
    hub = StreamHost()
    key, alerts = stream_key("acct", "us-east-1"), stream_key("acct", "us-east-1", "alerts")
    await hub.publish_entries({alerts: [(3, "{}")]})
    with pytest.raises(ValueError, match="seq 3 is not after 3"):
        await hub.publish_entries({key: [(1, "{}")], alerts: [(3, "{}")]})
    with pytest.raises(ValueError, match="an entry is"):
        await hub.publish_entries({key: [(1, {"seq": 1})]})  # type: ignore[dict-item]
    assert await hub.streams() == {alerts: 3}  # the decisions of those ticks were not applied either
