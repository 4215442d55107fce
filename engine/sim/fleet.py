"""The fleet workload: keep ``N`` interchangeable instances running across a region's pools.

Each run is one fleet starting at its own tick of the history; all runs advance together, and every tick
the *live* policy objects (:func:`engine.policy.make_policy`) decide for every instance of every run in
one vectorized call (market rows = runs, fleets = runs). The kernel plays the cloud:

* a spot instance whose pool is unavailable at a tick is interrupted: it is down, and its replacement
  (wherever the policy puts it) is down and paying for the restart overhead;
* a voluntary move (the policy's own choice) keeps the old instance serving while the new one starts, so
  both are paid for the restart overhead and nothing goes down;
* voluntary moves spend the fleet's disruption budget, a sliding window as live (interruptions do not);
* each tick is billed per second at the pool's spot price (or on-demand) of that tick.

Availability is the fraction of instance-hours actually up. The on-demand cost is what ``N`` on-demand
instances of the fleet's type would have cost over the same hours.

With a hibernation schedule (:meth:`FleetMarket.with_schedule`, evaluated on each run's own trace clock) the
fleet is stopped outside its windows: stopped instances cost nothing, are interrupted by no pool and
decided by no policy; when a window opens they are placed again as new instances (no budget, no
downtime). Their hours are reported (``hibernated_hours``) with what they would have cost where they were
(``hibernation_saving_usd``; one stopped before its first placement: the cheapest it could have run then, so
the figure is a lower bound); availability counts the scheduled hours only, the on-demand cost all hours.

A fleet is of one instance type (by default the bundle's most common one); each instance may use the pools
whose type the catalog deems compatible (:meth:`engine.catalog.Catalog.compatible_types`), so a V100 fleet
never lands on a K80 pool of a mixed bundle. New instances are homeless (``pool = -1``) until the policy
places them.

Decision cadence: the policy is consulted every ``decision_interval_s`` (whole ticks, at least one; 0 means
every tick), as a live control loop would, and also at once, for the runs concerned only, at any tick where
one of their instances is interrupted: forced moves are never delayed. Between decisions placements are
kept. The risk predictions change every tick, so skipping ticks is a modelling choice, not a lossless
shortcut: ``decision_interval_s=0`` reproduces a decision every tick.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.capacity import CAPACITY_WINDOW_S, capacity_series
from engine.catalog import Catalog, UnknownInstanceType, default_catalog
from engine.fleet_state import FleetState
from engine.market import MarketTrace
from engine.policy import MarketView, Policy
from engine.policy.base import ACTION_CODE, Choice
from engine.schedule import Schedule, open_mask
from engine.types import Action, Pool

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

KEEP = ACTION_CODE[Action.KEEP]
DEFAULT_DECISION_INTERVAL_S = 300.0  # a control loop every 5 minutes; interruptions are handled at once


def default_instance_type(pools: Sequence[Pool]) -> str:
    """The bundle's most common instance type (the first listed among equals).

    >>> default_instance_type([Pool("p2.xlarge", "us-west-2a"), Pool("p3.2xlarge", "us-west-2a"),
    ...                        Pool("p3.2xlarge", "us-west-2b")])
    'p3.2xlarge'
    """
    if not pools:
        raise ValueError("a fleet needs at least one pool")
    counts = Counter(p.instance_type for p in pools)
    return max(counts, key=lambda name: counts[name])  # max keeps the first of equals: Counter keeps order


def compatible_pool_mask(pools: Sequence[Pool], instance_type: str, catalog: Catalog | None = None) -> BoolArray:
    """Pools an instance of ``instance_type`` may run in: those whose type the catalog finds compatible in
    the pool's region (the type itself always; only the type itself when the catalog does not know it).

    >>> compatible_pool_mask([Pool("p2.xlarge", "us-west-2a"), Pool("p3.2xlarge", "us-west-2a")],
    ...                      "p3.2xlarge").tolist()
    [False, True]
    """
    cat = catalog or default_catalog()
    allowed: dict[str, set[str]] = {}
    for region in {p.region for p in pools}:
        try:
            allowed[region] = set(cat.compatible_types(instance_type, region))
        except (UnknownInstanceType, KeyError):
            allowed[region] = {instance_type}
    return np.array([p.instance_type in allowed[p.region] for p in pools], dtype=bool)


@dataclass(frozen=True, slots=True, eq=False)
class FleetMarket:
    """What the fleet kernel needs of a trace: (T, P) arrays aligned on ticks."""

    trace: MarketTrace
    spot_price: FloatArray  # (T, P)
    on_demand_price: FloatArray  # (P,)
    risk: FloatArray  # (T, P) causal P(unavailable within the horizon)
    capacity_score: FloatArray  # (T, P) recent availability share, as the live engine scores it
    instance_type: str  # the fleet's type
    compatible: BoolArray  # (P,) pools able to run it
    risk_horizon_s: float = 3600.0  # the horizon ``risk`` predicts over
    scheduled: BoolArray | None = None  # (T,) the fleet's hibernation schedule is open at the tick; None: always
    schedule: str = ""  # that schedule's text

    def with_schedule(self, schedule: Schedule) -> FleetMarket:
        """The same market with the fleet following ``schedule`` on the trace's clock."""
        ticks = self.trace.start_s + np.arange(self.trace.n_ticks, dtype=np.float64) * self.trace.tick_s
        return replace(self, scheduled=open_mask(schedule, ticks), schedule=str(schedule))

    @property
    def fleet_on_demand_price(self) -> float:
        """USD/hour of one instance of the fleet's type on demand (mean over the pools of that type)."""
        own = np.array([p.instance_type == self.instance_type for p in self.trace.pools])
        return float(np.mean(self.on_demand_price[own if own.any() else self.compatible]))

    @classmethod
    def of(
        cls,
        trace: MarketTrace,
        risk: FloatArray,
        horizon_s: float,
        spot_price: float | None = None,
        on_demand_price: float | None = None,
        instance_type: str | None = None,
        catalog: Catalog | None = None,
        capacity_window_s: float = CAPACITY_WINDOW_S,
    ) -> FleetMarket:
        """Fill in prices (constants where the trace has none), the capacity score (the live engine's, as if
        it had observed the trace from its first tick: :func:`engine.capacity.capacity_series`), the fleet's
        type (the most common of the bundle unless given) and the pools compatible with it. ``horizon_s`` is
        the horizon ``risk`` predicts over."""
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
        kind = instance_type or default_instance_type(trace.pools)
        compatible = compatible_pool_mask(trace.pools, kind, catalog)
        if not compatible.any():
            raise ValueError(
                f"no pool of the trace can run {kind}: its pools are "
                f"{', '.join(sorted({p.instance_type for p in trace.pools}))}"
            )
        share = capacity_series(trace.available, trace.tick_s, capacity_window_s)
        return cls(trace, spot, od, risk, share, kind, compatible, float(horizon_s))


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
    spot_hours_by_pool: FloatArray  # (R, P) instance-hours held on spot in each pool
    hibernated_hours: FloatArray = field(default_factory=lambda: np.zeros(0))  # (R,) instance-hours stopped
    hibernation_saving_usd: FloatArray = field(default_factory=lambda: np.zeros(0))  # (R,) their cost where they were
    schedule: str = ""  # the hibernation schedule followed ("": none)

    @property
    def n_runs(self) -> int:
        return int(self.cost_usd.shape[0])


