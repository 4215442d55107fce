"""The tick writer: a validated tick's ``decisions`` and ``stream_events`` rows in one transaction, in one
hop to the driver.

Why not through the engine: a region actor saves each tick's decisions and events before publishing them,
so this write sits on the latency path "price batch -> event on a dashboard", in up to one process per
(account, region). Through SQLAlchemy's async engine a small transaction costs a pool checkout (with a
pre-ping on PostgreSQL), greenlet switches, and one driver round trip each for BEGIN, each INSERT and
COMMIT (aiosqlite hands every call to its thread and back; asyncpg sends each to the server). When the 2
cores are busy, every hop also waits for a CPU, and on SQLite the file's write lock is held across all of
them while the other processes' busy handlers sleep 1, 2, 5, 10 ms... Here a tick is:

- SQLite: one call into a thread of our own that owns a stdlib ``sqlite3`` connection to the engine's
  file, with the engine's settings (:func:`actors.store.db.configure_sqlite_connection`), and runs
  ``BEGIN IMMEDIATE``; an executemany per table; ``COMMIT``: the write lock is held only for that call.
  The WAL checkpoint is taken off that call: SQLite's automatic one runs inside the COMMIT that crosses
  1000 WAL pages, and costs that tick ~8 ms of fsync (every ~50 ticks with a 9 KB prices event: the
  whole p99). This connection turns it off and, every CHECKPOINT_EVERY_TICKS of its ticks, queues a
  PASSIVE checkpoint on its thread *after* answering the tick (it never blocks other writers; the next
  tick of this writer may wait for it).
- PostgreSQL: one statement on a connection held from the engine's pool (so it has the engine's
  settings, e.g. the search_path): ``WITH d AS (INSERT INTO decisions ... SELECT FROM unnest($3, ...))
  INSERT INTO stream_events ... SELECT FROM unnest(...)``, one column array per parameter. One statement
  is one implicit transaction (atomic: both tables or neither) and one round trip (asyncpg's statement
  cache prepares it once per connection); asyncpg cannot pipeline two different statements.

Both insert ``ON CONFLICT (the stream key) DO NOTHING``, so idempotency is the database's. On SQLite the
SQL is compiled from the construct the engine itself would run; on PostgreSQL it is built from the same
table metadata (names, types, keys). JSON columns are encoded with ``json.dumps``, as SQLAlchemy's JSON
type does when no serializer is configured (we configure none), so readers see exactly the same rows. An
in-memory SQLite database lives inside the engine's one connection, so for it the writer goes through the
engine.

A database failure is a :class:`DatabaseUnavailableError` with the driver's words; nothing is half
written. Ticks of one writer run one at a time (one connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import sqlite3
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import StaticPool

from actors.store import db
from actors.store.errors import DatabaseUnavailableError
from actors.store.tables import DECISIONS, STREAM_EVENTS

log = logging.getLogger(__name__)

Row = dict[str, Any]
CHECKPOINT_EVERY_TICKS = 50  # ~1000 WAL pages (SQLite's own threshold) at ~20 pages per tick
STREAM_COLUMNS = ("account", "region")  # the same for every row of a tick


@dataclass(frozen=True, slots=True)
class Target:
    """A table the writer inserts into: its columns (all but a generated ``id``) and its stream key."""

    table: sa.Table
    key: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.table.columns if c.name != "id")

    @property
    def json_columns(self) -> frozenset[str]:
        return frozenset(c.name for c in self.table.columns if isinstance(c.type, sa.JSON))


DECISION_TARGET = Target(DECISIONS, ("account", "region", "seq"))
EVENT_TARGET = Target(STREAM_EVENTS, ("account", "region", "topic", "seq"))


class TickWriter(Protocol):
    """Writes rows of ``codec.decision_to_row`` and ``events.event_to_row`` (all of one stream) in one
    transaction; a stored (account, region, seq) decision or (account, region, topic, seq) event is
    skipped, not an error."""

    async def write(self, decisions: list[Row], events: list[Row]) -> None: ...

    async def close(self) -> None: ...


def tick_writer(engine: AsyncEngine) -> TickWriter:
    """The fastest writer that is correct for ``engine``'s database."""
    if engine.dialect.name == "postgresql":
        return PostgresWriter(engine)
    if isinstance(engine.pool, StaticPool):  # SQLAlchemy's choice exactly when the database is in memory
        return EngineWriter(engine)
    return SQLiteWriter(engine)


