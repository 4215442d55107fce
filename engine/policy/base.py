"""The one policy interface, vectorized over a batch of instances.

A policy sees the market as arrays (one row per *market*: the live actor has one, the simulator one per
run) and the fleet as arrays (one entry per instance), and returns a :class:`Choice` per instance. The live
:class:`~engine.region.RegionEngine` and the bulk simulator call the same ``decide``; neither re-implements
a policy.

A strategy only says how it *ranks* placements (a cost-like matrix, lower is better) and whether it moves
instances voluntarily. Everything else, the rules that make decisions safe to carry out, is shared and lives
in :mod:`engine.policy.rules`: interrupted instances must move, voluntary moves need a saving above the
threshold that also pays back the migration, a minimum dwell time, a per-fleet disruption budget, a cap on
a fleet's share in one pool, and hysteresis before returning from on-demand to spot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from engine.types import Action, Pool, Rule

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]

ACTIONS: tuple[Action, ...] = tuple(Action)
RULES: tuple[Rule, ...] = tuple(Rule)
ACTION_CODE = {a: i for i, a in enumerate(ACTIONS)}
RULE_CODE = {r: i for i, r in enumerate(RULES)}


@dataclass(frozen=True, slots=True, eq=False)
class MarketView:
    """What is known about each of ``P`` pools, in ``M`` market rows (live: 1; simulator: one per run)."""

    pools: tuple[Pool, ...]
    spot_price: FloatArray  # (M, P) predicted spot price, USD/hour
    risk: FloatArray  # (M, P) P(interrupted within the risk horizon)
    available: BoolArray  # (M, P) can take new spot capacity now
    capacity_score: FloatArray  # (M, P) recent availability share in [0, 1]
    on_demand_price: FloatArray  # (P,) on-demand price of each pool's instance type, USD/hour

    @property
    def n_pools(self) -> int:
        return len(self.pools)


@dataclass(frozen=True, slots=True, eq=False)
class FleetView:
    """The ``N`` instances to decide for, in ``F`` fleets."""

    market_row: IntArray  # (N,) the MarketView row each instance sees
    fleet: IntArray  # (N,) fleet index: the budget and the spread cap are per fleet
    pool: IntArray  # (N,) current pool (for on-demand instances: the pool it runs beside)
    on_demand: BoolArray  # (N,) runs on demand now
    interrupted: BoolArray  # (N,) its spot capacity was taken back (or it has no home yet): must move
    compatible: BoolArray  # (N, P) pools able to run its workload
    on_demand_price: FloatArray  # (N,) USD/hour of running it on demand
    last_move_s: FloatArray  # (N,) when its placement last changed
    spot_better_since_s: FloatArray  # (N,) since when spot has beaten on-demand for it; NaN when not
    budget_left: IntArray  # (F,) voluntary replacements still allowed in the current window

    @property
    def n_instances(self) -> int:
        return int(self.pool.shape[0])

    @property
    def n_fleets(self) -> int:
        return int(self.budget_left.shape[0])


@dataclass(frozen=True, slots=True)
class PolicyParams:
    """Knobs shared by every strategy. Defaults are conservative, product-level choices, not fitted."""

    risk_horizon_s: float = 3600.0  # the horizon the risk model predicts over
    restart_hours: float = 0.1  # an interruption or migration takes the workload down this long
    interruption_penalty_usd: float = 0.0  # extra cost the user assigns to one interruption
    lost_work_hours: float = 0.0  # unsaved work an interruption loses (the checkpoint interval); 0: stateless
    # A whole fleet lost at once costs this many times its instances' work lost on top (a service with
    # nothing up); 0: the instances are independent workers, and spreading buys nothing in expectation.
    fleet_outage_weight: float = 0.0
    # risk_aware leaves AWS's pick (price_capacity_optimized) only for a pool no worse on price and risk;
    # False: the lowest expected cost wins outright, paying more for safety when the cost model says so.
    pareto_guard: bool = True
    min_saving_fraction: float = 0.05  # a voluntary move must save this share of the current cost ...
    min_saving_usd_per_hour: float = 0.0  # ... and at least this much
    payback_hours: float = 24.0  # the saving over this horizon must pay for the migration
    min_dwell_s: float = 3600.0  # no voluntary move within this long of the last one
    return_after_s: float = 1800.0  # spot must beat on-demand this long before returning to it
    max_pool_share: float = 1.0  # at most this share of a fleet in one pool (1.0: no cap)
    budget_per_window: int = 1_000_000  # voluntary replacements per fleet per window
    budget_window_s: float = 3600.0

    def __post_init__(self) -> None:
        if self.risk_horizon_s <= 0:
            raise ValueError("risk_horizon_s must be positive")
        if not 0 < self.max_pool_share <= 1:
            raise ValueError("max_pool_share must be in (0, 1]")
        if self.budget_per_window < 0:
            raise ValueError("budget_per_window must be >= 0")
        for name in ("restart_hours", "min_saving_fraction", "min_saving_usd_per_hour", "payback_hours",
                     "min_dwell_s", "return_after_s", "interruption_penalty_usd", "budget_window_s",
                     "lost_work_hours", "fleet_outage_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")


@dataclass(frozen=True, slots=True, eq=False)
class Choice:
    """A policy's answer per instance; :func:`engine.policy.explain.explain` turns a row into a Decision."""

    target_pool: IntArray  # (N,)
    target_on_demand: BoolArray  # (N,)
    action: npt.NDArray[np.int8]  # (N,) index into ACTIONS
    rule: npt.NDArray[np.int8]  # (N,) index into RULES
    expected_cost: FloatArray  # (N, P + 1) risk-adjusted USD/hour; column P: on-demand; inf: no candidate
    rank: FloatArray  # (N, P + 1) the strategy's own ordering (lower is better)
    saving_usd_per_hour: FloatArray  # (N,) expected_cost[current] - expected_cost[target]
    spot_better_since_s: FloatArray  # (N,) the updated return-to-spot memory
    # The numbers a strategy weighed beyond price and risk, by name: (N,) per instance, or (N, P + 1) per
    # placement (the explanation shows the current and the target column).
    details: Mapping[str, FloatArray] = field(default_factory=dict)

    def actions(self) -> list[Action]:
        return [ACTIONS[int(code)] for code in self.action]

    def rules(self) -> list[Rule]:
        return [RULES[int(code)] for code in self.rule]