FleetTickHook = Callable[[int, float, FleetState, Choice | None], None]


def simulate_fleet(
    market: FleetMarket,
    policy: Policy,
    starts: npt.NDArray[np.int64],
    n_ticks: int,
    fleet_size: int,
    decision_interval_s: float = DEFAULT_DECISION_INTERVAL_S,
    on_tick: FleetTickHook | None = None,
) -> FleetOutcome:
    """Run ``policy`` for ``n_ticks`` from each start tick, a fleet of ``fleet_size`` per run, consulting
    it every ``decision_interval_s`` (0: every tick) and at every interruption.

    The fleets live in one :class:`~engine.fleet_state.FleetState` (fleet ``r`` is run ``r``), the same
    bookkeeping the live engine keeps: dwell clock, return-to-spot memory, a sliding budget window.
    ``on_tick(step, now_s, state, choice)``, when given, sees the state after each tick's decision was
    carried out (``choice`` None on a tick nobody was decided for; with a decision for a subset of the
    runs, the choice covers only those runs' instances, in row order)."""
    trace = market.trace
    if int(starts.max(initial=0)) + n_ticks > trace.n_ticks:
        raise ValueError("a run reaches past the end of the trace")
    if not (decision_interval_s >= 0 and np.isfinite(decision_interval_s)):
        raise ValueError(f"decision interval must be >= 0 seconds, got {decision_interval_s!r}")
    every = max(1, round(decision_interval_s / trace.tick_s))
    params = policy.params
    n_runs = len(starts)
    n = n_runs * fleet_size
    run_of = np.repeat(np.arange(n_runs), fleet_size)
    tick_h = trace.tick_s / 3600.0
    restart_s = params.restart_hours * 3600.0
    od_price = market.fleet_on_demand_price
    od_price_n = np.full(n, od_price)
    compatible = np.broadcast_to(market.compatible, (n, trace.n_pools))

    state = FleetState.homeless(run_of, n_runs)  # the first decision places everyone
    launched = np.zeros(n, bool)  # placed at least once: a later move is a replacement, not a launch
    down_left_s = np.zeros(n)
    price = np.zeros(n)  # USD/hour of each instance's current placement (this tick)

    cost = np.zeros(n_runs)
    interruptions = np.zeros(n_runs, np.int64)
    replacements = np.zeros(n_runs, np.int64)
    fallbacks = np.zeros(n_runs, np.int64)
    up_s = np.zeros(n_runs)
    stopped_s = np.zeros(n_runs)
    saved_usd = np.zeros(n_runs)
    n_pools = trace.n_pools
    spot_ticks = np.zeros(n_runs * n_pools)
    for step in range(n_ticks):
        ticks = starts + step
        now_s = trace.start_s + float(step) * trace.tick_s  # policies only compare time differences
        available = trace.available[ticks]  # (R, P)
        spot_now = market.spot_price[ticks]
        spot_n = spot_now[run_of, np.maximum(state.pool, 0)]
        lost = state.interrupt(~available, run_of)
        if lost.any():
            interruptions += np.bincount(run_of[lost], minlength=n_runs)
        if market.scheduled is not None:
            _follow_schedule(state, market.scheduled[ticks][run_of], launched, down_left_s)

        if step % every == 0:
            sel = None  # everyone
        elif state.interrupted.any():
            sel = np.flatnonzero(np.isin(run_of, run_of[state.interrupted]))  # whole fleets with a forced move
        else:
            sel = np.empty(0, np.intp)
        if market.scheduled is not None and state.stopped.any():  # the stopped are decided for by no policy
            awake = state.awake()
            sel = awake if sel is None else np.intersect1d(sel, awake)
        overlap_usd: FloatArray | float = 0.0
        choice = None
        if sel is None or sel.size:
            pick = slice(None) if sel is None else sel
            view = MarketView(
                pools=trace.pools,
                spot_price=spot_now,
                risk=market.risk[ticks],
                available=available,
                capacity_score=market.capacity_score[ticks],
                on_demand_price=market.on_demand_price,
            )
            fleet = state.view(now_s, params, run_of[pick], compatible[pick], od_price_n[pick], sel)
            choice = policy.decide(view, fleet, now_s)
            idx = np.arange(n) if sel is None else sel
            moved_sub = choice.action != KEEP
            state.remember(choice, sel)
            mi = idx[moved_sub]
            if mi.size:
                was_on_demand = state.on_demand[mi]
                first = ~launched[mi]
                voluntary = state.move(mi, choice.target_pool[moved_sub], choice.target_on_demand[moved_sub], now_s)
                runs_moved = run_of[mi]
                replacements += np.bincount(runs_moved[~first], minlength=n_runs)
                target_od = choice.target_on_demand[moved_sub]
                fallbacks += np.bincount(runs_moved[~first & target_od & ~was_on_demand], minlength=n_runs)
                # The instance being replaced keeps serving during a voluntary move: pay it for the restart.
                old_price = np.where(was_on_demand, od_price, spot_n[mi])
                overlap_usd = np.bincount(  # type: ignore[assignment]  # floats with weights; stubs say ints
                    runs_moved[voluntary],
                    weights=old_price[voluntary] * min(restart_s, trace.tick_s) / 3600.0,
                    minlength=n_runs,
                )
                down_left_s[mi[~voluntary & ~first]] = restart_s
                launched[mi] = True
                spot_n = spot_now[run_of, np.maximum(state.pool, 0)]
        if on_tick is not None:
            on_tick(step, now_s, state, choice)

        running = launched & ~state.interrupted & ~state.stopped
        on_demand = state.on_demand
        np.copyto(price, spot_n)
        np.copyto(price, od_price, where=on_demand | (state.pool < 0))
        paid = np.where(running, price * tick_h, 0.0)
        if market.scheduled is not None and state.stopped.any():
            # Where it was; one stopped before its first placement at the cheapest it could have run then.
            cheapest = np.minimum(np.where(available & market.compatible, spot_now, np.inf).min(axis=1), od_price)
            was = np.where((state.pool < 0) & ~state.on_demand, cheapest[run_of], price)
            stopped_s += np.bincount(run_of, weights=state.stopped * trace.tick_s, minlength=n_runs)
            saved_usd += np.bincount(run_of, weights=np.where(state.stopped, was * tick_h, 0.0), minlength=n_runs)
        down = np.minimum(down_left_s, trace.tick_s)
        down_left_s -= down
        up = np.where(running, trace.tick_s - down, 0.0)
        cost += np.bincount(run_of, weights=paid, minlength=n_runs) + overlap_usd
        up_s += np.bincount(run_of, weights=up, minlength=n_runs)
        on_spot = running & ~on_demand
        spot_ticks += np.bincount(run_of[on_spot] * n_pools + state.pool[on_spot], minlength=n_runs * n_pools)
    hours = n_ticks * tick_h
    od_cost = fleet_size * hours * od_price
    return FleetOutcome(
        policy=policy.name,
        cost_usd=cost,
        on_demand_cost_usd=np.full(n_runs, od_cost),
        interruptions=interruptions,
        replacements=replacements,
        fallbacks=fallbacks,
        up_hours=up_s / 3600.0,
        instance_hours=fleet_size * hours - stopped_s / 3600.0,
        spot_hours_by_pool=spot_ticks.reshape(n_runs, n_pools) * tick_h,
        hibernated_hours=stopped_s / 3600.0,
        hibernation_saving_usd=saved_usd,
        schedule=market.schedule,
    )


def _follow_schedule(state: FleetState, open_n: BoolArray, launched: BoolArray, down_left_s: FloatArray) -> None:
    """Stop the running instances whose window closed; those whose window opened become new instances
    again (no home, not yet launched), so the tick's decision places them like any first placement."""
    closing = np.flatnonzero(~open_n & ~state.stopped)
    if closing.size:
        state.hibernate(closing)
        down_left_s[closing] = 0.0
    opening = np.flatnonzero(open_n & state.stopped)
    if opening.size:
        state.rehome(opening)
        launched[opening] = False


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
        "spot_hours_by_pool",
        "hibernated_hours",
        "hibernation_saving_usd",
    )
    arrays: dict[str, Any] = {f: np.concatenate([getattr(p, f) for p in parts]) for f in fields}
    return FleetOutcome(policy=parts[0].policy, schedule=parts[0].schedule, **arrays)


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
        **({"schedule": out.schedule, "hibernated_hours": round(float(out.hibernated_hours.sum()), 4),
            "hibernation_saving": round(float(out.hibernation_saving_usd.sum()), 4)} if out.schedule else {}),
    }
