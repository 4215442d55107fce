"""The fleet kernel on tiny hand-made markets: it drives the live policies and plays the cloud honestly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.fleet_state import FleetState
from engine.learning.series import risk_series
from engine.market import MarketTrace
from engine.policy import PolicyParams, make_policy
from engine.policy.base import ACTION_CODE, Choice
from engine.sim.fleet import FleetMarket, fleet_metrics, simulate_fleet
from engine.traces import load_availability
from engine.types import Action, Pool

POOLS = (Pool("m5.large", "us-east-1a"), Pool("m5.large", "us-east-1b"))


def market(
    available: list[list[bool]], prices: list[list[float]] | None = None, tick_s: float = 600.0, on_demand: float = 1.0
) -> FleetMarket:
    avail = np.array(available, dtype=bool)
    spot = np.array(prices, dtype=float) if prices is not None else np.full(avail.shape, 0.3)
    trace = MarketTrace(POOLS, 0.0, tick_s, avail, spot, np.full(2, on_demand))
    return FleetMarket.of(trace, np.where(avail, 0.05, 1.0), 3600.0)


def test_on_demand_policy_costs_exactly_the_on_demand_cost() -> None:
    m = market([[True, True]] * 12)
    out = simulate_fleet(m, make_policy("on_demand"), np.array([0, 2]), 10, 3)
    metrics = fleet_metrics(out)
    assert metrics["total_cost"] == pytest.approx(metrics["on_demand_cost"])
    assert metrics["total_cost"] == pytest.approx(2 * 3 * 10 / 6 * 1.0)
    assert metrics["savings_pct"] == pytest.approx(0.0)
    assert metrics["availability"] == 1.0
    assert metrics["interruptions"] == 0


def test_an_interruption_is_counted_and_costs_the_restart_downtime() -> None:
    # pool a is cheapest, and goes away at tick 3 for good; b stays
    avail = [[True, True]] * 3 + [[False, True]] * 5
    prices = [[0.2, 0.4]] * 8
    m = market(avail, prices)
    params = PolicyParams(restart_hours=0.05)  # 3 minutes of a 10-minute tick
    out = simulate_fleet(m, make_policy("reactive", params), np.array([0]), 8, 1)
    metrics = fleet_metrics(out)
    assert metrics["interruptions"] == 1
    assert metrics["replacements"] == 1
    assert metrics["fallbacks"] == 0
    assert metrics["availability"] == pytest.approx(1 - 180 / (8 * 600))
    # 3 ticks in a at 0.2, 5 ticks in b at 0.4 (down but paying during the restart)
    assert metrics["total_cost"] == pytest.approx((3 * 0.2 + 5 * 0.4) / 6, abs=1e-4)


def test_no_spot_anywhere_falls_back_to_on_demand() -> None:
    avail = [[True, True]] * 2 + [[False, False]] * 4
    m = market(avail)
    out = simulate_fleet(m, make_policy("lowest_price"), np.array([0]), 6, 2)
    metrics = fleet_metrics(out)
    assert metrics["interruptions"] == 2
    assert metrics["fallbacks"] == 2
    assert metrics["availability"] < 1.0


def test_every_policy_runs_and_spot_saves_when_spot_is_cheap() -> None:
    rng = np.random.default_rng(0)
    avail = (rng.random((200, 2)) < 0.9).tolist()
    m = market(avail)
    for name in ("risk_aware", "lowest_price", "capacity_optimized", "price_capacity_optimized", "reactive"):
        metrics = fleet_metrics(simulate_fleet(m, make_policy(name), np.array([0, 50, 100]), 90, 4))
        assert metrics["savings_pct"] > 30, name
        assert 0.9 < metrics["availability"] <= 1.0, name


def test_a_p3_fleet_on_the_mixed_2022_bundle_never_lands_in_a_p2_pool(shared_data: Path) -> None:
    trace = load_availability(shared_data / "traces" / "availability_aws_2022-10-26.json.gz")
    m = FleetMarket.of(trace, risk_series(trace), 3600.0, 0.9, 3.06, instance_type="p3.2xlarge")
    assert [p.instance_type for p, ok in zip(trace.pools, m.compatible, strict=True) if ok] == ["p3.2xlarge"] * 2
    starts = np.random.default_rng(0).integers(0, trace.n_ticks - 300, 6)
    for name in ("risk_aware", "lowest_price", "capacity_optimized", "reactive"):
        out = simulate_fleet(m, make_policy(name), starts, 300, 4)
        by_type: dict[str, float] = {}
        for p, hours in zip(trace.pools, out.spot_hours_by_pool.sum(axis=0), strict=True):
            by_type[p.instance_type] = by_type.get(p.instance_type, 0.0) + float(hours)
        assert by_type["p2.xlarge"] == by_type["p2.8xlarge"] == by_type["p3.16xlarge"] == 0.0, name
        assert by_type["p3.2xlarge"] > 0, name


def test_the_default_fleet_type_is_the_bundles_most_common_and_unknown_types_are_refused() -> None:
    trace = MarketTrace(
        (Pool("p2.xlarge", "us-west-2a"), Pool("p3.2xlarge", "us-west-2a"), Pool("p3.2xlarge", "us-west-2b")),
        0.0,
        600.0,
        np.ones((5, 3), bool),
        np.full((5, 3), 0.5),
        np.full(3, 3.0),
    )
    m = FleetMarket.of(trace, np.zeros((5, 3)), 3600.0)
    assert m.instance_type == "p3.2xlarge"
    assert m.compatible.tolist() == [False, True, True]
    with pytest.raises(ValueError, match=r"no pool of the trace can run m5\.large"):
        FleetMarket.of(trace, np.zeros((5, 3)), 3600.0, instance_type="m5.large")


def test_new_instances_are_placed_by_the_policy_itself_in_the_cheapest_pool() -> None:
    m = market([[True, True]] * 4, [[0.5, 0.2]] * 4)
    out = simulate_fleet(m, make_policy("lowest_price"), np.array([0]), 4, 3)
    assert out.spot_hours_by_pool[0].tolist() == pytest.approx([0.0, 3 * 4 / 6])
    assert int(out.replacements[0]) == 0  # the first placement is a launch, not a replacement


def test_decision_interval_delays_voluntary_moves_but_never_interruptions() -> None:
    # b becomes much cheaper at tick 1; a disappears at tick 3
    avail = [[True, True]] * 3 + [[False, True]] * 5
    prices = [[0.3, 0.3]] + [[0.3, 0.1]] * 7
    m = market(avail, prices)
    params = PolicyParams(min_dwell_s=0.0)
    every_tick = simulate_fleet(m, make_policy("risk_aware", params), np.array([0]), 8, 1, decision_interval_s=0)
    slow = simulate_fleet(m, make_policy("risk_aware", params), np.array([0]), 8, 1, decision_interval_s=3600)
    # every tick: moves to b at tick 1, never interrupted; hourly: still in a at tick 3, interrupted, moved at once
    assert int(every_tick.interruptions[0]) == 0
    assert int(slow.interruptions[0]) == 1
    assert slow.spot_hours_by_pool[0, 1] == pytest.approx(5 / 6)  # placed in b the tick a went away


def test_the_simulated_budget_is_a_sliding_window_as_live() -> None:
    # The cheap pool alternates every tick, so lowest_price wants a voluntary move at every tick; one move
    # per 30 minutes (3 ticks of 10 minutes) is allowed. A move at tick 1 counts until tick 4 exactly: a
    # sliding window, not one that resets every 30 minutes (which would allow the next move at tick 3).
    prices = [[0.2, 0.4] if t % 2 == 0 else [0.4, 0.2] for t in range(12)]
    m = market([[True, True]] * 12, prices)
    params = PolicyParams(min_dwell_s=0.0, budget_per_window=1, budget_window_s=1800.0)
    moved_at: list[int] = []
    left: list[int] = []

    def record(step: int, now_s: float, state: FleetState, choice: Choice | None) -> None:
        assert choice is not None
        if step and (choice.action != ACTION_CODE[Action.KEEP]).any():
            moved_at.append(step)
        left.append(int(state.budget_left(now_s, params)[0]))

    out = simulate_fleet(m, make_policy("lowest_price", params), np.array([0]), 12, 1, decision_interval_s=0,
                         on_tick=record)
    assert moved_at == [1, 4, 7, 10]
    assert left == [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert int(out.replacements[0]) == 4