class Policy(Protocol):
    """A decision strategy: pure, deterministic, vectorized."""

    @property
    def name(self) -> str: ...

    @property
    def params(self) -> PolicyParams: ...

    def decide(self, market: MarketView, fleet: FleetView, now_s: float) -> Choice: ...


def expected_cost_matrix(market: MarketView, fleet: FleetView, params: PolicyParams) -> FloatArray:
    """Risk-adjusted USD/hour of every placement of every instance; ``inf`` where not a candidate.

    A spot pool costs its predicted price plus the expected interruption cost per hour: the chance of an
    interruption per hour (risk over the horizon, spread evenly) times what one costs (the restart time at
    the on-demand rate, plus the user's penalty). Column ``P`` is on-demand: its price, no risk.

    >>> import numpy as np
    >>> from engine.types import Pool
    >>> m = MarketView((Pool("a", "z-1a"),), np.array([[1.0]]), np.array([[0.5]]), np.array([[True]]),
    ...                np.array([[1.0]]), np.array([3.0]))
    >>> f = FleetView(np.array([0]), np.array([0]), np.array([0]), np.array([False]), np.array([False]),
    ...               np.array([[True]]), np.array([3.0]), np.array([0.0]), np.array([np.nan]), np.array([1]))
    >>> expected_cost_matrix(m, f, PolicyParams(restart_hours=1.0)).round(3).tolist()
    [[2.5, 3.0]]
    """
    horizon_h = params.risk_horizon_s / 3600.0
    rows = fleet.market_row
    price = market.spot_price[rows]  # (N, P)
    risk = np.minimum(np.maximum(market.risk[rows], 0.0), 1.0)  # np.clip's values, without its overhead
    interruption_usd = params.restart_hours * fleet.on_demand_price + params.interruption_penalty_usd  # (N,)
    spot = price + risk / horizon_h * interruption_usd[:, None]
    usable = market.available[rows] & fleet.compatible & np.isfinite(price)
    spot = np.where(usable, spot, np.inf)
    return np.concatenate([spot, fleet.on_demand_price[:, None]], axis=1)
