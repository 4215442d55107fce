"""One path for a backtest, whichever front asks: a request -> a plan -> shards on Ray -> the report.

``spot-optimizer simulate deadline|fleet`` and ``POST /api/v1/simulations`` both build their plan here
(the runs, the risk the policies see, the market and the start ticks), submit it with
:mod:`actors.simulation` and turn the merged outcomes into the same JSON report, so one request gives one
answer through either front. The fronts differ only in where the history comes from (files named on the
command line, or the bundled market) and in how they show progress and errors.

Input the caller must fix is a :class:`SimulationInputError` naming the request's field (the CLI turns it
into its option, REST into ``body.<field>``) or an ``engine.sim.clock.JobError`` (an impossible job).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import ray
from ray.exceptions import RayTaskError

from actors.ray_runtime import RayTarget, connect
from actors.simulation import (
    ProgressCallback,
    Shards,
    merge_deadline,
    merge_fleet_parts,
    submit_deadline,
    submit_fleet,
)
from engine.market import MarketTrace
from engine.policy import POLICY_NAMES, PolicyParams
from engine.schedule import Schedule
from engine.sim.backtest import deadline_policy
from engine.sim.clock import DeadlineJob, JobError, WorkClock
from engine.sim.fleet import (
    DEFAULT_DECISION_INTERVAL_S,
    FleetMarket,
    compatible_pool_mask,
    default_instance_type,
    fleet_metrics,
)
from engine.sim.report import deadline_report
from engine.sim.runs import DeadlineRuns, runs_from_trace, runs_from_windows
from engine.traces import BUNDLED_AVAILABILITY, BUNDLED_PRICES, Windows, bundled_market

FloatArray = npt.NDArray[np.float64]
RiskOf = Callable[[MarketTrace, float], FloatArray]
DEFAULT_TRACE_RUNS = 1000
BUNDLED_SOURCE: Mapping[str, str] = {"trace": f"bundled:{BUNDLED_AVAILABILITY}", "prices": f"bundled:{BUNDLED_PRICES}"}


class SimulationInputError(ValueError):
    """A request knob the caller must change: ``field`` is its name in the request (None: the data)."""

    def __init__(self, field: str | None, problem: str) -> None:
        super().__init__(problem if field is None else f"{field}: {problem}")
        self.field = field
        self.problem = problem


def learned_risk(trace: MarketTrace, horizon_s: float) -> FloatArray:
    """The risk a live engine would have served at every tick of the trace (its online model, replayed)."""
    from engine.learning.series import risk_series

    return risk_series(trace, horizon_s)


@functools.lru_cache(maxsize=4)
def _bundled_risk(horizon_s: float) -> FloatArray:
    risk = learned_risk(bundled_market(), horizon_s)
    risk.flags.writeable = False  # one copy shared by every plan of this process
    return risk


def bundled_risk(trace: MarketTrace, horizon_s: float) -> FloatArray:
    """:func:`learned_risk` of the bundled market, replayed once per process and horizon."""
    if trace is not bundled_market():
        return learned_risk(trace, horizon_s)
    return _bundled_risk(horizon_s)


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """The JSON report, and the per-run numbers a plot compares."""

    report: dict[str, Any]
    title: str
    costs: Mapping[str, FloatArray]
    disruptions: Mapping[str, FloatArray]
    disruption_label: str
    cost_label: str


class Plan(Protocol):
    """Built runs of one request: submit them, then make the report of what came back."""

    def submit(self) -> Shards[Any]: ...

    def result(self, parts: Sequence[Any]) -> BacktestResult: ...


# --- the deadline-job workload ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeadlineRequest:
    """``n_runs``: None is every window of a windows bundle, or DEFAULT_TRACE_RUNS random starts on a trace."""

    job: DeadlineJob
    policies: tuple[str, ...]
    n_runs: int | None = None
    seed: int = 0
    risk_horizon_s: float = 3600.0

    def check(self) -> None:
        for name in self.policies:
            try:
                deadline_policy(name)
            except JobError as exc:
                raise SimulationInputError("policies", str(exc)) from None
        if self.n_runs is not None and self.n_runs <= 0:
            raise SimulationInputError("runs", f"must be positive, got {self.n_runs}")
        if not self.risk_horizon_s > 0:
            raise SimulationInputError("risk_horizon_s", f"must be positive, got {self.risk_horizon_s}")


@dataclass(frozen=True, slots=True, eq=False)
class DeadlinePlan:
    request: DeadlineRequest
    runs: DeadlineRuns
    settings: dict[str, Any]

    def submit(self) -> Shards[Any]:
        r = self.request
        return submit_deadline(r.job, self.runs, r.policies, r.risk_horizon_s)

    def result(self, parts: Sequence[Any]) -> BacktestResult:
        job = self.request.job
        outcomes = merge_deadline(parts, self.request.policies)
        return BacktestResult(
            deadline_report(outcomes, self.runs.labels, self.settings),
            f"deadline job: {job.job_hours:g} h due in {job.deadline_hours:g} h, {self.runs.n_runs} runs",
            {n: o.cost_usd for n, o in outcomes.items()},
            {n: o.restarts.astype(np.float64) for n, o in outcomes.items()},
            "mean restarts per run (preemptions and switches)",
            "cost per run (USD)",
        )


def check_deadline(request: DeadlineRequest, trace: MarketTrace) -> None:
    """What would fail later in a worker, raised now (cheap: no risk replay, no runs)."""
    request.check()
    clock = WorkClock.of(request.job, trace.tick_s)
    if clock.deadline_ticks > trace.n_ticks:
        raise JobError(f"the deadline ({request.job.deadline_hours:g} h) is longer than the recorded history "
                       f"({trace.n_ticks * trace.tick_s / 3600:.1f} h)")


def _deadline_settings(request: DeadlineRequest, source: Mapping[str, Any], tick_s: float,
                       risk_source: str) -> dict[str, Any]:
    job = request.job
    return {
        **source,
        "job_hours": job.job_hours,
        "deadline_hours": job.deadline_hours,
        "restart_overhead_hours": job.restart_overhead_hours,
        "spot_price": job.spot_usd_per_hour,
        "on_demand_price": job.on_demand_usd_per_hour,
        "delay_ticks": job.delay_ticks,
        "seed": request.seed,
        "tick_seconds": tick_s,
        "risk_horizon_s": request.risk_horizon_s,
        "risk_source": risk_source,
    }


def deadline_plan(request: DeadlineRequest, trace: MarketTrace, source: Mapping[str, Any],
                  risk_of: RiskOf = learned_risk) -> DeadlinePlan:
    """Runs at seeded random starts on ``trace``; ``risk_aware`` sees the learned risk of each tick."""
    request.check()
    clock = WorkClock.of(request.job, trace.tick_s)
    risk = risk_of(trace, request.risk_horizon_s) if "risk_aware" in request.policies else None
    n_runs = DEFAULT_TRACE_RUNS if request.n_runs is None else request.n_runs
    runs = runs_from_trace(trace, clock, n_runs, np.random.default_rng(request.seed), risk)
    risk_source = "risk model (engine.learning)" if runs.risk is not None else "spells observed in the run"
    return DeadlinePlan(request, runs, _deadline_settings(request, source, trace.tick_s, risk_source))


def deadline_windows_plan(request: DeadlineRequest, windows: Windows, source: Mapping[str, Any]) -> DeadlinePlan:
    """One run per recorded window (the first ``n_runs``), as recorded."""
    request.check()
    clock = WorkClock.of(request.job, windows.tick_s)
    chosen = windows.available if request.n_runs is None else windows.available[: request.n_runs]
    runs = runs_from_windows(chosen, windows.tick_s, clock)
    return DeadlinePlan(request, runs,
                        _deadline_settings(request, source, windows.tick_s, "spells observed in the run"))


# --- the fleet workload ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FleetRequest:
    """``hours``: per run, None is half the trace; ``instance_type`` None: the bundle's most common;
    ``spot_price``/``on_demand_price``: constants instead of the trace's prices."""

    policies: tuple[str, ...] = POLICY_NAMES
    fleet_size: int = 10
    n_runs: int = 100
    hours: float | None = None
    seed: int = 0
    params: PolicyParams = field(default_factory=PolicyParams)
    decision_interval_s: float = DEFAULT_DECISION_INTERVAL_S
    instance_type: str | None = None
    spot_price: float | None = None
    on_demand_price: float | None = None
    schedule: str | None = None  # a hibernation schedule on the trace's clock (engine.schedule syntax)


