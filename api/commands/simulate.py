"""`spot-optimizer simulate deadline|fleet`: backtest policies on recorded history, fanned out on Ray.

Bad input (an impossible job, a malformed trace, an unknown policy) exits with code 2 and one message
naming what is wrong; the JSON report goes to ``--json``, a short table to the terminal.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
import typer
from rich.console import Console
from rich.table import Table

from actors.simulation import RayTarget, simulate_deadline_runs, simulate_fleet_runs
from engine.policy import POLICY_NAMES, PolicyParams
from engine.sim.backtest import DEADLINE_POLICY_NAMES, deadline_policy
from engine.sim.clock import DeadlineJob, JobError, WorkClock
from engine.sim.fleet import DEFAULT_DECISION_INTERVAL_S, FleetMarket, fleet_metrics
from engine.sim.report import deadline_report
from engine.sim.runs import DeadlineRuns, runs_from_trace, runs_from_windows
from engine.traces import Convention, TraceError, load_availability, load_market, read_json, read_windows

ConventionOption = Annotated[
    Convention | None,
    typer.Option(help="what a trace value means where the file does not say: available | preempted"),
]
AddressOption = Annotated[
    str | None,
    typer.Option("--address", envvar="RAY_ADDRESS", help="Ray cluster address; default: a local Ray"),
]
CpusOption = Annotated[int | None, typer.Option(help="local Ray workers (default: every core)")]


class UsageError(ValueError):
    """Input the user must fix; exits with code 2."""


def load_deadline_runs(
    path: Path,
    job: DeadlineJob,
    n_runs: int | None,
    seed: int,
    convention: Convention | None,
    with_risk: bool,
    risk_horizon_s: float,
) -> DeadlineRuns:
    """Runs from a windows bundle (one per window) or a trace / bundle of traces (random starts)."""
    doc = read_json(path)
    if isinstance(doc, dict) and "windows" in doc:
        windows = read_windows(path, convention)
        clock = WorkClock.of(job, windows.tick_s)
        chosen = windows.available if n_runs is None else windows.available[:n_runs]
        return runs_from_windows(chosen, windows.tick_s, clock)
    trace = load_availability(path, convention)
    clock = WorkClock.of(job, trace.tick_s)
    risk = None
    if with_risk:
        from engine.learning.series import risk_series

        risk = risk_series(trace, risk_horizon_s)
    return runs_from_trace(trace, clock, 1000 if n_runs is None else n_runs, np.random.default_rng(seed), risk)


def run_deadline(
    trace: Path,
    job: DeadlineJob,
    policies: list[str],
    n_runs: int | None,
    seed: int,
    convention: Convention | None,
    json_out: Path,
    plot: Path | None,
    target: RayTarget,
    risk_horizon_s: float = 3600.0,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Load, simulate, report (and plot); user errors come out as ValueError subclasses."""
    for name in policies:
        deadline_policy(name)  # unknown names fail here, before any work
    if n_runs is not None and n_runs <= 0:
        raise UsageError(f"--runs must be positive, got {n_runs}")
    runs = load_deadline_runs(trace, job, n_runs, seed, convention, "risk_aware" in policies, risk_horizon_s)
    outcomes = simulate_deadline_runs(job, runs, policies, target, risk_horizon_s, show_progress)
    settings = {
        "trace": str(trace),
        "job_hours": job.job_hours,
        "deadline_hours": job.deadline_hours,
        "restart_overhead_hours": job.restart_overhead_hours,
        "spot_price": job.spot_usd_per_hour,
        "on_demand_price": job.on_demand_usd_per_hour,
        "seed": seed,
        "tick_seconds": runs.tick_s,
        "risk_source": "risk model (engine.learning)" if runs.risk is not None else "spells observed in the run",
    }
    report = deadline_report(outcomes, runs.labels, settings)
    _write_outputs(
        report, json_out, plot,
        f"deadline job: {job.job_hours:g} h due in {job.deadline_hours:g} h, {runs.n_runs} runs",
        {n: o.cost_usd for n, o in outcomes.items()},
        {n: o.restarts.astype(np.float64) for n, o in outcomes.items()},
        "mean restarts per run (preemptions and switches)",
    )
    return report


