"""The live demo's fleet never sits whole in one pool the engine rates above 50% risk.

The demo's own policy and parameters drive a RegionEngine (with the models a region actor builds) over
every tick of the bundled replay, in the demo region, applying each decision as the simulated cloud
does; after every tick the fleet is checked against the risk the engine served for that tick.
"""

from __future__ import annotations

import pytest

from actors.demo import DEMO_POLICY, demo_fleet, demo_policy_params
from engine.learning.price import PriceForecaster
from engine.learning.risk import RiskModel
from engine.policy import make_policy
from engine.region import RegionEngine
from engine.traces import bundled_market
from engine.types import Action, AvailabilityPoint, Lifecycle, PricePoint, Rule

REGION = "us-east-1"


@pytest.mark.slow
def test_the_demo_never_puts_its_whole_fleet_in_one_pool_rated_above_half() -> None:
    trace = bundled_market()
    params = demo_policy_params()
    engine = RegionEngine(REGION, policy=make_policy(DEMO_POLICY, params),
                          risk_model=RiskModel(horizon_s=params.risk_horizon_s), price_model=PriceForecaster())
    columns = [i for i, p in enumerate(trace.pools) if p.region == REGION]
    pools = [trace.pools[i] for i in columns]
    assert trace.spot_price is not None and trace.on_demand_usd_per_hour is not None
    for i, pool in zip(columns, pools, strict=True):
        engine.add_pool(pool, float(trace.on_demand_usd_per_hour[i]))
    for instance in demo_fleet(trace, "p3.2xlarge", REGION, 4):
        engine.upsert_instance(instance, trace.start_s)
    moves = spreads = 0
    for t in range(trace.n_ticks):
        now_s = trace.start_s + t * trace.tick_s
        here = list(zip(columns, pools, strict=True))
        engine.observe([PricePoint(p, float(trace.spot_price[t, i]), now_s) for i, p in here],
                       [AvailabilityPoint(p, bool(trace.available[t, i]), now_s) for i, p in here], now_s=now_s)
        for decision in engine.decide(now_s):
            if decision.action is not Action.KEEP:
                engine.apply(decision, now_s)
                moves += 1
                spreads += decision.rule is Rule.SPREAD
        fleet = engine.fleet()
        held = {inst.pool for inst in fleet if inst.lifecycle is Lifecycle.SPOT and not inst.interrupted}
        if len(fleet) == 4 and len(held) == 1 and all(inst.lifecycle is Lifecycle.SPOT for inst in fleet):
            market = engine.market_view(now_s)
            risk = float(market.risk[0, list(market.pools).index(next(iter(held)))])
            assert risk <= 0.5, f"tick {t}: the whole fleet in {next(iter(held)).key} rated {risk:.0%}"
    assert moves > 0  # the fleet did move: the check saw a live fleet, not a frozen one
    assert spreads > 0  # and it was kept apart by spreading, not by luck
