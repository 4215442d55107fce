"""Spread a fleet when holding all of it in one pool costs more, in expectation, than moving one out.

Interruptions one at a time degrade a fleet; the whole fleet in one pool is lost at once, and then
nothing serves while everything restarts. That outage costs ``fleet_outage_weight`` times the fleet's
work lost on top of the interruptions themselves (which the expected cost already counts). One
instance elsewhere, in a pool ``q``, prevents it unless ``q`` fails too: the expected saving per hour is

    risk(p) / horizon x (1 - P(q fails | p failed)) x outage cost

where ``P(q fails | p failed)`` is ``q``'s risk, raised by the zone's learned co-failure when ``q`` shares
``p``'s zone (on-demand never fails). It is weighed against what the instance pays more in ``q`` (its
expected cost, plus the migration when it would not move anyway, and only when the disruption
budget allows). The best such instance per fleet moves; the rule says ``spread``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from engine.learning.zones import zone_index
from engine.policy.base import (
    ACTION_CODE,
    RULE_CODE,
    BoolArray,
    Choice,
    FleetView,
    FloatArray,
    IntArray,
    MarketView,
    PolicyParams,
)
from engine.policy.interruption import clipped_risk, with_zone_follow, work_lost_usd
from engine.types import Action, Rule


@dataclass(frozen=True, slots=True, eq=False)
class SpreadTerms:
    """Per instance: the fleet-outage saving and the extra cost of moving it out (NaN: not weighed)."""

    outage_saving_usd_per_hour: FloatArray  # (N,)
    extra_cost_usd_per_hour: FloatArray  # (N,)
    spread: BoolArray  # (N,) moved out to spread its fleet


def _concentrated(fleet: FleetView, target: IntArray, n_pools: int) -> tuple[BoolArray, IntArray]:
    """Per fleet: all of it (two or more) targets one spot pool; and which pool (-1: none)."""
    sizes = np.bincount(fleet.fleet, minlength=fleet.n_fleets)
    key = np.where(target < n_pools, target, -1)
    lo = np.full(fleet.n_fleets, np.iinfo(np.intp).max, dtype=np.intp)
    hi = np.full(fleet.n_fleets, -1, dtype=np.intp)
    np.minimum.at(lo, fleet.fleet, key)
    np.maximum.at(hi, fleet.fleet, key)
    concentrated = (lo == hi) & (lo >= 0) & (sizes >= 2)
    return concentrated, np.where(concentrated, lo, -1)


@np.errstate(invalid="ignore")
def spread_fleets(
    choice: Choice,
    market: MarketView,
    fleet: FleetView,
    params: PolicyParams,
    cost: FloatArray,
    follow: FloatArray | None = None,
) -> tuple[Choice, SpreadTerms]:
    """``choice`` with, per fleet that would sit whole in one pool, one instance moved out when that lowers
    the expected cost; ``cost`` is the (N, P + 1) expected cost the choice was made with."""
    n, n_pools = fleet.n_instances, market.n_pools
    nan = np.full(n, np.nan)
    none = SpreadTerms(nan, nan.copy(), np.zeros(n, dtype=bool))
    target = np.where(choice.target_on_demand, n_pools, choice.target_pool).astype(np.intp)
    concentrated, pool_of_fleet = _concentrated(fleet, target, n_pools)
    if params.fleet_outage_weight <= 0 or not concentrated.any():
        return choice, none
    idx = np.arange(n)
    member = concentrated[fleet.fleet]
    p = np.where(member, pool_of_fleet[fleet.fleet], 0)
    current = np.where(fleet.on_demand, n_pools, fleet.pool)
    moving = target != current

    staying = ~moving
    migration = params.restart_hours * 2.0 * np.abs(cost[idx, p]) / max(params.payback_hours, 1e-9)
    extra_all = cost - cost[idx, p][:, None] + np.where(staying, migration, 0.0)[:, None]  # (N, P + 1)
    risk = clipped_risk(market, fleet)
    cond = np.concatenate([risk, np.zeros((n, 1))], axis=1)  # on-demand never fails
    if follow is not None and n_pools:
        zone, _ = zone_index(market.pools)
        same = np.zeros((n, n_pools + 1), dtype=bool)
        same[:, :n_pools] = zone[None, :] == zone[p][:, None]
        f = np.concatenate([follow[fleet.market_row], np.zeros((n, 1))], axis=1)
        cond = np.where(same, with_zone_follow(cond, f), cond)
    work_lost = work_lost_usd(params, fleet.on_demand_price)
    outage = params.fleet_outage_weight * np.bincount(fleet.fleet, weights=work_lost, minlength=fleet.n_fleets)
    horizon_h = params.risk_horizon_s / 3600.0
    saving_all = (risk[idx, p] / horizon_h * outage[fleet.fleet])[:, None] * (1.0 - cond)
    net_all = np.where(np.isfinite(extra_all), saving_all - extra_all, -np.inf)
    net_all[idx, p] = -np.inf
    q = np.argmax(net_all, axis=1)
    extra, saving = extra_all[idx, q], saving_all[idx, q]

    voluntary_moves = np.bincount(fleet.fleet[moving & ~fleet.interrupted], minlength=fleet.n_fleets)
    budget_ok = (fleet.budget_left - voluntary_moves)[fleet.fleet] > 0
    net = saving - extra
    # Dwell time guards against flapping on price; a spread move is not undone by price, so only the
    # budget limits it.
    eligible = member & np.isfinite(extra) & (saving > 0) & (net > 0) & (moving | (budget_ok & ~fleet.on_demand))
    terms = SpreadTerms(np.where(member, saving, np.nan), np.where(member, extra, np.nan), np.zeros(n, dtype=bool))
    if not eligible.any():
        return choice, terms
    cand = np.flatnonzero(eligible)
    order = np.lexsort((-net[cand], fleet.fleet[cand]))
    cand = cand[order]
    first = np.r_[True, fleet.fleet[cand][1:] != fleet.fleet[cand][:-1]]
    chosen = cand[first]

    new_q = q[chosen]
    to_od = new_q == n_pools
    from_od = fleet.on_demand[chosen]
    stays = new_q == current[chosen]
    action, rule = choice.action.copy(), choice.rule.copy()
    action[chosen] = np.select([stays, from_od, to_od],
                               [ACTION_CODE[Action.KEEP], ACTION_CODE[Action.RETURN_TO_SPOT],
                                ACTION_CODE[Action.FALLBACK_ON_DEMAND]], ACTION_CODE[Action.REPLACE])
    rule[chosen] = RULE_CODE[Rule.SPREAD]
    target_pool = choice.target_pool.copy()
    target_pool[chosen] = np.where(to_od, fleet.pool[chosen], new_q)
    target_od = choice.target_on_demand.copy()
    target_od[chosen] = to_od
    saving_now = choice.saving_usd_per_hour.copy()
    gained = cost[chosen, np.maximum(current[chosen], 0)] - cost[chosen, new_q]
    saving_now[chosen] = np.where(stays | (current[chosen] < 0) | ~np.isfinite(gained), 0.0, gained)
    better = choice.spot_better_since_s.copy()
    better[chosen] = np.where(from_od & ~stays, np.nan, better[chosen])
    spread = terms.spread.copy()
    spread[chosen] = True
    out = replace(choice, target_pool=target_pool, target_on_demand=target_od, action=action, rule=rule,
                  saving_usd_per_hour=saving_now, spot_better_since_s=better)
    return out, replace(terms, spread=spread)
