"""The fleet workload: keep ``N`` interchangeable instances running across a region's pools.

Each run is one fleet starting at its own tick of the history; all runs advance together, and every tick
the *live* policy objects (:func:`engine.policy.make_policy`) decide for every instance of every run in
one vectorized call (market rows = runs, fleets = runs). The kernel plays the cloud:

* a spot instance whose pool is unavailable at a tick is interrupted: it is down, and its replacement
  (wherever the policy puts it) is down and paying for the restart overhead;
* a voluntary move (the policy's own choice) keeps the old instance serving while the new one starts, so
  both are paid for the restart overhead and nothing goes down;
* voluntary moves spend the fleet's disruption budget for the current window (interruptions do not);
* each tick is billed per second at the pool's spot price (or on-demand) of that tick.

Availability is the fraction of instance-hours actually up. The on-demand cost is what ``N`` on-demand
instances would have cost over the same hours.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.market import MarketTrace
from engine.policy import Choice, FleetView, MarketView, Policy
from engine.policy.base import ACTION_CODE
from engine.types import Action, Pool

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

KEEP = ACTION_CODE[Action.KEEP]


@dataclass(frozen=True, slots=True, eq=False)
class FleetMarket:
    """What the fleet kernel needs of a trace: (T, P) arrays aligned on ticks."""

    trace: MarketTrace
    spot_price: FloatArray  # (T, P)
    on_demand_price: FloatArray  # (P,)
    risk: FloatArray  # (T, P) causal P(unavailable within the horizon)
    capacity_score: FloatArray  # (T, P) recent availability share

    @classmethod
    def of(
        cls,
        trace: MarketTrace,
        risk: FloatArray,
        horizon_s: float,
        spot_price: float | None = None,
        on_demand_price: float | None = None,
    ) -> FleetMarket:
        """Fill in prices (constants where the trace has none) and the capacity score."""
        if spot_price is not None:
            spot = np.full(trace.available.shape, float(spot_price))
        elif trace.spot_price is not None:
            spot = trace.spot_price
        else:
            raise ValueError("the trace has no spot prices: pass a price file or a constant spot price")
        if on_demand_price is not None:
            od = np.full(trace.n_pools, float(on_demand_price))
        elif trace.on_demand_usd_per_hour is not None:
            od = trace.on_demand_usd_per_hour
        else:
            raise ValueError("the on-demand price is unknown: pass a constant on-demand price")
        if risk.shape != trace.available.shape:
            raise ValueError(f"risk shape {risk.shape} != availability {trace.available.shape}")
        return cls(trace, spot, od, risk, recent_share(trace.available, max(1, round(horizon_s / trace.tick_s))))


def recent_share(available: npt.NDArray[np.bool_], window: int) -> FloatArray:
    """Causal share of the last ``window`` ticks (this one included) a pool was available.

    >>> recent_share(np.array([[True], [False], [False], [True]]), 2).ravel().tolist()
    [1.0, 0.5, 0.0, 0.5]
    """
    c = np.cumsum(np.vstack([np.zeros((1, available.shape[1])), available]), axis=0)
    t = np.arange(1, available.shape[0] + 1)
    lo = np.maximum(0, t - window)
    share: FloatArray = (c[t] - c[lo]) / (t - lo)[:, None]
    return share


@dataclass(frozen=True, slots=True, eq=False)
class FleetOutcome:
    """Per-run totals of one policy."""

    policy: str
    cost_usd: FloatArray  # (R,)
    on_demand_cost_usd: FloatArray  # (R,)
    interruptions: IntArray
    replacements: IntArray
    fallbacks: IntArray
    up_hours: FloatArray
    instance_hours: FloatArray

    @property
    def n_runs(self) -> int:
        return int(self.cost_usd.shape[0])


def simulate_fleet(
    market: FleetMarket,
    policy: Policy,
    starts: npt.NDArray[np.int64],
    n_ticks: int,
    fleet_size: int,
) -> FleetOutcome:
    """Run ``policy`` for ``n_ticks`` from each start tick, a fleet of ``fleet_size`` per run."""
    trace = market.trace
    if int(starts.max(initial=0)) + n_ticks > trace.n_ticks:
        raise ValueError("a run reaches past the end of the trace")
    params = policy.params
    n_runs, n_pools = len(starts), trace.n_pools
    n = n_runs * fleet_size
    run_of = np.repeat(np.arange(n_runs), fleet_size)
    tick_h = trace.tick_s / 3600.0
    restart_s = params.restart_hours * 3600.0

    pool = np.zeros(n, np.intp)
    on_demand = np.zeros(n, bool)
    interrupted = np.ones(n, bool)  # homeless: the first decision places everyone
    launched = np.zeros(n, bool)
    down_left_s = np.zeros(n)
    last_move_s = np.full(n, -np.inf)
    better_since = np.full(n, np.nan)
    window_start_s = np.full(n_runs, -np.inf)
    budget_left = np.full(n_runs, params.budget_per_window, np.intp)
    compatible = np.ones((n, n_pools), bool)

    cost = np.zeros(n_runs)
    interruptions = np.zeros(n_runs, np.int64)
    replacements = np.zeros(n_runs, np.int64)
    fallbacks = np.zeros(n_runs, np.int64)
    up_s = np.zeros(n_runs)
    for step in range(n_ticks):
        ticks = starts + step
        now_s = trace.start_s + float(step) * trace.tick_s  # policies only compare time differences
        available = trace.available[ticks]  # (R, P)
        view = MarketView(
            pools=trace.pools,
            spot_price=market.spot_price[ticks],
            risk=market.risk[ticks],
            available=available,
            capacity_score=market.capacity_score[ticks],
            on_demand_price=market.on_demand_price,
        )
        lost = launched & ~on_demand & ~interrupted & ~available[run_of, pool]
        interrupted |= lost
        interruptions += np.bincount(run_of[lost], minlength=n_runs)

        renew = now_s - window_start_s >= params.budget_window_s
        window_start_s = np.where(renew, now_s, window_start_s)
        budget_left = np.where(renew, params.budget_per_window, budget_left)
        fleet = FleetView(
            market_row=run_of,
            fleet=run_of,
            pool=pool,
            on_demand=on_demand,
            interrupted=interrupted,
            compatible=compatible,
            on_demand_price=market.on_demand_price[pool],
            last_move_s=last_move_s,
            spot_better_since_s=better_since,
            budget_left=budget_left,
        )
        choice = policy.decide(view, fleet, now_s) if step else _first_placement(policy, view, fleet, now_s)
        moved = choice.action != KEEP
        forced = moved & interrupted
        voluntary = moved & ~interrupted
        first = moved & ~launched
        replacements += np.bincount(run_of[moved & ~first], minlength=n_runs)
        fallbacks += np.bincount(run_of[moved & ~first & choice.target_on_demand & ~on_demand], minlength=n_runs)
        budget_left = budget_left - np.bincount(run_of[voluntary], minlength=n_runs)
        # The instance being replaced keeps serving during a voluntary move: pay it for the restart time.
        old_price = np.where(on_demand, market.on_demand_price[pool], market.spot_price[ticks[run_of], pool])
        overlap_usd = np.where(voluntary, old_price * min(restart_s, trace.tick_s) / 3600.0, 0.0)
        pool = np.where(moved, choice.target_pool, pool)
        on_demand = np.where(moved, choice.target_on_demand, on_demand)
        down_left_s = np.where(forced & ~first, restart_s, down_left_s)
        interrupted = interrupted & ~moved
        launched |= moved
        last_move_s = np.where(moved, now_s, last_move_s)
        better_since = choice.spot_better_since_s

        running = launched & ~interrupted
        price = np.where(on_demand, market.on_demand_price[pool], market.spot_price[ticks[run_of], pool])
        paid = np.where(running, price * tick_h, 0.0) + overlap_usd
        down = np.minimum(down_left_s, trace.tick_s)
        down_left_s = down_left_s - down
        up = np.where(running, trace.tick_s - down, 0.0)
        cost += np.bincount(run_of, weights=paid, minlength=n_runs)
        up_s += np.bincount(run_of, weights=up, minlength=n_runs)
    hours = n_ticks * tick_h
    od_cost = fleet_size * hours * float(np.mean(market.on_demand_price))
    return FleetOutcome(
        policy=policy.name,
        cost_usd=cost,
        on_demand_cost_usd=np.full(n_runs, od_cost),
        interruptions=interruptions,
        replacements=replacements,
        fallbacks=fallbacks,
        up_hours=up_s / 3600.0,
        instance_hours=np.full(n_runs, fleet_size * hours),
    )


def _first_placement(policy: Policy, view: MarketView, fleet: FleetView, now_s: float) -> Choice:
    """Place a new fleet with the policy itself. The shared rules never send an interrupted instance back
    to its current pool, so a homeless instance is presented as coming from a phantom pool that cannot
    take capacity; the answer is mapped back onto the real pools."""
    n_pools = view.n_pools
    phantom = MarketView(
        pools=(*view.pools, Pool("phantom", "phantom-zone-1a")),
        spot_price=np.hstack([view.spot_price, np.full((view.spot_price.shape[0], 1), np.nan)]),
        risk=np.hstack([view.risk, np.ones((view.risk.shape[0], 1))]),
        available=np.hstack([view.available, np.zeros((view.available.shape[0], 1), bool)]),
        capacity_score=np.hstack([view.capacity_score, np.zeros((view.capacity_score.shape[0], 1))]),
        on_demand_price=np.append(view.on_demand_price, view.on_demand_price.mean()),
    )
    homeless = replace(
        fleet,
        pool=np.full(fleet.n_instances, n_pools, np.intp),
        compatible=np.hstack([fleet.compatible, np.ones((fleet.n_instances, 1), bool)]),
    )
    choice = policy.decide(phantom, homeless, now_s)
    return replace(choice, target_pool=np.where(choice.target_pool == n_pools, 0, choice.target_pool))


def merge_fleet(parts: list[FleetOutcome]) -> FleetOutcome:
    """Concatenate shards of one policy, in run order."""
    fields = (
        "cost_usd",
        "on_demand_cost_usd",
        "interruptions",
        "replacements",
        "fallbacks",
        "up_hours",
        "instance_hours",
    )
    return FleetOutcome(parts[0].policy, *(np.concatenate([getattr(p, f) for p in parts]) for f in fields))


def fleet_metrics(out: FleetOutcome) -> dict[str, Any]:
    """Totals over all runs (and the per-run mean cost)."""
    total, od = float(out.cost_usd.sum()), float(out.on_demand_cost_usd.sum())
    return {
        "total_cost": round(total, 4),
        "on_demand_cost": round(od, 4),
        "savings_pct": round(100.0 * (1.0 - total / od), 3) if od > 0 else None,
        "mean_cost_per_run": round(float(out.cost_usd.mean()), 4),
        "interruptions": int(out.interruptions.sum()),
        "replacements": int(out.replacements.sum()),
        "fallbacks": int(out.fallbacks.sum()),
        "availability": round(float(out.up_hours.sum() / out.instance_hours.sum()), 6),
    }
