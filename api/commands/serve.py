"""`spot-optimizer serve`: the API, the region actors and the replay of real prices, on embedded defaults."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from api.settings import Settings
from engine.traces import TraceError

console = Console(stderr=True, soft_wrap=True)  # long paths and URLs stay whole, copyable


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        host: Annotated[str | None, typer.Option(help="bind address (SPOT_HOST)")] = None,
        port: Annotated[int | None, typer.Option(help="port (SPOT_PORT)")] = None,
        prices: Annotated[Path | None, typer.Option(
            "--prices", help="spot price history to replay: AWS JSON/CSV, or joint prices with --availability")] = None,
        availability: Annotated[Path | None, typer.Option(help="spot-traces availability bundle to replay")] = None,
        speed: Annotated[float | None, typer.Option(help="simulated seconds per wall second")] = None,
        policy: Annotated[str | None, typer.Option(help="decision policy of the demo account")] = None,
        database_url: Annotated[str | None, typer.Option(help="SQLAlchemy async URL (SPOT_DATABASE_URL)")] = None,
    ) -> None:
        """Start the server: local Ray, SQLite, replay of bundled real prices, dashboard URL printed."""
        import uvicorn

        from api.app import create_app
        from api.runtime import Runtime, describe_source, load_replay_market
        from api.serving import uvicorn_options
        from engine.policy import POLICY_NAMES

        overrides: dict[str, Any] = {k: v for k, v in {
            "host": host, "port": port, "prices_path": prices, "availability_path": availability,
            "replay_speed": speed, "policy": policy, "database_url": database_url,
        }.items() if v is not None}
        try:
            settings = Settings(**overrides)
        except ValueError as exc:
            console.print(f"[red]error:[/red] bad setting: {exc}")
            raise typer.Exit(2) from None
        if settings.policy not in POLICY_NAMES:
            console.print(f"[red]error:[/red] --policy {settings.policy!r}: choose one of {', '.join(POLICY_NAMES)}")
            raise typer.Exit(2)
        try:
            load_replay_market(settings)  # fail fast, before Ray starts, on a bad file
        except (TraceError, ValueError, OSError) as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        url = f"http://{settings.host}:{settings.port}"
        console.print(f"[bold]Spot Optimizer[/bold] replaying {describe_source(settings)}")
        console.print(f"  API        {url}/api/v1/accounts   (OpenAPI: {url}/docs)")
        console.print(f"  live       ws://{settings.host}:{settings.port}/ws")

        def banner(runtime: Runtime) -> None:
            from actors.remote import settle_process_gc

            settle_process_gc()  # the server owns this process: see actors/remote.py
            if runtime.demo_api_key:
                console.print(f"  tenant     {settings.demo_tenant!r}, API key (shown once, new at every start):")
                console.print(f"             {runtime.demo_api_key}")
                console.print(f"  dashboard  {url}/#key={runtime.demo_api_key}")
            else:
                console.print(f"  dashboard  {url}/   (paste a tenant API key; the admin key creates tenants)")

        uvicorn.run(create_app(settings, on_started=banner), host=settings.host, port=settings.port,
                    log_level="info", **uvicorn_options(settings))
