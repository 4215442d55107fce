"""`spot-optimizer evaluate`: the risk model and its baselines (and the price forecaster) on a trace.

Everything runs online on the same delayed labels (see :mod:`engine.learning.evaluate`); the full report
goes to ``--json`` and a short table to the terminal. Bad input exits with code 2 and one message.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from engine.learning.evaluate import evaluate
from engine.traces import Convention, TraceError, load_market


def _summary(report: dict[str, Any]) -> Table:
    risk = report["risk"]
    table = Table(
        title=f"interruption risk, H = {report['horizon_minutes']:g} min: "
        f"{risk['pools']} pools, {risk['samples']} samples, base rate {risk['base_rate']}"
    )
    for column in ("model", "log-loss", "Brier", "AUC", "F1"):
        table.add_column(column, justify="right" if column != "model" else "left")
    for name in ("model", "persistence", "recent_unavailability"):
        m = risk[name]
        table.add_row(name, *(f"{m[k]:.4f}" if m[k] is not None else "-" for k in ("log_loss", "brier", "auc", "f1")))
    b = risk["base_rate_model"]
    table.add_row("base_rate", f"{b['log_loss']:.4f}", f"{b['brier']:.4f}", "-", "-")
    return table


def run(
    availability: Path,
    prices: Path | None,
    horizon_minutes: float,
    convention: str | None,
    select: str | None,
    json_out: Path,
) -> dict[str, Any]:
    """Load, evaluate and write the report; errors come out as :class:`ValueError` with a message."""
    if not horizon_minutes > 0:
        raise ValueError(f"--horizon-minutes must be positive, got {horizon_minutes}")
    trace = load_market(availability, prices, convention=convention, select=select)
    report = evaluate(trace, horizon_s=horizon_minutes * 60.0)
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def register(app: typer.Typer) -> None:
    """Attach ``evaluate`` to the CLI app."""

    @app.command("evaluate")
    def evaluate_command(
        availability: Annotated[Path, typer.Option(help="availability bundle or single trace (spot-traces format)")],
        json_out: Annotated[Path, typer.Option("--json", help="where to write the JSON report")],
        prices: Annotated[Path | None, typer.Option(help="joint prices or AWS spot price history")] = None,
        horizon_minutes: Annotated[float, typer.Option(help="risk horizon H in minutes")] = 60.0,
        convention: Annotated[
            str | None, typer.Option(help="override the file's convention: available | preempted")
        ] = None,
        select: Annotated[str | None, typer.Option(help="keep only traces whose name starts with this")] = None,
    ) -> None:
        """Score the online risk model against persistence and recent-unavailability baselines."""
        console = Console()
        err = Console(stderr=True, soft_wrap=True)
        if convention is not None and convention not in {c.value for c in Convention}:
            err.print(f"error: --convention must be one of {[c.value for c in Convention]}, got {convention!r}")
            raise typer.Exit(code=2)
        try:
            report = run(availability, prices, horizon_minutes, convention, select, json_out)
        except (TraceError, ValueError, OSError) as exc:
            err.print(f"error: {exc}", markup=False, highlight=False)
            raise typer.Exit(code=2) from None
        console.print(_summary(report))
        for label, m in report.get("price", {}).items():
            console.print(f"price {label}: mae {m['mae']}  persistence {m['persistence_mae']}  skill {m['skill']}")
        console.print(f"report written to {json_out}")