def check_fleet(request: FleetRequest, trace: MarketTrace) -> int:
    """Ticks per run; what would fail later in a worker raised now (cheap: no risk replay)."""
    unknown = [p for p in request.policies if p not in POLICY_NAMES]
    if unknown:
        raise SimulationInputError("policies", f"unknown fleet policy {unknown[0]!r}; choose from "
                                               f"{', '.join(POLICY_NAMES)}")
    for name in ("fleet_size", "n_runs"):
        if getattr(request, name) <= 0:
            raise SimulationInputError(name.removeprefix("n_"), f"must be positive, got {getattr(request, name)}")
    if not request.decision_interval_s >= 0:
        raise SimulationInputError("decision_interval_s", f"must be >= 0, got {request.decision_interval_s}")
    for name in ("spot_price", "on_demand_price"):
        price = getattr(request, name)
        if price is not None and not price > 0:
            raise SimulationInputError(name, f"must be positive, got {price}")
    hours = request.hours
    n_ticks = trace.n_ticks // 2 if hours is None else round(hours * 3600.0 / trace.tick_s)
    if not 0 < n_ticks <= trace.n_ticks:
        raise SimulationInputError("hours", f"must be within the trace's {trace.n_ticks * trace.tick_s / 3600:.1f} h, "
                                            f"got {hours}")
    kind = request.instance_type or default_instance_type(trace.pools)
    if not compatible_pool_mask(trace.pools, kind).any():
        types = ", ".join(sorted({p.instance_type for p in trace.pools}))
        raise SimulationInputError("instance_type", f"no pool of the trace can run {kind}: its pools are {types}")
    parse_schedule(request)
    return n_ticks


