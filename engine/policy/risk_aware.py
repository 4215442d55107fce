"""``risk_aware``: ours. Ranks placements by risk-adjusted expected cost, never worse than AWS's pick.

Expected cost of a spot pool = predicted price + P(interruption per hour) x the expected cost of one
interruption (:mod:`engine.policy.interruption`: the work lost, the restart at the replacement's price, and
the chance the replacement fails too, raised within a zone by the co-failure learned online in
:class:`engine.learning.zones.ZoneCoFailure`).

A Pareto guard keeps it from losing to ``price_capacity_optimized`` in expectation: an instance that must
be placed (interrupted, new, or returning from on-demand) goes to AWS's pick or to a pool predicted no
worse on price, on risk *and* on its long-run record (:class:`engine.learning.pool_hazard.PoolHazard`);
a running instance moves only for a price saving that pays the move, to a pool no worse on risk or record.
Among those, the lowest expected cost wins, through the shared rules (threshold, payback, dwell, budget). Then a
fleet that would sit whole in one pool is spread when that lowers the expected cost
(:mod:`engine.policy.spread`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np

from engine.learning.pool_hazard import PoolHazard
from engine.learning.zones import ZoneCoFailure
from engine.policy.base import Choice, FleetView, FloatArray, MarketView
from engine.policy.interruption import InterruptionCost, clipped_risk, interruption_cost
from engine.policy.price_capacity_optimized import price_capacity_rank
from engine.policy.rules import apply_rules
from engine.policy.spread import SpreadTerms, spread_fleets
from engine.policy.strategy import RankingStrategy, spot_mask, with_on_demand

TIE = 1e-9  # price and risk within this of the reference count as no worse


@dataclass(frozen=True, slots=True, eq=False)
class Plan:
    """What ``risk_aware`` weighs before the shared rules: costs, terms, AWS's pick, the guard."""

    cost: FloatArray  # (N, P + 1) expected cost per hour, every usable placement
    rank: FloatArray  # (N, P + 1) the cost where the Pareto guard allows the placement, else inf
    terms: InterruptionCost
    baseline: np.ndarray  # (N,) price_capacity_optimized's pick (a pool column; P: on-demand)
    guarded: np.ndarray  # (N, P + 1) placements the guard allows