def run_fleet(
    availability: Path,
    prices: Path | None,
    spot_price: float | None,
    on_demand_price: float | None,
    policies: list[str],
    fleet_size: int,
    n_runs: int,
    hours: float | None,
    seed: int,
    convention: Convention | None,
    json_out: Path,
    plot: Path | None,
    target: RayTarget,
    params: PolicyParams,
    show_progress: bool = True,
    instance_type: str | None = None,
    decision_interval_minutes: float = DEFAULT_DECISION_INTERVAL_S / 60.0,
) -> dict[str, Any]:
    """Load the market, simulate every policy's fleets, report (and plot)."""
    if not decision_interval_minutes >= 0:
        raise UsageError(f"--decision-interval-minutes must be >= 0, got {decision_interval_minutes}")
    unknown = [p for p in policies if p not in POLICY_NAMES]
    if unknown:
        raise UsageError(f"unknown fleet policy {unknown[0]!r}; choose from {', '.join(POLICY_NAMES)}")
    if fleet_size <= 0 or n_runs <= 0:
        raise UsageError("--fleet-size and --runs must be positive")
    for name, price in (("--spot-price", spot_price), ("--on-demand-price", on_demand_price)):
        if price is not None and not price > 0:
            raise UsageError(f"{name} must be positive, got {price}")
    trace = load_market(availability, prices, convention=convention)
    n_ticks = trace.n_ticks // 2 if hours is None else round(hours * 3600.0 / trace.tick_s)
    if not 0 < n_ticks <= trace.n_ticks:
        raise UsageError(f"--hours must be within the trace's {trace.n_ticks * trace.tick_s / 3600:.1f} h, got {hours}")
    from engine.learning.series import risk_series

    risk = risk_series(trace, params.risk_horizon_s)
    try:
        market = FleetMarket.of(trace, risk, params.risk_horizon_s, spot_price, on_demand_price, instance_type)
    except ValueError as exc:
        raise UsageError(f"{availability}: {exc}") from None
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, trace.n_ticks - n_ticks + 1, size=n_runs)
    outcomes = simulate_fleet_runs(
        market, policies, starts, n_ticks, fleet_size, params, target, show_progress, decision_interval_minutes * 60.0
    )
    every = max(1, round(decision_interval_minutes * 60.0 / trace.tick_s))
    report = {
        "workload": "fleet",
        "runs": n_runs,
        "settings": {
            "availability": str(availability),
            "prices": None if prices is None else str(prices),
            "fleet_size": fleet_size,
            "hours_per_run": n_ticks * trace.tick_s / 3600.0,
            "seed": seed,
            "pools": [p.key for p in trace.pools],
            "instance_type": market.instance_type,
            "compatible_pools": [p.key for p, ok in zip(trace.pools, market.compatible, strict=True) if ok],
            "decision_interval_s": every * trace.tick_s,
            "restart_hours": params.restart_hours,
            "spot_price": "from the trace" if spot_price is None else spot_price,
            "on_demand_price": [float(x) for x in market.on_demand_price],
        },
        "policies": {name: fleet_metrics(out) for name, out in outcomes.items()},
    }
    _write_outputs(
        report, json_out, plot,
        f"fleet of {fleet_size}, {n_runs} runs of {n_ticks * trace.tick_s / 3600:.0f} h",
        {n: o.cost_usd for n, o in outcomes.items()},
        {n: o.interruptions.astype(np.float64) for n, o in outcomes.items()},
        "mean interruptions per run",
        cost_label="fleet cost per run (USD)",
    )
    return report


