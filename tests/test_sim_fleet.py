"""The fleet kernel on tiny hand-made markets: it drives the live policies and plays the cloud honestly."""

from __future__ import annotations

import numpy as np
import pytest

from engine.market import MarketTrace
from engine.policy import PolicyParams, make_policy
from engine.sim.fleet import FleetMarket, fleet_metrics, simulate_fleet
from engine.types import Pool

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
