"""The async engine, built from a URL: embedded SQLite by default, PostgreSQL in production.

Why the SQLite hooks: the stdlib driver's legacy transaction mode neither wraps DDL in a transaction nor
BEGINs before a SELECT, so a failed migration would leave half a schema and a read-then-write would not be
atomic. We switch that off and emit BEGIN ourselves (``BEGIN IMMEDIATE`` when a connection asks for the
write lock up front, as migrations do, so two processes opening one file cannot race). WAL lets the API
read while an actor writes; ``busy_timeout`` turns a momentary lock into a short wait instead of an error.

PostgreSQL URLs may carry ``?search_path=SCHEMA``: asyncpg would reject it as a keyword, so we lift it
into the session settings. That is how tests (and a shared server) keep one schema per user.

Nothing here runs at import time: callers build an engine when they need one and dispose it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from actors.store.errors import DatabaseUnavailableError, DatabaseURLError

SQLITE_DRIVER = "sqlite+aiosqlite"
POSTGRES_DRIVER = "postgresql+asyncpg"
SQLITE_BUSY_TIMEOUT_MS = 10_000
BEGIN_MODE_OPTION = "sqlite_begin"  # execution option: "IMMEDIATE" takes SQLite's write lock at BEGIN

_BEGIN_MODES = frozenset({"DEFERRED", "IMMEDIATE", "EXCLUSIVE"})
_ALIASES = {
    "sqlite": SQLITE_DRIVER,
    "sqlite+pysqlite": SQLITE_DRIVER,
    "postgres": POSTGRES_DRIVER,
    "postgresql": POSTGRES_DRIVER,
    "postgresql+psycopg": POSTGRES_DRIVER,
    "postgresql+psycopg2": POSTGRES_DRIVER,
}
_EXAMPLES = "sqlite+aiosqlite:///PATH/TO/FILE.db or postgresql+asyncpg://USER[:PASSWORD]@HOST[:PORT]/DB"


def parse_database_url(url: str) -> URL:
    """Parse and normalise a URL to one of the two async drivers we run on.

    Sync spellings (``sqlite:///``, ``postgres://``) are accepted because people paste them from other
    tools; anything else is a :class:`DatabaseURLError` naming the URL (password hidden).

    >>> parse_database_url("postgres://u@db/spot").drivername
    'postgresql+asyncpg'
    >>> parse_database_url("mysql://u@db/spot")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    actors.store.errors.DatabaseURLError: unsupported database 'mysql' in 'mysql://u@db/spot': use sqlite...
    """
    if not isinstance(url, str) or not url.strip():
        raise DatabaseURLError(f"empty database URL: use {_EXAMPLES}")
    if "://" not in url:
        raise DatabaseURLError(f"not a database URL: {url!r}: use {_EXAMPLES}")
    # The scheme is checked first so that an unsupported driver is named as such, not as an import error.
    scheme = url.split("://", 1)[0].lower()
    driver = _ALIASES.get(scheme, scheme)
    if driver not in (SQLITE_DRIVER, POSTGRES_DRIVER):
        raise DatabaseURLError(f"unsupported database {scheme!r} in {_redact(url)!r}: use {_EXAMPLES}")
    try:
        parsed = make_url(driver + "://" + url.split("://", 1)[1])
    except (ArgumentError, ValueError) as exc:
        raise DatabaseURLError(f"malformed database URL {_redact(url)!r}: {exc}") from exc
    if driver == POSTGRES_DRIVER and not parsed.database:
        raise DatabaseURLError(f"database URL {_redact(url)!r} names no database: use {_EXAMPLES}")
    return parsed


def is_sqlite(url: URL) -> bool:
    """True for the embedded backend."""
    return url.get_backend_name() == "sqlite"


def is_memory_sqlite(url: URL) -> bool:
    """An in-memory SQLite database lives and dies with one connection."""
    return is_sqlite(url) and url.database in (None, "", ":memory:")


def check_sqlite_directory(url: URL) -> None:
    """Refuse an SQLite file whose directory is missing, before the driver tries (and fails noisily)."""
    if not is_sqlite(url) or is_memory_sqlite(url) or (url.database or "").startswith("file:"):
        return
    directory = Path(url.database or "").expanduser().parent
    if not directory.is_dir():
        raise DatabaseUnavailableError(f"cannot open database {display_url(url)}: directory {directory} does not exist")


def display_url(url: URL) -> str:
    """The URL for messages and logs: never the password."""
    return url.render_as_string(hide_password=True)


def create_engine(url: str | URL, *, echo: bool = False) -> AsyncEngine:
    """Build the async engine for ``url`` (parsed with :func:`parse_database_url` when a string)."""
    parsed = parse_database_url(url) if isinstance(url, str) else url
    if is_sqlite(parsed):
        engine = create_async_engine(parsed, echo=echo)
        _install_sqlite_hooks(engine)
        return engine
    connect_args: dict[str, Any] = {}
    search_path = parsed.query.get("search_path")
    if search_path is not None:
        value = search_path if isinstance(search_path, str) else ",".join(search_path)
        connect_args["server_settings"] = {"search_path": value}
        parsed = parsed.difference_update_query(["search_path"])
    return create_async_engine(parsed, echo=echo, pool_pre_ping=True, connect_args=connect_args)


WAL_SWITCH_ATTEMPTS = 100



@asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A write transaction (on SQLite holding the write lock from BEGIN, so it never fails mid-way)."""
    async with engine.connect() as conn:
        conn = await conn.execution_options(**{BEGIN_MODE_OPTION: "IMMEDIATE"})
        async with conn.begin():
            yield conn

def _enable_wal(cursor: Any) -> None:
    """Switch the file to WAL. SQLite answers "database is locked" at once, without its busy handler,
    when two connections switch a new file at the same moment, so the switch is retried briefly; a file
    that is already in WAL needs no lock at all."""
    for attempt in range(WAL_SWITCH_ATTEMPTS):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except Exception as exc:
            if "locked" not in str(exc) or attempt == WAL_SWITCH_ATTEMPTS - 1:
                raise
            time.sleep(0.01)


def configure_sqlite_connection(dbapi_connection: Any) -> None:
    """The settings of every SQLite connection we open: the engine's pooled ones and the decisions writer's
    own stdlib connection (``actors.store.writer``), so both behave alike (see the module docstring)."""
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable across app crashes; WAL makes it safe
    finally:
        cursor.close()


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        configure_sqlite_connection(dbapi_connection)

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(BEGIN_MODE_OPTION, "DEFERRED")
        if mode not in _BEGIN_MODES:
            raise ValueError(f"{BEGIN_MODE_OPTION} must be one of {sorted(_BEGIN_MODES)}, got {mode!r}")
        conn.exec_driver_sql(f"BEGIN {mode}")


def _redact(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return url.split("://", 1)[0] + "://…"