def _fleet_table(report: dict[str, Any]) -> Table:
    table = Table(title=f"fleet, {report['runs']} runs")
    for column in ("policy", "total $", "savings %", "interruptions", "replacements", "fallbacks", "availability"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for name, m in report["policies"].items():
        table.add_row(
            name,
            f"{m['total_cost']:.2f}",
            f"{m['savings_pct']:.2f}",
            str(m["interruptions"]),
            str(m["replacements"]),
            str(m["fallbacks"]),
            f"{m['availability']:.4f}",
        )
    return table


def _deadline_table(report: dict[str, Any]) -> Table:
    table = Table(title=f"deadline job, {report['runs']} runs")
    for column in ("policy", "mean $", "p50 $", "p90 $", "misses", "restarts"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for name, m in report["policies"].items():
        table.add_row(
            name,
            f"{m['mean_cost']:.2f}",
            f"{m['p50_cost']:.2f}",
            f"{m['p90_cost']:.2f}",
            str(m["deadline_misses"]),
            f"{m['mean_restarts']:.2f}",
        )
    return table


def _fail(message: str) -> typer.Exit:
    Console(stderr=True, soft_wrap=True).print(f"error: {message}", markup=False, highlight=False)
    return typer.Exit(code=2)


def register(app: typer.Typer) -> None:
    """Attach ``simulate`` (with ``deadline`` and ``fleet``) to the CLI app."""
    simulate_app = typer.Typer(help="Backtest policies on recorded spot history (Ray fan-out).", no_args_is_help=True)

    @simulate_app.command("deadline")
    def deadline_command(
        trace: Annotated[Path, typer.Option(help="windows bundle, trace bundle or single trace")],
        job_hours: Annotated[float, typer.Option(help="compute the job needs, hours")],
        deadline_hours: Annotated[float, typer.Option(help="deadline after the start, hours")],
        restart_overhead_hours: Annotated[float, typer.Option(help="lost on every new instance, hours")],
        spot_price: Annotated[float, typer.Option(help="spot price, USD/hour")],
        on_demand_price: Annotated[float, typer.Option(help="on-demand price, USD/hour")],
        json_out: Annotated[Path, typer.Option("--json", help="where to write the JSON report")],
        runs: Annotated[int | None, typer.Option(help="runs (random starts; windows: the first N)")] = None,
        seed: Annotated[int, typer.Option(help="seed of the random start ticks")] = 0,
        policy: Annotated[
            list[str] | None, typer.Option(help=f"repeatable; default all: {DEADLINE_POLICY_NAMES}")
        ] = None,
        plot: Annotated[Path | None, typer.Option(help="write a PNG comparing the policies")] = None,
        convention: ConventionOption = None,
        risk_horizon_minutes: Annotated[float, typer.Option(help="risk model horizon, minutes")] = 60.0,
        address: AddressOption = None,
        num_cpus: CpusOption = None,
    ) -> None:
        """The deadline-job workload (the Can't-Be-Late problem): cost and missed deadlines per policy."""
        try:
            job = DeadlineJob(job_hours, deadline_hours, restart_overhead_hours, spot_price, on_demand_price)
            report = run_deadline(
                trace,
                job,
                list(policy or DEADLINE_POLICY_NAMES),
                runs,
                seed,
                convention,
                json_out,
                plot,
                RayTarget(address, num_cpus),
                risk_horizon_minutes * 60.0,
            )
        except (JobError, TraceError, UsageError, OSError) as exc:
            raise _fail(str(exc)) from None
        Console().print(_deadline_table(report))

    @simulate_app.command("fleet")
    def fleet_command(
        availability: Annotated[Path, typer.Option(help="availability bundle: its traces are the pools")],
        json_out: Annotated[Path, typer.Option("--json", help="where to write the JSON report")],
        prices: Annotated[Path | None, typer.Option(help="joint prices or AWS spot price history")] = None,
        spot_price: Annotated[float | None, typer.Option(help="constant spot price, USD/hour")] = None,
        on_demand_price: Annotated[float | None, typer.Option(help="on-demand price, USD/hour")] = None,
        policy: Annotated[list[str] | None, typer.Option(help=f"repeatable; default: {POLICY_NAMES}")] = None,
        fleet_size: Annotated[int, typer.Option(help="instances per fleet")] = 10,
        runs: Annotated[int, typer.Option(help="fleets, each from a random start tick")] = 100,
        hours: Annotated[float | None, typer.Option(help="hours per run (default: half the trace)")] = None,
        seed: Annotated[int, typer.Option(help="seed of the random start ticks")] = 0,
        restart_hours: Annotated[float, typer.Option(help="downtime of an interrupted instance")] = 0.1,
        instance_type: Annotated[
            str | None,
            typer.Option(
                help="the fleet's type (default: the bundle's most common); pools of "
                "types the catalog finds compatible are used"
            ),
        ] = None,
        decision_interval_minutes: Annotated[
            float,
            typer.Option(
                help="consult the policy this often (whole ticks; 0: every tick); "
                "interruptions are always handled at once"
            ),
        ] = DEFAULT_DECISION_INTERVAL_S / 60.0,
        plot: Annotated[Path | None, typer.Option(help="write a PNG comparing the policies")] = None,
        convention: ConventionOption = None,
        address: AddressOption = None,
        num_cpus: CpusOption = None,
    ) -> None:
        """The fleet workload: N instances kept running across the pools; cost, savings, interruptions."""
        try:
            params = PolicyParams(restart_hours=restart_hours)
            report = run_fleet(
                availability,
                prices,
                spot_price,
                on_demand_price,
                list(policy or POLICY_NAMES),
                fleet_size,
                runs,
                hours,
                seed,
                convention,
                json_out,
                plot,
                RayTarget(address, num_cpus),
                params,
                instance_type=instance_type,
                decision_interval_minutes=decision_interval_minutes,
            )
        except (TraceError, UsageError, ValueError, OSError) as exc:
            raise _fail(str(exc)) from None
        Console().print(_fleet_table(report))

    app.add_typer(simulate_app, name="simulate")


def _write_outputs(
    report: dict[str, Any],
    json_out: Path,
    plot: Path | None,
    title: str,
    costs: Mapping[str, npt.NDArray[np.float64]],
    disruptions: Mapping[str, npt.NDArray[np.float64]],
    disruption_label: str,
    cost_label: str = "cost per run (USD)",
) -> None:
    """The JSON report, and the comparison plot when asked for (matplotlib is imported only then)."""
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if plot is not None:
        from api.commands.simulate_plot import plot_policies

        plot_policies(plot, title, costs, disruptions, disruption_label, cost_label=cost_label)
