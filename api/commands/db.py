"""`spot-optimizer db upgrade|current`: bring the database schema to head, or say where it is.

The server can migrate on start too; this command exists for deployments that migrate as a separate
step (one job before many replicas). Exit codes: 0 done, 2 bad URL or settings (the user's input),
1 the database could not be reached or migrated.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from actors.store import DatabaseUnavailableError, DatabaseURLError, Store
from actors.store.db import check_sqlite_directory, create_engine, display_url, parse_database_url
from actors.store.migrate import current_revision, head_revision
from api.settings import Settings

T = TypeVar("T")

DatabaseURLOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="sqlite+aiosqlite:///FILE or postgresql+asyncpg://USER@HOST/DB; default: SPOT_DATABASE_URL, "
        "DATABASE_URL, or the SQLite file under SPOT_DATA_DIR",
        show_default=False,
    ),
]


def register(app: typer.Typer) -> None:
    """Attach ``db`` and its subcommands to the CLI app."""
    db_app = typer.Typer(help="The database: schema migrations.", no_args_is_help=True)

    @db_app.command("upgrade")
    def upgrade(database_url: DatabaseURLOption = None) -> None:
        """Upgrade the database schema to the newest revision (a no-op when it is already there)."""
        url = _resolve(database_url)
        revision = _run(_upgrade(url))
        typer.echo(f"database {display_url(parse_database_url(url))} is at revision {revision} (head)")

    @db_app.command("current")
    def current(database_url: DatabaseURLOption = None) -> None:
        """Print the schema revision of the database and whether it is the newest."""
        url = _resolve(database_url)
        revision = _run(_current(url))
        head = head_revision()
        state = "head" if revision == head else f"behind head {head}: run `spot-optimizer db upgrade`"
        typer.echo(f"database {display_url(parse_database_url(url))} is at revision {revision or 'none'} ({state})")

    app.add_typer(db_app, name="db")


def _resolve(database_url: str | None) -> str:
    try:
        url = database_url if database_url is not None else Settings().resolved_database_url()
        parse_database_url(url)
    except DatabaseURLError as exc:
        _fail(str(exc), 2)
    except ValidationError as exc:
        _fail(f"invalid settings: {exc}", 2)
    return url


async def _upgrade(url: str) -> str:
    store = await Store.open(url, migrate=True)
    await store.close()
    return head_revision()


async def _current(url: str) -> str | None:
    check_sqlite_directory(parse_database_url(url))
    engine = create_engine(url)
    try:
        return await current_revision(engine)
    except (SQLAlchemyError, OSError) as exc:
        raise DatabaseUnavailableError(f"cannot open database {display_url(engine.url)}: {exc}") from exc
    finally:
        await engine.dispose()


def _run(work: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(work)
    except DatabaseURLError as exc:
        _fail(str(exc), 2)
    except DatabaseUnavailableError as exc:
        _fail(str(exc), 1)
    raise AssertionError("unreachable")


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)