def parse_schedule(request: FleetRequest) -> Schedule | None:
    """The request's hibernation schedule, or None; a bad one is the caller's input error."""
    if request.schedule is None:
        return None
    try:
        return Schedule.parse(request.schedule)
    except ValueError as exc:
        raise SimulationInputError("schedule", str(exc)) from None


@dataclass(frozen=True, slots=True, eq=False)
class FleetPlan:
    request: FleetRequest
    market: FleetMarket
    starts: npt.NDArray[np.int64]
    n_ticks: int
    settings: dict[str, Any]

    def submit(self) -> Shards[Any]:
        r = self.request
        return submit_fleet(self.market, r.policies, self.starts, self.n_ticks, r.fleet_size, r.params,
                            r.decision_interval_s)

    def result(self, parts: Sequence[Any]) -> BacktestResult:
        r = self.request
        outcomes = merge_fleet_parts(parts, r.policies)
        report = {
            "workload": "fleet",
            "runs": r.n_runs,
            "settings": self.settings,
            "policies": {name: fleet_metrics(out) for name, out in outcomes.items()},
        }
        hours = self.n_ticks * self.market.trace.tick_s / 3600
        return BacktestResult(
            report,
            f"fleet of {r.fleet_size}, {r.n_runs} runs of {hours:.0f} h",
            {n: o.cost_usd for n, o in outcomes.items()},
            {n: o.interruptions.astype(np.float64) for n, o in outcomes.items()},
            "mean interruptions per run",
            "fleet cost per run (USD)",
        )