def insert_sql(engine: AsyncEngine, target: Target) -> str:
    """The engine's own ``INSERT ... ON CONFLICT DO NOTHING`` for the target's columns, positional
    parameters in ``target.columns`` order."""
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    statement = insert(target.table).on_conflict_do_nothing(index_elements=list(target.key))
    compiled = statement.compile(dialect=engine.dialect, column_keys=list(target.columns), for_executemany=True)
    if tuple(compiled.positiontup or ()) != target.columns:
        raise RuntimeError(f"unexpected parameter order {compiled.positiontup} for {compiled.string}")
    return compiled.string


def row_values(row: Row, target: Target) -> tuple[Any, ...]:
    """A row as the driver's parameters, in ``target.columns`` order."""
    json_columns = target.json_columns
    return tuple(json.dumps(row[name]) if name in json_columns else row[name] for name in target.columns)


def unnest_insert_sql(target: Target, first_param: int) -> tuple[str, int]:
    """PostgreSQL ``INSERT ... SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING`` for ``target``: account
    and region are the scalar parameters $1 and $2, every other column one array parameter from
    ``first_param`` on, in ``target.columns`` order. Returns the SQL and the next free parameter number."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    quote = dialect.identifier_preparer.quote
    by_name = {c.name: c for c in target.table.columns}
    selected, arrays, aliases = [], [], []
    param = first_param
    for name in target.columns:
        column_type = by_name[name].type
        # Strings travel as TEXT: an explicit cast to VARCHAR(n) would silently truncate, the insert's own
        # assignment cast refuses what is too long. JSON travels as text too, cast once per row.
        is_json = isinstance(column_type, sa.JSON)
        element = "TEXT" if is_json or isinstance(column_type, sa.String) else column_type.compile(dialect=dialect)
        if name in STREAM_COLUMNS:
            selected.append(f"${STREAM_COLUMNS.index(name) + 1}::{element}")
            continue
        arrays.append(f"${param}::{element}[]")
        aliases.append(quote(name))
        selected.append(f"u.{quote(name)}::JSON" if is_json else f"u.{quote(name)}")
        param += 1
    sql = (f"INSERT INTO {quote(target.table.name)} ({', '.join(quote(n) for n in target.columns)}) "
           f"SELECT {', '.join(selected)} FROM unnest({', '.join(arrays)}) AS u({', '.join(aliases)}) "
           f"ON CONFLICT ({', '.join(quote(k) for k in target.key)}) DO NOTHING")
    return sql, param


def column_arrays(rows: list[Row], target: Target) -> list[list[Any]]:
    """The rows as one list per non-stream column, in ``target.columns`` order (for unnest)."""
    json_columns = target.json_columns
    return [[json.dumps(row[name]) for row in rows] if name in json_columns else [row[name] for row in rows]
            for name in target.columns if name not in STREAM_COLUMNS]


class SQLiteWriter:
    """A dedicated stdlib connection on a dedicated thread: one executor call per tick."""

    def __init__(self, engine: AsyncEngine) -> None:
        # The engine's own arguments (file, URI mode); the connection is opened, used and closed on the
        # one thread below, so sqlite3 may check that.
        args, kwargs = engine.dialect.create_connect_args(engine.url)
        self._connect_args: tuple[Sequence[Any], dict[str, Any]] = (args, {**kwargs, "check_same_thread": True})
        self._where = db.display_url(engine.url)
        self._decisions_sql = insert_sql(engine, DECISION_TARGET)
        self._events_sql = insert_sql(engine, EVENT_TARGET)
        self._thread: ThreadPoolExecutor | None = None  # started by the first tick, stopped by close()
        self._connection: sqlite3.Connection | None = None
        # Writers that tick at the same instant do not all checkpoint at the same tick.
        self._ticks_to_checkpoint = random.randint(1, CHECKPOINT_EVERY_TICKS)

    async def write(self, decisions: list[Row], events: list[Row]) -> None:
        decision_values = [row_values(row, DECISION_TARGET) for row in decisions]
        event_values = [row_values(row, EVENT_TARGET) for row in events]
        abort = threading.Event()
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-tick-writer")
        try:
            await asyncio.get_running_loop().run_in_executor(
                self._thread, self._write, decision_values, event_values, abort)
        except asyncio.CancelledError:
            abort.set()  # a tick whose caller gave up is rolled back unless it has already committed
            raise
        except sqlite3.Error as exc:
            raise DatabaseUnavailableError(f"cannot save a tick to {self._where}: {exc}") from exc
        self._ticks_to_checkpoint -= 1
        if self._ticks_to_checkpoint <= 0:
            self._ticks_to_checkpoint = CHECKPOINT_EVERY_TICKS
            self._thread.submit(self._checkpoint)

    async def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(thread, self._close)  # after any tick in flight
        finally:
            thread.shutdown(wait=False)

    def _write(self, decisions: list[tuple[Any, ...]], events: list[tuple[Any, ...]], abort: threading.Event
               ) -> None:
        connection = self._connection
        if connection is None:
            args, kwargs = self._connect_args
            connection = self._connection = sqlite3.connect(*args, **kwargs)
            db.configure_sqlite_connection(connection)
            connection.execute("PRAGMA wal_autocheckpoint=0")  # see _checkpoint
        connection.execute("BEGIN IMMEDIATE")  # waits for the write lock (busy_timeout), never mid-way
        try:
            if decisions:
                connection.executemany(self._decisions_sql, decisions)
            if events:
                connection.executemany(self._events_sql, events)
            if abort.is_set():
                raise _Abandoned
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def _checkpoint(self) -> None:
        """Copy the WAL into the database file, on this thread after a tick was answered. PASSIVE: it
        waits for nobody; what readers still use is copied by a later one."""
        if self._connection is None:
            return
        try:
            self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error:
            log.warning("WAL checkpoint of %s failed; the next one retries", self._where, exc_info=True)

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class PostgresWriter:
    """One unnest statement per tick on a connection held from the engine's pool."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._where = db.display_url(engine.url)
        decisions_sql, after = unnest_insert_sql(DECISION_TARGET, 3)
        # Three statements, so that a tick with nothing for one table does not plan an insert into it.
        self._sql = {
            (True, False): decisions_sql,
            (False, True): unnest_insert_sql(EVENT_TARGET, 3)[0],
            (True, True): f"WITH d AS ({decisions_sql}) {unnest_insert_sql(EVENT_TARGET, after)[0]}",
        }
        self._held: AsyncConnection | None = None
        self._lock = asyncio.Lock()  # an asyncpg connection runs one operation at a time

    async def write(self, decisions: list[Row], events: list[Row]) -> None:
        if not decisions and not events:
            return
        first = decisions[0] if decisions else events[0]
        args: list[Any] = [first["account"], first["region"]]
        if decisions:
            args += column_arrays(decisions, DECISION_TARGET)
        if events:
            args += column_arrays(events, EVENT_TARGET)
        sql = self._sql[bool(decisions), bool(events)]
        async with self._lock:
            try:
                await self._execute(sql, args)
            except Exception:
                # The held connection may have died (server restart, idle kill): the tick is idempotent,
                # so it is retried once on a fresh one, as the pool's pre-ping would have done.
                await self._drop()
                try:
                    await self._execute(sql, args)
                except Exception as exc:
                    await self._drop()
                    raise DatabaseUnavailableError(f"cannot save a tick to {self._where}: "
                                                   f"{_first_line(exc)}") from exc
            # A cancelled tick keeps the connection: asyncpg asks the server to cancel the statement, and
            # the next tick waits until it has, so a tick cut off before the server ran it is not written.

    async def close(self) -> None:
        async with self._lock:
            if self._held is not None:
                held, self._held = self._held, None
                await held.close()

    async def _execute(self, sql: str, args: list[Any]) -> None:
        if self._held is None:
            self._held = await self._engine.connect()
        driver: Any = (await self._held.get_raw_connection()).driver_connection  # an asyncpg.Connection
        await driver.execute(sql, *args)

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
        self._decisions = sqlite.insert(DECISIONS).on_conflict_do_nothing(index_elements=list(DECISION_TARGET.key))
        self._events = sqlite.insert(STREAM_EVENTS).on_conflict_do_nothing(index_elements=list(EVENT_TARGET.key))

    async def write(self, decisions: list[Row], events: list[Row]) -> None:
        async with self._engine.begin() as conn:
            if decisions:
                await conn.execute(self._decisions, decisions)
            if events:
                await conn.execute(self._events, events)

    async def close(self) -> None:
        return None


class _Abandoned(Exception):
    """The caller was cancelled before COMMIT: roll back (nobody awaits this error)."""


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
