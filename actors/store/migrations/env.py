"""Alembic environment for the store, for both of our async drivers.

The application runs migrations through ``actors.store.migrate.upgrade``, which hands us a connection
already inside its transaction (and holding the migration lock) via ``config.attributes["connection"]``.
Run standalone (``alembic -c ... upgrade head`` with ``sqlalchemy.url`` set, or ``revision
--autogenerate``), we build our own async engine and drive it with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from actors.store.db import create_engine
from actors.store.tables import METADATA

config = context.config
target_metadata = METADATA


def run_with(connection: Connection) -> None:
    # render_as_batch: SQLite cannot ALTER most things, so future revisions copy-and-move tables there.
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_online() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_with)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_offline()
elif (given := config.attributes.get("connection")) is not None:
    run_with(given)
else:
    asyncio.run(run_online())
