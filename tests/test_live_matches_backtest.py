"""The live RegionEngine and the fleet simulator decide alike, tick for tick, on a recorded trace.

Both keep their fleet in one FleetState; this feeds the same ticks of the bundled p3.2xlarge history (the
us-east-1 pools) to a RegionEngine (observe, decide, carry out every decision) and to simulate_fleet
(a decision every tick), with the same precomputed risk and the same policy, and compares every tick:
each instance's action, rule, target and resulting placement, and the fleet's disruption budget left,
through a budget that binds and interruptions.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from engine.fleet_state import FleetState
from engine.learning.series import risk_series
from engine.market import MarketTrace
from engine.policy import PolicyParams, make_policy
from engine.policy.base import ACTIONS, RULES, Choice
from engine.region import RegionEngine
from engine.sim.fleet import FleetMarket, simulate_fleet
from engine.traces import bundled_market
from engine.types import Action, AvailabilityPoint, Instance, Lifecycle, PricePoint, Rule

REGION = "us-east-1"
ON_DEMAND_USD = 3.06
FLEET_SIZE = 6
# A tight budget (one voluntary move per fleet in any 30 minutes) and no dwell, so the budget binds.
PARAMS = PolicyParams(budget_per_window=1, budget_window_s=1800.0, min_dwell_s=0.0, return_after_s=600.0)
START, N_TICKS = 4200, 400  # ~22 h of the bundled history (195 s ticks) with outages in the fleet's pools


@dataclass(frozen=True)
class Tick:
    """One tick as either side saw it: per instance, what was decided and where it runs after."""

    actions: tuple[Action, ...]
    rules: tuple[Rule, ...]
    placements: tuple[tuple[str, Lifecycle, bool], ...]  # (pool key, lifecycle, interrupted) after the tick
    budget_left: int  # the fleet's voluntary moves still allowed once the tick's moves are made


class ReplayedRisk:
    """The live engine's risk model, answering with the simulator's precomputed risk of the same tick."""

    def __init__(self, risk: np.ndarray, tick_of: Mapping[float, int]) -> None:
        self.risk, self.tick_of = risk, tick_of

    def observe_keys(self, now_s: float, pool_keys: Sequence[str], unavailable: Any,
                     extras: Mapping[str, Any] | None = None) -> None:
        return None

    def predict(self, now_s: float, pool_keys: Sequence[str]) -> Any:
        return self.risk[self.tick_of[now_s]]


@pytest.fixture(scope="module")
def market() -> FleetMarket:
    whole = bundled_market()
    trace = whole.select([i for i, p in enumerate(whole.pools) if p.region == REGION])
    trace = MarketTrace(trace.pools, trace.start_s, trace.tick_s, trace.available, trace.spot_price,
                        np.full(trace.n_pools, ON_DEMAND_USD))
    return FleetMarket.of(trace, risk_series(trace), PARAMS.risk_horizon_s)


def simulated(market: FleetMarket, policy: str) -> tuple[list[Tick], FleetState]:
    """Every tick of the simulated run, and its fleet state after the first tick."""
    trace, params = market.trace, PARAMS
    ticks: list[Tick] = []
    first: list[FleetState] = []

    def record(step: int, now_s: float, state: FleetState, choice: Choice | None) -> None:
        assert choice is not None  # a decision every tick
        if step == 0:
            first.append(copy.deepcopy(state))
        ticks.append(Tick(
            tuple(ACTIONS[int(a)] for a in choice.action),
            tuple(RULES[int(r)] for r in choice.rule),
            tuple((trace.pools[int(p)].key, Lifecycle.ON_DEMAND if od else Lifecycle.SPOT, bool(i))
                  for p, od, i in zip(state.pool, state.on_demand, state.interrupted, strict=True)),
            int(state.budget_left(now_s, params)[0]),
        ))

    simulate_fleet(market, make_policy(policy, params), np.array([START]), N_TICKS, FLEET_SIZE,
                   decision_interval_s=0, on_tick=record)
    return ticks, first[0]


def live(market: FleetMarket, policy: str, first: Tick, first_state: FleetState) -> list[Tick]:
    """The live engine, observing the trace from its first tick (so its capacity scores are the simulator's)
    and deciding from the run's first tick (so a policy that learns as it decides sees what the simulator's
    saw). The simulator's new instances have no pool at the first tick, which a live instance always has:
    the engine's fleet starts as the simulator's stood after that tick."""
    trace = market.trace
    now_of = trace.start_s + (np.arange(START + N_TICKS) - START) * trace.tick_s  # the simulator's clock
    tick_of = {float(now): tick for tick, now in enumerate(now_of)}
    engine = RegionEngine(REGION, policy=make_policy(policy, PARAMS), risk_model=ReplayedRisk(market.risk, tick_of))
    for pool in trace.pools:
        engine.add_pool(pool, ON_DEMAND_USD)
    by_key = {p.key: p for p in trace.pools}
    ticks = []
    for tick in range(START + N_TICKS):
        now = float(now_of[tick])
        engine.observe(
            [PricePoint(p, float(market.spot_price[tick, c]), now) for c, p in enumerate(trace.pools)],
            [AvailabilityPoint(p, bool(trace.available[tick, c]), now) for c, p in enumerate(trace.pools)],
            now_s=now,
        )
        if tick < START:
            continue
        if tick == START:
            for k, (key, lifecycle, _) in enumerate(first.placements):
                engine.upsert_instance(Instance(f"i-{k:02d}", by_key[key], lifecycle, now), now)
            engine.decide(now)
            engine.fleet_state = copy.deepcopy(first_state)  # instance i-0k is row k, fleet 0 is "default"
            ticks.append(first)
            continue
        decisions = engine.decide(now)
        for decision in decisions:
            engine.apply(decision, now)  # every decision is carried out (a KEEP changes nothing)
        ticks.append(Tick(
            tuple(d.action for d in decisions),
            tuple(d.rule for d in decisions),
            tuple((i.pool.key, i.lifecycle, i.interrupted) for i in engine.fleet()),
            int(engine.fleet_state.budget_left(now, PARAMS)[0]),
        ))
    return ticks


@pytest.mark.parametrize("policy", ["risk_aware", "lowest_price", "reactive", "price_capacity_optimized"])
def test_live_and_simulated_decisions_agree_tick_for_tick(market: FleetMarket, policy: str) -> None:
    backtest, first_state = simulated(market, policy)
    assert len(backtest) == N_TICKS
    running = live(market, policy, backtest[0], first_state)
    for step, (want, got) in enumerate(zip(backtest, running, strict=True)):
        assert got == want, f"{policy}: tick {step} differs"
    rules = [r for tick in backtest for r in tick.rules]
    # The scenario proves what it claims: instances were interrupted, and the budget ran out and refused
    # voluntary moves (returns to spot, for the reactive policy).
    assert Rule.INTERRUPTED in rules, policy
    assert Rule.BUDGET in rules, policy
    assert min(tick.budget_left for tick in backtest) == 0
