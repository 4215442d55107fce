"""The ``spot-optimizer`` command line. Each subcommand lives in ``api/commands/`` and registers itself."""

from __future__ import annotations

import typer

from api.commands import db, evaluate, report, serve, simulate

app = typer.Typer(
    name="spot-optimizer",
    help="Spot Optimizer: live spot-instance decisions, explained, and backtests on real price history.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
serve.register(app)
simulate.register(app)
evaluate.register(app)
db.register(app)
report.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
