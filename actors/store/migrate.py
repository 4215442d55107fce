"""Alembic, driven from async code: upgrade an engine's database to head under a lock.

Alembic's commands are synchronous, so we run them inside ``AsyncConnection.run_sync`` and hand env.py
the connection. The whole upgrade is one transaction (both backends have transactional DDL), taken under
a lock — PostgreSQL's advisory lock, SQLite's ``BEGIN IMMEDIATE`` — so many region actors opening the
store at once migrate it exactly once and a failed revision leaves nothing half-done.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from actors.store.db import BEGIN_MODE_OPTION

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# One lock for the whole database (advisory locks are not per schema): migrations are rare and short.
MIGRATION_LOCK_ID = 0x5350_4F54_4442  # "SPOTDB"


def alembic_config(url: str | None = None) -> Config:
    """An in-memory Alembic config pointing at our migrations (no alembic.ini needed).

    With ``url`` it also works for Alembic's own commands run by a developer, e.g.
    ``command.revision(alembic_config(url), "add x", autogenerate=True)``.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The revision this code expects the database to be at."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise RuntimeError(f"no Alembic revisions found in {MIGRATIONS_DIR}")
    return head


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
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _current_sync(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()
