"""The decisions writer: a validated batch of ``decisions`` rows in one transaction, in one hop to the driver.

Why not through the engine: a region actor saves each tick's decisions before publishing them, so this
write sits on the latency path "price batch -> decision on a dashboard", in up to one process per
(account, region). Through SQLAlchemy's async engine a 1-2 row transaction costs a pool checkout (with a
pre-ping on PostgreSQL), greenlet switches, and one driver round trip each for BEGIN, INSERT and COMMIT
(aiosqlite hands every call to its thread and back; asyncpg sends each to the server). When the 2 cores
are busy, every hop also waits for a CPU, and on SQLite the file's write lock is held across all of
them while the other processes' busy handlers sleep 1, 2, 5, 10 ms... Here a batch is:

- SQLite: one call into a thread of our own that owns a stdlib ``sqlite3`` connection to the engine's
  file, with the engine's settings (:func:`actors.store.db.configure_sqlite_connection`), and runs
  ``BEGIN IMMEDIATE``; executemany; ``COMMIT``: the write lock is held only for that call.
- PostgreSQL: one asyncpg ``executemany`` on a connection held from the engine's pool (so it has the
  engine's settings, e.g. the search_path). asyncpg pipelines the rows behind one Sync: one round trip,
  one implicit transaction, atomic (asyncpg >= 0.22), and the statement is prepared once per connection
  (asyncpg's statement cache).

The SQL is compiled once from the construct the engine itself would run (INSERT ... ON CONFLICT
(account, region, seq) DO NOTHING), so idempotency and the casts are the engine's; JSON columns are
encoded with ``json.dumps``, as SQLAlchemy's JSON type does when no serializer is configured (we
configure none), so readers see exactly the same rows. An in-memory SQLite database lives inside the
engine's one connection, so for it the writer goes through the engine as before.

A database failure is a :class:`DatabaseUnavailableError` with the driver's words; nothing is half
written. Batches of one writer run one at a time (one connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import StaticPool

from actors.store import db
from actors.store.errors import DatabaseUnavailableError
from actors.store.tables import DECISIONS

STREAM_KEY = ("account", "region", "seq")
COLUMNS = tuple(c.name for c in DECISIONS.columns if c.name != "id")
_JSON_COLUMNS = frozenset(c.name for c in DECISIONS.columns if isinstance(c.type, sa.JSON))

Row = dict[str, Any]


class DecisionWriter(Protocol):
    """Writes rows of ``codec.decision_to_row`` in one transaction; a stored (account, region, seq) is
    skipped, not an error."""

    async def write(self, rows: list[Row]) -> None: ...

    async def close(self) -> None: ...


def decision_writer(engine: AsyncEngine) -> DecisionWriter:
    """The fastest writer that is correct for ``engine``'s database."""
    if engine.dialect.name == "postgresql":
        return PostgresWriter(engine)
    if isinstance(engine.pool, StaticPool):  # SQLAlchemy's choice exactly when the database is in memory
        return EngineWriter(engine)
    return SQLiteWriter(engine)


def insert_sql(engine: AsyncEngine) -> str:
    """The engine's own ``INSERT ... ON CONFLICT DO NOTHING`` for every column but ``id``, positional
    parameters in :data:`COLUMNS` order."""
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    statement = insert(DECISIONS).on_conflict_do_nothing(index_elements=list(STREAM_KEY))
    compiled = statement.compile(dialect=engine.dialect, column_keys=list(COLUMNS), for_executemany=True)
    if tuple(compiled.positiontup or ()) != COLUMNS:
        raise RuntimeError(f"unexpected parameter order {compiled.positiontup} for {compiled.string}")
    return compiled.string


def row_values(row: Row) -> tuple[Any, ...]:
    """A row as the driver's parameters, in :data:`COLUMNS` order."""
    return tuple(json.dumps(row[name]) if name in _JSON_COLUMNS else row[name] for name in COLUMNS)


class SQLiteWriter:
    """A dedicated stdlib connection on a dedicated thread: one executor call per batch."""

    def __init__(self, engine: AsyncEngine) -> None:
        # The engine's own arguments (file, URI mode); the connection is opened, used and closed on the
        # one thread below, so sqlite3 may check that.
        args, kwargs = engine.dialect.create_connect_args(engine.url)
        self._connect_args: tuple[Sequence[Any], dict[str, Any]] = (args, {**kwargs, "check_same_thread": True})
        self._where = db.display_url(engine.url)
        self._sql = insert_sql(engine)
        self._thread: ThreadPoolExecutor | None = None  # started by the first batch, stopped by close()
        self._connection: sqlite3.Connection | None = None

    async def write(self, rows: list[Row]) -> None:
        values = [row_values(row) for row in rows]
        abort = threading.Event()
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-decisions-writer")
        try:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._write, values, abort)
        except asyncio.CancelledError:
            abort.set()  # a batch whose caller gave up is rolled back unless it has already committed
            raise
        except sqlite3.Error as exc:
            raise DatabaseUnavailableError(f"cannot save decisions to {self._where}: {exc}") from exc

    async def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(thread, self._close)  # after any batch in flight
        finally:
            thread.shutdown(wait=False)

    def _write(self, values: list[tuple[Any, ...]], abort: threading.Event) -> None:
        connection = self._connection
        if connection is None:
            args, kwargs = self._connect_args
            connection = self._connection = sqlite3.connect(*args, **kwargs)
            db.configure_sqlite_connection(connection)
        connection.execute("BEGIN IMMEDIATE")  # waits for the write lock (busy_timeout), never mid-way
        try:
            connection.executemany(self._sql, values)
            if abort.is_set():
                raise _Abandoned
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class PostgresWriter:
    """asyncpg's pipelined executemany on a connection held from the engine's pool."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._where = db.display_url(engine.url)
        self._sql = insert_sql(engine)
        self._held: AsyncConnection | None = None
        self._lock = asyncio.Lock()  # an asyncpg connection runs one operation at a time

    async def write(self, rows: list[Row]) -> None:
        values = [row_values(row) for row in rows]
        async with self._lock:
            try:
                await self._executemany(values)
            except Exception:
                # The held connection may have died (server restart, idle kill): the batch is idempotent,
                # so it is retried once on a fresh one, as the pool's pre-ping would have done.
                await self._drop()
                try:
                    await self._executemany(values)
                except Exception as exc:
                    await self._drop()
                    raise DatabaseUnavailableError(f"cannot save decisions to {self._where}: "
                                                   f"{_first_line(exc)}") from exc
            # A cancelled batch keeps the connection: asyncpg asks the server to cancel the statement, and
            # the next batch waits until it has, so a batch cut off before the server ran it is not written.

    async def close(self) -> None:
        async with self._lock:
            if self._held is not None:
                held, self._held = self._held, None
                await held.close()

    async def _executemany(self, values: list[tuple[Any, ...]]) -> None:
        if self._held is None:
            self._held = await self._engine.connect()
        driver: Any = (await self._held.get_raw_connection()).driver_connection  # an asyncpg.Connection
        await driver.executemany(self._sql, values)

    async def _drop(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            with contextlib.suppress(Exception):  # it may be dead already: that is why it is dropped
                await held.invalidate()
            await held.close()


class EngineWriter:
    """Through the engine, for an in-memory SQLite database (it exists only in the engine's connection)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._statement = sqlite.insert(DECISIONS).on_conflict_do_nothing(index_elements=list(STREAM_KEY))

    async def write(self, rows: list[Row]) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(self._statement, rows)

    async def close(self) -> None:
        return None


class _Abandoned(Exception):
    """The caller was cancelled before COMMIT: roll back (nobody awaits this error)."""


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
