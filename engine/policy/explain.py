"""Turn one row of a :class:`~engine.policy.base.Choice` into a :class:`~engine.types.Decision` that says
why, in numbers: the candidates weighed, their price, risk and expected cost, the saving, the rule."""

from __future__ import annotations

import math

import numpy as np

from engine.policy.base import ACTIONS, RULES, Choice, FleetView, MarketView
from engine.types import Action, Candidate, Decision, Instance, Lifecycle, Pool, Rule

TOP_CANDIDATES = 5


def _finite(value: float) -> float:
    return float(value) if math.isfinite(value) else float("nan")


def _candidate(col: int, row: int, i: int, choice: Choice, market: MarketView, fleet: FleetView,
               here: Pool) -> Candidate:
    n_pools = market.n_pools
    if col == n_pools:
        return Candidate(here, Lifecycle.ON_DEMAND, float(fleet.on_demand_price[i]), 0.0,
                         _finite(choice.expected_cost[i, col]))
    return Candidate(
        market.pools[col],
        Lifecycle.SPOT,
        _finite(market.spot_price[row, col]),
        _finite(market.risk[row, col]),
        _finite(choice.expected_cost[i, col]),
    )


def _describe(placement: Candidate) -> str:
    if placement.lifecycle is Lifecycle.ON_DEMAND:
        return f"on-demand {placement.pool.instance_type} (${placement.price_usd_per_hour:.4f}/h)"
    return (f"spot {placement.pool.key} (${placement.price_usd_per_hour:.4f}/h, "
            f"risk {placement.risk:.0%}/h, expected ${placement.expected_cost_usd_per_hour:.4f}/h)")


REASONS: dict[Rule, str] = {
    Rule.BEST_ALREADY: "keep: {current} is the best placement",
    Rule.BELOW_THRESHOLD: "keep: {best} would save ${gain:.4f}/h, below the threshold",
    Rule.DWELL: "keep: {best} is better, but the instance moved {dwell_min:.0f} min ago (minimum dwell)",
    Rule.BUDGET: "keep: {best} is better, but the fleet's disruption budget for this window is spent",
    Rule.SPREAD: "keep: the better pools already hold the fleet's maximum share",
    Rule.SAVING: "replace: {current} -> {target} saves ${saving:.4f}/h expected",
    Rule.INTERRUPTED: "interrupted in {current_pool}: move to {target}",
    Rule.FALLBACK: "fall back: no spot pool beats on-demand after risk; {current} -> {target}",
    Rule.RETURN: "return to spot: {target} beats on-demand by ${saving:.4f}/h for long enough",
    Rule.WAITING: "keep on-demand: {best} beats it, waiting for the return hysteresis",
    Rule.NO_CAPACITY: "no capacity: no compatible placement is available for {current_pool}",
}


SPREAD_MOVE = ("spread: the rest of the fleet sits in one pool and losing all of it at once costs more than "
               "${saving:.4f}/h here; {current} -> {target}")


def _details(choice: Choice, i: int, current_col: int, target_col: int) -> dict[str, float]:
    """The strategy's own numbers for instance ``i``: per-instance values as they are, per-placement ones
    for its current (``current_``) and target (``target_``) placement."""
    out: dict[str, float] = {}
    for name, values in choice.details.items():
        if values.ndim == 1:
            out[name] = float(values[i])
        else:
            out[f"current_{name}"] = float(values[i, current_col])
            out[f"target_{name}"] = float(values[i, target_col])
    return out


def explain(
    choice: Choice,
    i: int,
    instance: Instance,
    market: MarketView,
    fleet: FleetView,
    *,
    now_s: float,
    policy: str,
) -> Decision:
    """The decision for instance ``i`` of the batch, with its explanation."""
    n_pools = market.n_pools
    row = int(fleet.market_row[i])
    here = instance.pool
    current_col = n_pools if fleet.on_demand[i] else int(fleet.pool[i])
    target_col = n_pools if choice.target_on_demand[i] else int(choice.target_pool[i])
    ranked = np.argsort(choice.rank[i], kind="stable")
    order: list[int] = ranked[np.isfinite(choice.rank[i, ranked])].tolist()
    shown = list(dict.fromkeys([*order[:TOP_CANDIDATES], current_col, target_col, n_pools]))
    by_col = {c: _candidate(c, row, i, choice, market, fleet, here) for c in shown}
    # Only real candidates are listed (a pool that was taken back is not one); JSON has no inf or NaN.
    candidates = tuple(v for c, v in by_col.items() if math.isfinite(choice.expected_cost[i, c]))
    best_other = next((c for c in order if c != current_col), target_col)
    current, target, best = by_col[current_col], by_col[target_col], by_col[best_other]
    rule = RULES[int(choice.rule[i])]
    action = ACTIONS[int(choice.action[i])]
    saving = float(choice.saving_usd_per_hour[i])
    gain = (current.expected_cost_usd_per_hour - best.expected_cost_usd_per_hour)
    template = SPREAD_MOVE if rule is Rule.SPREAD and action is not Action.KEEP else REASONS[rule]
    reason = template.format(
        current=_describe(current), target=_describe(target), best=_describe(best), saving=saving,
        gain=gain if math.isfinite(gain) else 0.0, current_pool=here.key,
        dwell_min=max(0.0, (now_s - float(fleet.last_move_s[i])) / 60.0),
    )
    raw_numbers = {
        "current_price_usd_per_hour": current.price_usd_per_hour,
        "current_risk": current.risk,
        "current_expected_cost_usd_per_hour": current.expected_cost_usd_per_hour,
        "target_price_usd_per_hour": target.price_usd_per_hour,
        "target_risk": target.risk,
        "target_expected_cost_usd_per_hour": target.expected_cost_usd_per_hour,
        "on_demand_usd_per_hour": float(fleet.on_demand_price[i]),
        "saving_usd_per_hour": saving,
        "budget_left": float(fleet.budget_left[int(fleet.fleet[i])]),
    }
    raw_numbers.update(_details(choice, i, current_col, target_col))
    numbers = {k: v for k, v in raw_numbers.items() if math.isfinite(v)}
    to_lifecycle = Lifecycle.ON_DEMAND if choice.target_on_demand[i] else Lifecycle.SPOT
    return Decision(
        instance_id=instance.instance_id,
        action=action,
        rule=rule,
        reason=reason,
        decided_at_s=now_s,
        from_pool=here,
        from_lifecycle=instance.lifecycle,
        to_pool=target.pool,
        to_lifecycle=to_lifecycle,
        saving_usd_per_hour=saving,
        numbers=numbers,
        candidates=candidates,
        policy=policy,
    )
