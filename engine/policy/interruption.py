"""What one interruption of an instance in each pool is expected to cost, term by term.

An interruption costs

* the work lost: the instance is down for ``restart_hours`` and loses ``lost_work_hours`` of unsaved
  work, both worth the on-demand rate (what the user pays for an hour of work that cannot be taken
  back), plus the user's ``interruption_penalty_usd``;
* the restart at the replacement's price: the replacement (the best other placement the instance could
  move to now) is paid while it starts;
* the chance the replacement fails too, within the horizon, which costs all of the above again. For a
  replacement in the failed pool's zone that chance is raised by how often the zone's pools have been
  seen to follow each other down (:class:`engine.learning.zones.ZoneCoFailure`).

Every term is kept as an (N, P) array so the decision's explanation can show the numbers it weighed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.learning.zones import zone_index
from engine.policy.base import FleetView, FloatArray, IntArray, MarketView, PolicyParams


@dataclass(frozen=True, slots=True, eq=False)
class InterruptionCost:
    """The terms of one interruption per (instance, spot pool), USD unless named otherwise."""

    work_lost_usd: FloatArray  # (N,)
    replacement: IntArray  # (N, P) column of the replacement; P means on-demand
    replacement_price_usd_per_hour: FloatArray  # (N, P)
    restart_usd: FloatArray  # (N, P) the replacement paid while it starts
    next_fails: FloatArray  # (N, P) P(the replacement fails within the horizon | this pool failed)
    total_usd: FloatArray  # (N, P) (work lost + restart) x (1 + next_fails)


def clipped_risk(market: MarketView, fleet: FleetView) -> FloatArray:
    """(N, P) each instance's view of each pool's risk, in [0, 1]."""
    return np.minimum(np.maximum(market.risk[fleet.market_row], 0.0), 1.0)


def work_lost_usd(params: PolicyParams, on_demand_price: FloatArray) -> FloatArray:
    """(N,) what one interruption loses: the restart and the unsaved work at the on-demand rate, plus the
    user's penalty."""
    lost: FloatArray = (params.restart_hours + params.lost_work_hours) * on_demand_price
    return lost + params.interruption_penalty_usd


def with_zone_follow(risk: FloatArray, follow: FloatArray) -> FloatArray:
    """A pool's risk once a zone-mate failed: it fails on its own or follows the mate down (``follow``,
    clipped to [0, 1])."""
    out: FloatArray = 1.0 - (1.0 - risk) * (1.0 - np.minimum(np.maximum(follow, 0.0), 1.0))
    return out


def interruption_cost(
    market: MarketView,
    fleet: FleetView,
    params: PolicyParams,
    usable: np.ndarray,
    follow: FloatArray | None = None,
) -> InterruptionCost:
    """The expected cost of one interruption in each pool for each instance (see the module docstring).

    ``usable`` (N, P) are the pools the instance could move to now; ``follow`` (M, P), when known, is
    P(a pool goes down within the horizon given a zone-mate just did).

    >>> from engine.types import Pool
    >>> m = MarketView((Pool("a", "z-1a"), Pool("a", "z-1b")), np.array([[1.0, 2.0]]),
    ...                np.array([[0.5, 0.2]]), np.array([[True, True]]), np.ones((1, 2)), np.array([3.0, 3.0]))
    >>> f = FleetView(np.array([0]), np.array([0]), np.array([0]), np.array([False]), np.array([False]),
    ...               np.ones((1, 2), bool), np.array([3.0]), np.array([0.0]), np.array([np.nan]), np.array([1]))
    >>> c = interruption_cost(m, f, PolicyParams(restart_hours=1.0), np.ones((1, 2), bool))
    >>> c.replacement.tolist(), c.restart_usd.tolist(), c.next_fails.tolist(), c.total_usd.tolist()
    ([[1, 0]], [[2.0, 1.0]], [[0.2, 0.5]], [[6.0, 6.0]])
    """
    horizon_h = params.risk_horizon_s / 3600.0
    n, n_pools = fleet.n_instances, market.n_pools
    rows = fleet.market_row
    price = market.spot_price[rows]
    risk = clipped_risk(market, fleet)
    od = fleet.on_demand_price
    work_lost = work_lost_usd(params, od)
    # The replacement is the best other placement by a first-order expected cost (price + risk x work lost).
    first_order = np.where(usable, price + risk / horizon_h * work_lost[:, None], np.inf)
    if n_pools >= 2:
        two = np.argpartition(first_order, 1, axis=1)[:, :2]
        lo = np.take_along_axis(first_order, two, axis=1)
        swap = lo[:, 1] < lo[:, 0]
        best, second = np.where(swap, two[:, 1], two[:, 0]), np.where(swap, two[:, 0], two[:, 1])
    else:
        best = second = np.zeros(n, dtype=np.intp)
    cols = np.arange(n_pools)
    replacement = np.where(cols[None, :] == best[:, None], second[:, None], best[:, None])
    idx = np.arange(n)[:, None]
    repl_cost = first_order[idx, replacement] if n_pools else np.zeros((n, 0))
    repl_is_spot = (replacement != cols[None, :]) & np.isfinite(repl_cost) & (repl_cost < od[:, None])
    replacement = np.where(repl_is_spot, replacement, n_pools)
    safe = np.minimum(replacement, max(n_pools - 1, 0))
    repl_price = np.where(repl_is_spot, price[idx, safe] if n_pools else 0.0, od[:, None])
    repl_risk = np.where(repl_is_spot, risk[idx, safe] if n_pools else 0.0, 0.0)
    if follow is not None and n_pools:
        zone, _ = zone_index(market.pools)
        same_zone = repl_is_spot & (zone[safe] == zone[None, :])
        repl_risk = np.where(same_zone, with_zone_follow(repl_risk, follow[rows][idx, safe]), repl_risk)
    restart = params.restart_hours * repl_price
    total = (work_lost[:, None] + restart) * (1.0 + repl_risk)
    return InterruptionCost(work_lost, replacement.astype(np.intp), repl_price, restart, repl_risk, total)
