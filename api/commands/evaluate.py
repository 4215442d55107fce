"""`spot-optimizer evaluate` (being built)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach the command to the CLI app (filled in by the issue that builds it)."""
    _ = app
