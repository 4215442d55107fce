"""`spot-optimizer report savings`: an account's savings report read from the store, as a table on the
terminal, a PNG chart and (optionally) CSV. The same figures as ``GET .../reports/savings``.

The command reads the database directly (like ``db``): no server, no tenancy. Exit codes: 0 done, 2 bad
input (an option, or an account with nothing stored), 1 the database could not be reached.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from actors.store import DatabaseUnavailableError, DatabaseURLError, Store
from actors.store.db import parse_database_url
from actors.store.reports import stored_regions
from api.commands.db import DatabaseURLOption
from api.report_schemas import SavingsReportOut, SavingsRowOut, report_csv, savings_report
from api.settings import Settings
from engine.report_period import PERIOD_FORMS, Granularity, parse_period


class ReportInputError(ValueError):
    """Bad input the user can fix (exit code 2)."""


async def build_report(url: str, account: str, period_text: str, region: str | None,
                       granularity: Granularity) -> SavingsReportOut:
    """The report body, read from the store at ``url``; ReportInputError names the bad option."""
    try:
        period = parse_period(period_text)
    except ValueError as exc:
        raise ReportInputError(f"--period: {exc}") from None
    store = await Store.open(url, migrate=False)
    try:
        known = await stored_regions(store, account)
        if not known:
            raise ReportInputError(f"--account: nothing is stored for account {account!r}")
        if region is not None and region not in known:
            raise ReportInputError(f"--region: account {account!r} has nothing stored in {region!r} "
                                   f"(it has {', '.join(known)})")
        return await savings_report(store, account, [region] if region is not None else known, period, granularity)
    finally:
        await store.close()


def _table(body: SavingsReportOut) -> Table:
    table = Table(title=f"savings of {body.account}, {body.period} ({body.granularity}, USD)")
    for column in ("region", "row", "spot h", "on-demand h", "stopped h", "actual $", "on-demand $", "saved $",
                   "saved %", "interr.", "repl.", "fallb.", "returns"):
        table.add_column(column, justify="left" if column in {"region", "row"} else "right")

    def add(region: str, row: SavingsRowOut, *, total: bool = False) -> None:
        pct = "-" if row.savings_pct is None else f"{row.savings_pct:.1f}"
        table.add_row(region, "total" if total else row.label, f"{row.spot_hours:.1f}", f"{row.on_demand_hours:.1f}",
                      f"{row.hibernated_hours:.1f}", f"{row.actual_cost_usd:,.2f}", f"{row.on_demand_cost_usd:,.2f}",
                      f"{row.savings_usd:,.2f}", pct, str(row.interruptions), str(row.replacements),
                      str(row.fallbacks), str(row.returns_to_spot), style="bold" if total else None)

    for region in body.regions:
        for row in region.rows:
            add(region.region, row)
        add(region.region, region.total, total=True)
    return table


def register(app: typer.Typer) -> None:
    """Attach ``report`` and its subcommands to the CLI app."""
    report_app = typer.Typer(help="Reports from the store.", no_args_is_help=True)

    @report_app.command("savings")
    def savings(
        account: Annotated[str, typer.Option(help="the account's name")],
        period: Annotated[str, typer.Option(help=PERIOD_FORMS)],
        out: Annotated[Path, typer.Option(help="where to write the PNG chart")],
        region: Annotated[str | None, typer.Option(help="one region; default: every region with stored data")] = None,
        granularity: Annotated[str, typer.Option(help="daily or monthly rows")] = "daily",
        csv_out: Annotated[Path | None, typer.Option("--csv", help="also write the rows as CSV here")] = None,
        database_url: DatabaseURLOption = None,
    ) -> None:
        """Instance-hours, cost, the same hours on demand, savings, interruptions and moves per day or month."""
        from api.commands.report_plot import plot_savings  # matplotlib only when a chart is drawn

        err = Console(stderr=True, soft_wrap=True)
        if granularity not in {g.value for g in Granularity}:
            _fail(err, f"--granularity must be daily or monthly, got {granularity!r}", 2)
        if out.suffix.lower() != ".png":
            _fail(err, f"--out must be a .png file, got {str(out)!r}", 2)
        try:
            url = database_url if database_url is not None else Settings().resolved_database_url()
            parse_database_url(url)
            body = asyncio.run(build_report(url, account, period, region, Granularity(granularity)))
        except (ReportInputError, DatabaseURLError) as exc:
            _fail(err, str(exc), 2)
        except ValidationError as exc:
            _fail(err, f"invalid settings: {exc}", 2)
        except DatabaseUnavailableError as exc:
            _fail(err, str(exc), 1)
        plot_savings(out, body)
        if csv_out is not None:
            csv_out.parent.mkdir(parents=True, exist_ok=True)
            csv_out.write_text(report_csv(body), encoding="utf-8")
        console = Console()
        console.print(_table(body))
        console.print(f"chart written to {out}" + (f", CSV to {csv_out}" if csv_out is not None else ""))

    app.add_typer(report_app, name="report")


def _fail(err: Console, message: str, code: int) -> NoReturn:
    err.print(f"error: {message}", markup=False, highlight=False)
    raise typer.Exit(code)
