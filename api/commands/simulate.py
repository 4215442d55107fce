"""`spot-optimizer simulate deadline|fleet`: backtest policies on recorded history, fanned out on Ray.

Bad input (an impossible job, a malformed trace, an unknown policy) exits with code 2 and one message
naming what is wrong; the JSON report goes to ``--json``, a short table to the terminal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from actors.backtests import (
    BacktestResult,
    DeadlineRequest,
    FleetRequest,
    SimulationInputError,
    deadline_plan,
    deadline_windows_plan,
    fleet_plan,
    parse_schedule,
    run_backtest,
)
from actors.ray_runtime import RayTarget
from engine.policy import POLICY_NAMES, PolicyParams
from engine.sim.backtest import DEADLINE_POLICY_NAMES
from engine.sim.clock import DeadlineJob, JobError
from engine.sim.fleet import DEFAULT_DECISION_INTERVAL_S
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
# A request field -> the option that sets it, for errors the shared backtest code raises.
OPTION_OF_FIELD = {"runs": "--runs", "policies": "--policy", "fleet_size": "--fleet-size", "hours": "--hours",
                   "instance_type": "--instance-type", "spot_price": "--spot-price",
                   "on_demand_price": "--on-demand-price", "risk_horizon_s": "--risk-horizon-minutes",
                   "decision_interval_s": "--decision-interval-minutes", "schedule": "--schedule"}


class UsageError(ValueError):
    """Input the user must fix; exits with code 2."""


def usage_error(exc: SimulationInputError, data: Path) -> UsageError:
    """The shared code's error in the CLI's words: the option to change, or the file at fault."""
    if exc.field is None:
        return UsageError(f"{data}: {exc.problem}")
    return UsageError(f"{OPTION_OF_FIELD.get(exc.field, exc.field)}: {exc.problem}")


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
    prices: Path | None = None,
) -> dict[str, Any]:
    """Load, simulate, report (and plot); user errors come out as ValueError subclasses.

    A windows bundle gives one run per window; a trace (with ``prices``, the market the risk model
    learns from, as REST's bundled market) gives random starts.
    """
    request = DeadlineRequest(job, tuple(policies), n_runs, seed, risk_horizon_s)
    source = {"trace": str(trace), "prices": None if prices is None else str(prices)}
    try:
        request.check()  # before any file is read
        doc = read_json(trace)
        if isinstance(doc, dict) and "windows" in doc:
            plan = deadline_windows_plan(request, read_windows(trace, convention), source)
        else:
            market = load_availability(trace, convention) if prices is None else load_market(trace, prices, convention)
            plan = deadline_plan(request, market, source)
    except SimulationInputError as exc:
        raise usage_error(exc, trace) from None
    result = _run(plan, target, show_progress, "deadline runs")
    _write_outputs(result, json_out, plot)
    return result.report


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
    schedule: str | None = None,
) -> dict[str, Any]:
    """Load the market, simulate every policy's fleets, report (and plot). With ``schedule`` the fleets
    hibernate outside its windows, on the trace's clock."""
    request = FleetRequest(tuple(policies), fleet_size, n_runs, hours, seed, params, decision_interval_minutes * 60.0,
                           instance_type, spot_price, on_demand_price, schedule)
    source = {"availability": str(availability), "prices": None if prices is None else str(prices)}
    try:
        if not decision_interval_minutes >= 0:
            raise SimulationInputError("decision_interval_s", f"must be >= 0, got {decision_interval_minutes}")
        parse_schedule(request)  # checked before the files are read: it is cheap
        plan = fleet_plan(request, load_market(availability, prices, convention=convention), source)
    except SimulationInputError as exc:
        raise usage_error(exc, availability) from None
    result = _run(plan, target, show_progress, "fleet runs")
    _write_outputs(result, json_out, plot)
    return result.report


def _run(plan: Any, target: RayTarget, show_progress: bool, label: str) -> BacktestResult:
    """The plan on Ray, with a progress bar that advances as shards finish."""
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  disable=not show_progress, transient=True) as progress:
        task = progress.add_task(label, total=None)
        return run_backtest(plan, target, lambda done, total: progress.update(task, completed=done, total=total))


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
        prices: Annotated[Path | None, typer.Option(
            help="prices of the trace's pools (joint prices or AWS spot price history): the risk model "
                 "learns from them too, as it does on the server's bundled market")] = None,
        risk_horizon_minutes: Annotated[float, typer.Option(help="risk model horizon, minutes")] = 60.0,
        delay_ticks: Annotated[
            int, typer.Option(min=0, help="every choice takes effect this many ticks late (a launch takes time)")
        ] = 0,
        address: AddressOption = None,
        num_cpus: CpusOption = None,
    ) -> None:
        """The deadline-job workload (the Can't-Be-Late problem): cost and missed deadlines per policy."""
        try:
            job = DeadlineJob(
                job_hours, deadline_hours, restart_overhead_hours, spot_price, on_demand_price, delay_ticks=delay_ticks
            )
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
                prices=prices,
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
        schedule: Annotated[str | None, typer.Option(
            help="hibernation schedule on the trace's clock, e.g. 'Mon-Fri 09:00-17:00 UTC': stopped outside it")
        ] = None,
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
                schedule=schedule,
            )
        except (TraceError, UsageError, ValueError, OSError) as exc:
            raise _fail(str(exc)) from None
        Console().print(_fleet_table(report))

    app.add_typer(simulate_app, name="simulate")


def _write_outputs(result: BacktestResult, json_out: Path, plot: Path | None) -> None:
    """The JSON report, and the comparison plot when asked for (matplotlib is imported only then)."""
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(result.report, indent=2) + "\n", encoding="utf-8")
    if plot is not None:
        from api.commands.simulate_plot import plot_policies

        plot_policies(plot, result.title, result.costs, result.disruptions, result.disruption_label,
                      cost_label=result.cost_label)