@dataclass(frozen=True, slots=True)
class RiskAware(RankingStrategy):
    name: ClassVar[str] = "risk_aware"
    proactive: ClassVar[bool] = True
    zones: ZoneCoFailure = field(default_factory=ZoneCoFailure, compare=False)
    record: PoolHazard = field(default_factory=PoolHazard, compare=False)

    def __post_init__(self) -> None:
        if self.zones.horizon_s != self.params.risk_horizon_s:
            object.__setattr__(self, "zones", ZoneCoFailure(self.params.risk_horizon_s))
        if self.record.horizon_s != self.params.risk_horizon_s:
            object.__setattr__(self, "record", PoolHazard(self.params.risk_horizon_s))

    def plan(self, market: MarketView, fleet: FleetView, follow: FloatArray | None = None,
             long_run: FloatArray | None = None) -> Plan:
        """Costs and the guard; ``follow`` (M, P) is the zone co-failure, ``long_run`` (M, P) each pool's
        chance of failing within the horizon at its long-run rate (both learned online; None: unknown)."""
        params, n_pools = self.params, market.n_pools
        horizon_h = params.risk_horizon_s / 3600.0
        rows = fleet.market_row
        usable = spot_mask(market, fleet)
        price = market.spot_price[rows]
        risk = clipped_risk(market, fleet)
        terms = interruption_cost(market, fleet, params, usable, follow)
        spot = np.where(usable, price + risk / horizon_h * terms.total_usd, np.inf)
        cost = with_on_demand(spot, fleet.on_demand_price)

        idx = np.arange(fleet.n_instances)
        baseline = np.argmin(price_capacity_rank(market, fleet), axis=1)
        has_spot_baseline = baseline < n_pools
        b = np.minimum(baseline, max(n_pools - 1, 0))
        launch_ok = usable & (price <= price[idx, b][:, None] + TIE) & (risk <= risk[idx, b][:, None] + TIE)
        c = np.maximum(fleet.pool, 0)
        if long_run is not None:
            # Placed now, an instance stays for many horizons: no worse on the pool's record either (NaN,
            # a record not yet known, is never shown to be no worse).
            record = long_run[rows]
            launch_ok &= record <= record[idx, b][:, None] + TIE
        launch_ok[idx, b] = usable[idx, b]
        launch_ok |= usable & ~has_spot_baseline[:, None]
        if not params.pareto_guard:
            launch_ok = usable
        housed = (fleet.pool >= 0) & ~fleet.on_demand & ~fleet.interrupted
        # A running instance moves only for a price saving that clears the threshold and pays back the
        # migration on its own, into a pool no riskier: a move for risk alone buys nothing the bill shows.
        price_c = price[idx, c]
        bar = np.maximum(params.min_saving_usd_per_hour, params.min_saving_fraction * price_c)
        bar = bar + params.restart_hours * 2.0 * price_c / max(params.payback_hours, 1e-9)
        stay_ok = usable & (price <= (price_c - bar)[:, None]) & (risk <= risk[idx, c][:, None] + TIE)
        if long_run is not None:  # a price saving is real money: an unknown record (NaN) does not block it
            stay_ok &= ~(record > record[idx, c][:, None] + TIE)
        if not params.pareto_guard:
            stay_ok = usable
        allowed_spot = np.where(housed[:, None], stay_ok, launch_ok)
        allowed_spot[idx[housed], c[housed]] = True
        guarded = with_on_demand(allowed_spot, np.ones(fleet.n_instances, dtype=bool))
        rank = np.where(guarded, cost, np.inf)
        # An instance being placed leaves AWS's pick only for a clearly lower expected cost (the threshold a
        # voluntary move needs): a small predicted edge is noise, and the baseline is the safe default.
        launching = ~housed & has_spot_baseline & np.isfinite(cost[idx, b]) & params.pareto_guard
        margin = np.maximum(params.min_saving_usd_per_hour, params.min_saving_fraction * np.abs(cost[idx, b]))
        rank[idx[launching], b[launching]] -= margin[launching]
        return Plan(cost, rank, terms, baseline, guarded)

    def rank(self, market: MarketView, fleet: FleetView) -> FloatArray:
        return self.plan(market, fleet).rank

    def decide(self, market: MarketView, fleet: FleetView, now_s: float) -> Choice:
        self.zones.learn_one(market.pools, market.available, now_s)
        follow = self.zones.follow_probability(market.pools)
        self.record.learn_one(market.pools, market.available, now_s)
        long_run = self.record.probability()
        plan = self.plan(market, fleet, follow, long_run)
        choice = apply_rules(market, fleet, self.params, plan.rank, proactive=self.proactive, now_s=now_s,
                             cost=plan.cost)
        choice, spread = spread_fleets(choice, market, fleet, self.params, plan.cost, follow)
        return replace(choice, details=_numbers(plan, spread, market, fleet, follow, long_run))


def _numbers(plan: Plan, spread: SpreadTerms, market: MarketView, fleet: FleetView, follow: FloatArray,
             long_run: FloatArray) -> dict[str, FloatArray]:
    """Everything the decision weighed beyond price and risk, for its explanation (see Choice.details)."""
    t, rows = plan.terms, fleet.market_row
    no_pool = np.full((fleet.n_instances, 1), np.nan)
    on_demand = np.zeros((fleet.n_instances, 1))  # on-demand: no interruption, no record, no follower

    def placements(spot: FloatArray, od: FloatArray) -> FloatArray:
        return np.concatenate([spot, od], axis=1)

    record = placements(long_run[rows], on_demand)
    return {
        "interruption_work_lost_usd": t.work_lost_usd,
        "interruption_restart_usd": placements(t.restart_usd, on_demand),
        "interruption_next_fails": placements(t.next_fails, on_demand),
        "interruption_cost_usd": placements(t.total_usd, on_demand),
        "replacement_price_usd_per_hour": placements(t.replacement_price_usd_per_hour, no_pool),
        "zone_follow": placements(follow[rows], on_demand),
        "long_run_risk": record,
        "baseline_long_run_risk": _at(record, plan.baseline),
        "baseline_price_usd_per_hour": _at(placements(market.spot_price[rows], fleet.on_demand_price[:, None]),
                                           plan.baseline),
        "baseline_risk": _at(placements(clipped_risk(market, fleet), on_demand), plan.baseline),
        "baseline_expected_cost_usd_per_hour": _at(plan.cost, plan.baseline),
        "pareto_guard_allows": plan.guarded.astype(np.float64),
        "spread_outage_saving_usd_per_hour": spread.outage_saving_usd_per_hour,
        "spread_extra_cost_usd_per_hour": spread.extra_cost_usd_per_hour,
    }


def _at(matrix: FloatArray, cols: np.ndarray) -> FloatArray:
    out: FloatArray = matrix[np.arange(matrix.shape[0]), cols]
    return out
