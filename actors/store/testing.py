"""Throwaway databases for tests: a fresh PostgreSQL schema per test, cleaned up even after a crash.

Tests on PostgreSQL share one database (``test``) with other test runs, possibly at the same time. A
schema per test isolates them without dropping anybody's tables: the yielded URL carries
``?search_path=<schema>``, which :func:`actors.store.db.create_engine` applies to every connection, so
Alembic and every query land in the schema. Schema names carry the creating process id; a schema whose
process is gone (a run that crashed or was killed) is dropped by the next run on this machine.

SQLite URLs are returned unchanged: a test's own temporary file is already fresh.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import AsyncIterator

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from actors.store.db import create_engine, is_sqlite, parse_database_url

SCRATCH_PREFIX = "spot_scratch_"
_SCRATCH_NAME = re.compile(rf"^{SCRATCH_PREFIX}(\d+)_[0-9a-f]+$")
_orphans_swept = False


@contextlib.asynccontextmanager
async def scratch_database(url: str) -> AsyncIterator[str]:
    """Yield a URL for an empty database reached through ``url``; drop what was made on exit."""
    parsed = parse_database_url(url)
    if is_sqlite(parsed):
        yield url
        return
    schema = f"{SCRATCH_PREFIX}{os.getpid()}_{secrets.token_hex(6)}"
    admin = create_engine(parsed)
    try:
        async with admin.begin() as conn:
            await _sweep_orphans_once(conn)
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield parsed.update_query_dict({"search_path": schema}).render_as_string(hide_password=False)
    finally:
        try:
            async with admin.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        finally:
            await admin.dispose()


async def _sweep_orphans_once(conn: AsyncConnection) -> None:
    global _orphans_swept
    if _orphans_swept:
        return
    _orphans_swept = True
    names = (
        await conn.execute(text("SELECT nspname FROM pg_namespace WHERE nspname LIKE :p"), {"p": "spot_scratch_%"})
    ).scalars()
    for name in list(names):
        match = _SCRATCH_NAME.match(name)
        if match is None or _process_alive(int(match.group(1))):
            continue
        # Another run may be sweeping the same orphan right now; losing that race is fine.
        with contextlib.suppress(SQLAlchemyError):
            async with conn.begin_nested():
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
