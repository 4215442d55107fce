"""Alembic, driven from async code: upgrade an engine's database to head under a lock.

Alembic's commands are synchronous, so we run them inside ``AsyncConnection.run_sync`` and hand env.py
the connection. The whole upgrade is one transaction (both backends have transactional DDL), taken under
a lock — PostgreSQL's advisory lock, SQLite's ``BEGIN IMMEDIATE`` — so many region actors opening the
store at once migrate it exactly once and a failed revision leaves nothing half-done.

Checking a database's revision needs no Alembic (its version table, and the migration files read as
text): region actors only check, and so never import Alembic (with Mako and Pygments, ~10 MiB a process).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from actors.store.db import BEGIN_MODE_OPTION

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version"  # Alembic's default, which env.py keeps
# One lock for the whole database (advisory locks are not per schema): migrations are rare and short.
MIGRATION_LOCK_ID = 0x5350_4F54_4442  # "SPOTDB"


def alembic_config(url: str | None = None) -> Config:
    """An in-memory Alembic config pointing at our migrations (no alembic.ini needed).

    With ``url`` it also works for Alembic's own commands run by a developer, e.g.
    ``command.revision(alembic_config(url), "add x", autogenerate=True)``.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@functools.cache
def head_revision() -> str:
    """The revision this code expects the database to be at: the one no other revision names as its
    ``down_revision``, read from the migration files (as Alembic's ``ScriptDirectory`` would find it;
    a test checks they agree)."""
    down: dict[str, object] = {}
    for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        values = _module_constants(path, ("revision", "down_revision"))
        down[str(values["revision"])] = values.get("down_revision")
    named = {d for value in down.values() for d in (value if isinstance(value, tuple | list) else (value,))}
    heads = sorted(set(down) - named)
    if len(heads) != 1:  # pragma: no cover - the history is linear
        raise RuntimeError(f"expected one head revision in {MIGRATIONS_DIR}, found {heads or 'none'}")
    return heads[0]


def _module_constants(path: Path, names: tuple[str, ...]) -> dict[str, object]:
    """The literal values assigned to ``names`` at the top level of a Python file, without running it."""
    out: dict[str, object] = {}
    for node in ast.parse(path.read_text(encoding="utf-8"), str(path)).body:
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in names:
            out[target.id] = ast.literal_eval(value)
    if "revision" in names and "revision" not in out:
        raise RuntimeError(f"{path}: no literal 'revision' assignment")
    return out


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the database to ``revision`` (default: head); a no-op when it is already there."""
    async with engine.connect() as conn:
        conn = await conn.execution_options(**{BEGIN_MODE_OPTION: "IMMEDIATE"})
        async with conn.begin():
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
            await conn.run_sync(_upgrade_sync, revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or None for a database never migrated."""
    async with engine.connect() as conn:
        return await conn.run_sync(_current_sync)


def _upgrade_sync(connection: Connection, revision: str) -> None:
    from alembic import command

    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _current_sync(connection: Connection) -> str | None:
    """What Alembic's ``MigrationContext.get_current_revision`` reads: the version table's one row."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    return ",".join(sorted(rows)) or None  # several rows (branches) never equal the one head
