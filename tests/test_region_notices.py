"""RegionEngine and a cloud's view of the fleet: per-instance interruption warnings, pool notices that
expire, discovery (joins and leaves) and replacements that arrive under a new instance id."""

from __future__ import annotations

import pytest

from engine.policy import PolicyParams, make_policy
from engine.region import RegionEngine
from engine.types import Action, AvailabilityPoint, Instance, Lifecycle, Pool, PricePoint, Rule

ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")
POOLS = tuple(Pool("m5.large", z) for z in ZONES)
HOLD_S = 600.0


def engine(**params: float) -> RegionEngine:
    e = RegionEngine("us-east-1", policy=make_policy("lowest_price", PolicyParams(**params)))
    for pool in POOLS:
        e.add_pool(pool, 0.096)
    e.observe([PricePoint(p, 0.03 + 0.001 * k, 0.0) for k, p in enumerate(POOLS)], [], now_s=0.0)
    return e


def fleet(*zones: int) -> list[Instance]:
    return [Instance(f"i-{k}", POOLS[z], Lifecycle.SPOT, 0.0) for k, z in enumerate(zones)]


def test_a_warning_interrupts_only_the_named_instance_and_it_moves_elsewhere() -> None:
    e = engine()
    e.sync_fleet(fleet(0, 0), now_s=0.0)
    assert e.report_interruption(["i-0"], now_s=100.0, hold_s=HOLD_S) == ["i-0"]
    assert e.observe([], [], now_s=100.0) == []  # the notice does not reclaim the pool's other instance
    by_id = {d.instance_id: d for d in e.decide(100.0)}
    assert by_id["i-0"].rule is Rule.INTERRUPTED and by_id["i-0"].action is Action.REPLACE
    assert by_id["i-0"].to_pool != POOLS[0]
    assert not e.instances["i-1"].instance.interrupted


def test_a_warning_for_an_unknown_or_on_demand_instance_is_ignored() -> None:
    e = engine()
    e.sync_fleet([Instance("i-od", POOLS[0], Lifecycle.ON_DEMAND, 0.0)], now_s=0.0)
    assert e.report_interruption(["i-gone", "i-od"], now_s=10.0, hold_s=HOLD_S) == []
    assert e.pools[POOLS[0]].available


def test_a_noticed_pool_is_no_placement_until_its_hold_runs_out() -> None:
    e = engine()
    e.notice_unavailable(POOLS[0], now_s=50.0, hold_s=HOLD_S)
    e.observe([], [], now_s=50.0 + HOLD_S - 1)
    assert not e.pools[POOLS[0]].available
    e.observe([], [], now_s=50.0 + HOLD_S)
    assert e.pools[POOLS[0]].available and POOLS[0] not in e.notices


def test_an_availability_observation_replaces_a_notice() -> None:
    e = engine()
    e.notice_unavailable(POOLS[1], now_s=10.0, hold_s=HOLD_S)
    e.observe([], [AvailabilityPoint(POOLS[1], True, 20.0)], now_s=20.0)
    assert e.pools[POOLS[1]].available and POOLS[1] not in e.notices


def test_a_notice_for_an_unknown_pool_or_with_a_bad_hold_is_refused() -> None:
    e = engine()
    with pytest.raises(ValueError, match="unknown pool"):
        e.notice_unavailable(Pool("m5.large", "us-east-1f"), 0.0, HOLD_S)
    with pytest.raises(ValueError, match="hold_s"):
        e.notice_unavailable(POOLS[0], 0.0, -1.0)


def test_discovery_joins_new_instances_drops_gone_ones_and_keeps_known_state() -> None:
    e = engine()
    e.sync_fleet(fleet(0, 1), now_s=0.0)
    e.report_interruption(["i-0"], now_s=5.0, hold_s=HOLD_S)
    joined, left = e.sync_fleet([*fleet(0, 1)[:1], Instance("i-9", POOLS[2], Lifecycle.SPOT, 6.0)], now_s=6.0)
    assert (joined, left) == (["i-9"], ["i-1"])
    assert e.instances["i-0"].instance.interrupted  # a known instance keeps what the engine learned of it
    assert sorted(e.instances) == ["i-0", "i-9"]


def test_discovery_of_an_instance_in_an_unknown_pool_changes_nothing() -> None:
    e = engine()
    e.sync_fleet(fleet(0), now_s=0.0)
    with pytest.raises(ValueError, match="unknown pool"):
        e.sync_fleet([*fleet(0, 1), Instance("i-x", Pool("c5.large", "us-east-1a"))], now_s=1.0)
    assert sorted(e.instances) == ["i-0"]


def test_a_replacement_takes_over_the_instance_state_under_its_new_id() -> None:
    e = engine()
    e.sync_fleet(fleet(0), now_s=0.0)
    e.report_interruption(["i-0"], now_s=10.0, hold_s=HOLD_S)
    decision = next(d for d in e.decide(10.0) if d.instance_id == "i-0")
    moved = e.apply(decision, now_s=10.0)
    e.rename_instance("i-0", "i-new")
    assert "i-0" not in e.instances
    state = e.instances["i-new"]
    assert state.instance.instance_id == "i-new" and state.instance.pool == moved.pool
    assert state.last_move_s == 10.0 and not state.instance.interrupted


def test_a_batch_older_than_the_last_observation_is_refused_whole() -> None:
    e = engine()
    e.observe([], [], now_s=500.0)
    before = [(s.price_usd_per_hour, s.available) for s in e.pools.values()]
    with pytest.raises(ValueError, match="before the last observation"):
        e.observe([PricePoint(POOLS[0], 9.0, 100.0)], [AvailabilityPoint(POOLS[1], False, 100.0)], now_s=100.0)
    assert [(s.price_usd_per_hour, s.available) for s in e.pools.values()] == before