def fleet_plan(request: FleetRequest, trace: MarketTrace, source: Mapping[str, Any],
               risk_of: RiskOf = learned_risk) -> FleetPlan:
    """Fleets at seeded random start ticks of ``trace``; every policy sees the learned risk of each tick."""
    n_ticks = check_fleet(request, trace)
    risk = risk_of(trace, request.params.risk_horizon_s)
    try:
        market = FleetMarket.of(trace, risk, request.params.risk_horizon_s, request.spot_price,
                                request.on_demand_price, request.instance_type)
    except ValueError as exc:
        raise SimulationInputError(None, str(exc)) from None
    hibernation = parse_schedule(request)
    if hibernation is not None:
        market = market.with_schedule(hibernation)
    starts = np.random.default_rng(request.seed).integers(0, trace.n_ticks - n_ticks + 1, size=request.n_runs)
    every = max(1, round(request.decision_interval_s / trace.tick_s))
    settings = {
        **source,
        "fleet_size": request.fleet_size,
        "hours_per_run": n_ticks * trace.tick_s / 3600.0,
        "seed": request.seed,
        "pools": [p.key for p in trace.pools],
        "instance_type": market.instance_type,
        "compatible_pools": [p.key for p, ok in zip(trace.pools, market.compatible, strict=True) if ok],
        "decision_interval_s": every * trace.tick_s,
        "restart_hours": request.params.restart_hours,
        "spot_price": "from the trace" if request.spot_price is None else request.spot_price,
        "on_demand_price": [float(x) for x in market.on_demand_price],
        **({} if hibernation is None else {"schedule": str(hibernation)}),
    }
    return FleetPlan(request, market, starts, n_ticks, settings)


# --- running a plan --------------------------------------------------------------------------------------


def run_backtest(plan: Plan, target: RayTarget | None = None,
                 on_progress: ProgressCallback | None = None) -> BacktestResult:
    """Start or join Ray, run the plan's shards, block until the report is made (the CLI)."""
    connect(target)
    return plan.result(plan.submit().wait(on_progress))


def bundled_plan(request: DeadlineRequest | FleetRequest) -> Plan:
    """The plan of a request on the bundled market (what REST simulations run on)."""
    trace = bundled_market()
    if isinstance(request, DeadlineRequest):
        return deadline_plan(request, trace, BUNDLED_SOURCE, bundled_risk)
    return fleet_plan(request, trace, BUNDLED_SOURCE, bundled_risk)


def check_bundled(request: DeadlineRequest | FleetRequest) -> None:
    """Raise now, at submission, what :func:`bundled_plan` would raise later in a worker."""
    if isinstance(request, DeadlineRequest):
        check_deadline(request, bundled_market())
    else:
        check_fleet(request, bundled_market())


_bundled_plan_task = ray.remote(num_cpus=1, max_retries=1)(bundled_plan)


async def run_bundled_backtest(request: DeadlineRequest | FleetRequest,
                               on_progress: ProgressCallback | None = None) -> BacktestResult:
    """The request on the bundled market, from an event loop (the REST jobs): the plan is built in a Ray
    worker (the risk replay takes seconds), then its shards run as Ray tasks; cancelled, it cancels them.
    Ray must already be connected (the server's)."""
    plan_ref = _bundled_plan_task.remote(request)
    try:
        try:
            plan: Plan = await plan_ref
        except asyncio.CancelledError:
            ray.cancel(plan_ref)
            raise
        shards = plan.submit()
        if on_progress is not None:
            on_progress(0, shards.total)
        return plan.result(await shards.wait_async(on_progress))
    except RayTaskError as exc:  # the worker's own exception, without Ray's wrapping and traceback text
        cause = exc.cause
        raise (cause if isinstance(cause, Exception) else exc) from None
