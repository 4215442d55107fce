"""RegionEngine: whole-batch validation, interruption handling, trajectories on real prices, checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.policy import PolicyParams, make_policy
from engine.region import BatchRejected, RegionEngine
from engine.traces import load_availability, load_joint_prices
from engine.types import Action, AvailabilityPoint, Instance, Lifecycle, Pool, PricePoint, Rule

ZONES = ("us-east-1a", "us-east-1c", "us-east-1d")
POOLS = tuple(Pool("p3.2xlarge", z) for z in ZONES)


def engine(policy: str = "lowest_price", **params: float) -> RegionEngine:
    e = RegionEngine("us-east-1", policy=make_policy(policy, PolicyParams(**params)))
    for pool in POOLS:
        e.add_pool(pool, 3.06)
    return e


def prices(values: list[float], at_s: float = 0.0) -> list[PricePoint]:
    return [PricePoint(p, v, at_s) for p, v in zip(POOLS, values, strict=True)]


def test_a_bad_batch_is_rejected_whole_and_changes_nothing() -> None:
    e = engine()
    e.observe(prices([1.0, 1.1, 1.2]), [], now_s=0.0)
    before = e.snapshot()
    bad = [*prices([0.5, 0.6, 0.7], at_s=10.0), PricePoint(POOLS[0], float("nan"), 10.0)]
    with pytest.raises(BatchRejected, match=r"prices\[3\]: field 'price_usd_per_hour'"):
        e.observe(bad, [AvailabilityPoint(POOLS[0], False, 10.0)], now_s=10.0)
    assert e.snapshot() == before
    assert [p.price_usd_per_hour for p in e.latest_prices()] == [1.0, 1.1, 1.2]


def test_an_unknown_pool_names_the_entry_and_field() -> None:
    e = engine()
    with pytest.raises(BatchRejected, match=r"availability\[0\]: field 'pool'"):
        e.observe([], [AvailabilityPoint(Pool("p3.2xlarge", "us-east-1f"), True, 0.0)], now_s=0.0)


def test_an_unavailable_pool_interrupts_its_spot_instances_and_they_move() -> None:
    e = engine()
    e.observe(prices([1.0, 1.1, 1.2]), [], now_s=0.0)
    e.upsert_instance(Instance("i-1", POOLS[0], launched_at_s=0.0), now_s=0.0)
    e.upsert_instance(Instance("i-2", POOLS[1], lifecycle=Lifecycle.ON_DEMAND, launched_at_s=0.0), now_s=0.0)
    interrupted = e.observe([], [AvailabilityPoint(POOLS[0], False, 60.0)], now_s=60.0)
    assert interrupted == ["i-1"]
    decisions = {d.instance_id: d for d in e.decide(now_s=60.0)}
    assert decisions["i-1"].action is Action.REPLACE
    assert decisions["i-1"].rule is Rule.INTERRUPTED
    assert decisions["i-1"].to_pool == POOLS[1]
    assert "interrupted" in decisions["i-1"].reason
    e.apply(decisions["i-1"], now_s=60.0)
    assert e.fleet()[0].pool == POOLS[1]
    assert not e.fleet()[0].interrupted


def test_decisions_explain_themselves_with_finite_numbers() -> None:
    e = engine()
    e.observe(prices([1.0, 0.5, 1.2]), [], now_s=0.0)
    e.upsert_instance(Instance("i-1", POOLS[0], launched_at_s=-1e6), now_s=0.0)
    (decision,) = e.decide(now_s=0.0)
    assert decision.action is Action.REPLACE
    assert decision.saving_usd_per_hour == pytest.approx(0.5)
    assert {c.pool for c in decision.candidates} >= set(POOLS)
    assert all(math.isfinite(v) for v in decision.numbers.values())
    assert "$0.5000/h" in decision.reason


def test_snapshot_restores_an_identical_engine() -> None:
    e = engine()
    e.observe(prices([1.0, 0.5, 1.2]), [AvailabilityPoint(POOLS[2], False, 0.0)], now_s=0.0)
    e.upsert_instance(Instance("i-1", POOLS[0]), now_s=0.0)
    clone = RegionEngine.restore(e.snapshot())
    assert [d.to_pool for d in clone.decide(10.0)] == [d.to_pool for d in e.decide(10.0)]
    with pytest.raises(ValueError, match="version"):
        RegionEngine.restore(b"\x80\x04N.")


def test_on_real_prices_the_fleet_follows_interruptions_without_flapping(shared_data) -> None:
    """Drive the engine through two real days of us-east-1 p3.2xlarge history and check the trajectory."""
    trace = load_joint_prices(
        shared_data / "traces/prices_p3.2xlarge_2023-02-15.json.gz",
        load_availability(shared_data / "traces/availability_aws_2023-02-15.json.gz"),
    )
    cols = [i for i, p in enumerate(trace.pools) if p.region == "us-east-1"]
    e = RegionEngine("us-east-1", policy=make_policy("lowest_price", PolicyParams(min_dwell_s=3600.0)))
    for c in cols:
        e.add_pool(trace.pools[c], 3.06)
    for k, c in enumerate(cols):
        e.upsert_instance(Instance(f"i-{k}", trace.pools[c], launched_at_s=trace.start_s), now_s=trace.start_s)
    moves: dict[str, list[float]] = {}
    actions: set[Action] = set()
    for t in range(0, 2 * 24 * 3600 // int(trace.tick_s)):
        now = trace.timestamp_s(t)
        e.observe(
            [PricePoint(trace.pools[c], float(trace.spot_price[t, c]), now) for c in cols],
            [AvailabilityPoint(trace.pools[c], bool(trace.available[t, c]), now) for c in cols],
            now_s=now,
        )
        for d in e.decide(now):
            if d.action is not Action.KEEP:
                actions.add(d.action)
                if d.rule is not Rule.INTERRUPTED:
                    moves.setdefault(d.instance_id, []).append(now)
                e.apply(d, now)
        # No spot instance is left sitting in a pool that took its capacity back.
        for inst in e.fleet():
            assert inst.lifecycle is Lifecycle.ON_DEMAND or e.pools[inst.pool].available
    assert Action.FALLBACK_ON_DEMAND in actions or Action.REPLACE in actions
    for times in moves.values():  # voluntary moves respect the dwell time: no flapping
        assert np.all(np.diff(times) >= 3600.0)
