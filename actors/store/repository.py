"""The Store: what region actors and the API read and write, one async method per question.

Writes come in batches, one transaction each, never one per event: an actor collects a tick's decisions
and its other stream events (prices, instances, alerts) and saves them together with :meth:`Store.save_tick`.
Every tick is validated whole before the transaction starts, so a bad item rejects the tick and leaves
earlier ticks untouched. Saving is idempotent by (account, region, seq) for decisions and (account,
region, topic, seq) for events — ``INSERT ... ON CONFLICT DO NOTHING`` — so an actor may retry a tick
after a timeout; the first write of a seq wins. Ticks are written by :mod:`actors.store.writer` in one hop
to the driver, because that write is on the path of every event to a dashboard.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from actors.store import codec, db, writer
from actors.store.checkpoints import KEEP_CHECKPOINTS, CheckpointRecord, checkpoint_from_row, checkpoint_row
from actors.store.db import write_transaction
from actors.store.decision_json import DecisionRecord
from actors.store.errors import DatabaseUnavailableError, InvalidRecordError
from actors.store.events import StreamEvent, check_topic, event_from_row, event_to_row
from actors.store.fields import check_string
from actors.store.migrate import current_revision, head_revision, upgrade
from actors.store.tables import ACCOUNT_MAX_LEN, CHECKPOINTS, DECISIONS, INSTANCES, REGION_MAX_LEN, STREAM_EVENTS
from actors.topics import DECISIONS_TOPIC, EVENT_TOPICS
from engine.types import Action, Decision, Instance

MAX_PAGE = 1000  # list_decisions: a page for a person or a dashboard
MAX_REPLAY = 10_000  # decisions_after, events_after, events_window: a catch-up chunk or a chart's window
PING_TIMEOUT_S = 2.0
# Retention deletes this many events per transaction, then pauses: on SQLite every writer waits while one
# runs (~8 ms for 100 prices events of 9 KB), and a tick's write must not wait behind a day of prices; the
# pause lets the writers that queued (their busy handlers retry after 1, 2, 5, 10 ms...) take the lock.
PRUNE_CHUNK = 100
PRUNE_PAUSE_S = 0.01


class Store:
    """Decisions and instances of every (account, region) stream, on SQLite or PostgreSQL."""

    def __init__(self, engine: AsyncEngine) -> None:
        """Wrap an engine that is already at the head revision; prefer :meth:`open`."""
        self._engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._ticks = writer.tick_writer(engine)

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> Store:
        """Connect to ``url`` and, unless ``migrate=False``, upgrade its schema to head.

        Raises DatabaseURLError for a bad URL and DatabaseUnavailableError when the database cannot be
        reached or (with ``migrate=False``) is not at the revision this code expects.
        """
        parsed = db.parse_database_url(url)
        db.check_sqlite_directory(parsed)
        engine = db.create_engine(parsed)
        where = db.display_url(parsed)
        try:
            if migrate:
                await upgrade(engine)
            current = await current_revision(engine)
        except (SQLAlchemyError, OSError) as exc:
            await engine.dispose()
            raise DatabaseUnavailableError(f"cannot open database {where}: {_describe(exc)}") from exc
        except BaseException:
            await engine.dispose()
            raise
        head = head_revision()
        if current != head:
            await engine.dispose()
            raise DatabaseUnavailableError(
                f"database {where} is at schema revision {current or 'none'}, this code needs {head}: "
                "run `spot-optimizer db upgrade`"
            )
        return cls(engine)

    @property
    def engine(self) -> AsyncEngine:
        """The underlying engine, for callers that add their own tables to the same database."""
        return self._engine

    async def close(self) -> None:
        """Release the tick writer's connection and every pooled one."""
        try:
            await self._ticks.close()
        finally:
            await self._engine.dispose()

    async def ping(self) -> bool:
        """True when a trivial query answers within PING_TIMEOUT_S (for /readyz)."""
        try:
            async with asyncio.timeout(PING_TIMEOUT_S), self._engine.connect() as conn:
                await conn.execute(sa.select(1))
        except (SQLAlchemyError, OSError, TimeoutError):
            return False
        return True

    # --- ticks: decisions and events, written together ----------------------------------------------

    async def save_tick(
        self,
        account: str,
        region: str,
        decisions: Sequence[tuple[int, Decision]],
        events: Sequence[StreamEvent],
    ) -> None:
        """Write a tick's (seq, decision) pairs and events in one transaction, or nothing.

        Validated whole first: an InvalidRecordError names the item, e.g. ``decisions[1].decision.action``
        or ``events[0].payload``. Idempotent: an already-stored (account, region, seq) decision or
        (account, region, topic, seq) event is skipped, not an error (the first write wins). Nothing to
        write: no transaction.
        """
        decision_rows = _decision_rows(account, region, decisions)
        event_rows = _event_rows(account, region, events)
        if decision_rows or event_rows:
            await self._ticks.write(decision_rows, event_rows)

    # --- decisions -----------------------------------------------------------------------------------

    async def list_decisions(
        self,
        account: str,
        region: str,
        *,
        limit: int = 50,
        before: int | None = None,
        action: Action | None = None,
        instance_id: str | None = None,
        since_s: float | None = None,
        until_s: float | None = None,
    ) -> list[DecisionRecord]:
        """Newest first; ``before`` is an exclusive seq cursor, ``since_s`` inclusive, ``until_s`` exclusive."""
        _check_limit(limit, MAX_PAGE)
        c = DECISIONS.c
        query = sa.select(DECISIONS).where(c.account == account, c.region == region)
        if before is not None:
            query = query.where(c.seq < _int(before, "before"))
        if action is not None:
            query = query.where(c.action == _action(action).value)
        if instance_id is not None:
            query = query.where(c.instance_id == instance_id)
        if since_s is not None:
            query = query.where(c.decided_at_s >= _number(since_s, "since_s"))
        if until_s is not None:
            query = query.where(c.decided_at_s < _number(until_s, "until_s"))
        return await self._records(query.order_by(c.seq.desc()).limit(limit))

    async def decisions_after(
        self, account: str, region: str, after_seq: int, limit: int = 1000
    ) -> list[DecisionRecord]:
        """Oldest first, every seq > ``after_seq``: what a reconnecting client missed."""
        _check_limit(limit, MAX_REPLAY)
        c = DECISIONS.c
        query = (
            sa.select(DECISIONS)
            .where(c.account == account, c.region == region, c.seq > _int(after_seq, "after_seq"))
            .order_by(c.seq.asc())
            .limit(limit)
        )
        return await self._records(query)

    async def _records(self, query: sa.Select[Any]) -> list[DecisionRecord]:
        async with self._engine.connect() as conn:
            result = await conn.execute(query)
            return [codec.record_from_row(row) for row in result.mappings()]

    # --- events --------------------------------------------------------------------------------------

    async def events_after(
        self, account: str, region: str, topic: str, after_seq: int, limit: int = MAX_REPLAY
    ) -> list[StreamEvent]:
        """Oldest first, every event of ``topic`` with seq > ``after_seq``: what a reconnecting client missed."""
        _check_limit(limit, MAX_REPLAY)
        c = STREAM_EVENTS.c
        query = (
            sa.select(c.topic, c.seq, c.at_s, c.payload)
            .where(c.account == account, c.region == region, c.topic == _topic(topic),
                   c.seq > _int(after_seq, "after_seq"))
            .order_by(c.seq.asc())
            .limit(limit)
        )
        return await self._events(query)

    async def events_window(
        self,
        account: str,
        region: str,
        topic: str,
        since_s: float | None,
        until_s: float | None,
        limit: int = 1000,
    ) -> list[StreamEvent]:
        """The newest ``limit`` events of ``topic`` with ``since_s <= at_s < until_s`` (None: unbounded),
        returned oldest first; "newest" is by seq, the stream's own order."""
        _check_limit(limit, MAX_REPLAY)
        c = STREAM_EVENTS.c
        query = sa.select(c.topic, c.seq, c.at_s, c.payload).where(
            c.account == account, c.region == region, c.topic == _topic(topic))
        if since_s is not None:
            query = query.where(c.at_s >= _number(since_s, "since_s"))
        if until_s is not None:
            query = query.where(c.at_s < _number(until_s, "until_s"))
        newest_first = await self._events(query.order_by(c.seq.desc()).limit(limit))
        newest_first.reverse()
        return newest_first

    async def max_event_seqs(self, account: str, region: str) -> dict[str, int]:
        """Per topic (``decisions`` and every event topic) the highest stored seq, 0 when none: an actor
        resumes numbering each topic after it. One query, one index lookup per topic."""
        d, e = DECISIONS.c, STREAM_EVENTS.c
        newest = [
            sa.select(sa.func.coalesce(sa.func.max(d.seq), 0))
            .where(d.account == account, d.region == region).scalar_subquery()
        ]
        newest += [
            sa.select(sa.func.coalesce(sa.func.max(e.seq), 0))
            .where(e.account == account, e.region == region, e.topic == topic).scalar_subquery()
            for topic in EVENT_TOPICS
        ]
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(*newest))).one()
        return {topic: int(seq) for topic, seq in zip((DECISIONS_TOPIC, *EVENT_TOPICS), row, strict=True)}

    async def prune_events(self, before_s: float, topics: Sequence[str] = ("prices",), *,
                           account: str | None = None, region: str | None = None) -> int:
        """Delete events of ``topics`` with ``at_s < before_s``; returns how many. ``account`` and
        ``region`` narrow it to one actor's streams (whose clock may be a replay's, not the wall's).

        Retention, run off the hot path: it deletes PRUNE_CHUNK events per transaction so that the
        actors' tick writes wait for one chunk at most, never for the whole deletion.
        """
        if isinstance(topics, str):
            raise ValueError(f"topics must be a sequence of topics, got the string {topics!r}")
        chosen = sorted({_topic(t) for t in topics})
        before = _number(before_s, "before_s")
        if not chosen:
            return 0
        c = STREAM_EVENTS.c
        key = sa.tuple_(c.account, c.region, c.topic, c.seq)
        chunk = sa.select(c.account, c.region, c.topic, c.seq).where(c.topic.in_(chosen), c.at_s < before)
        if account is not None:
            chunk = chunk.where(c.account == account)
        if region is not None:
            chunk = chunk.where(c.region == region)
        statement = sa.delete(STREAM_EVENTS).where(key.in_(chunk.limit(PRUNE_CHUNK)))
        deleted = 0
        while True:
            async with write_transaction(self._engine) as conn:
                count = (await conn.execute(statement)).rowcount
            deleted += count
            if count < PRUNE_CHUNK:
                return deleted
            await asyncio.sleep(PRUNE_PAUSE_S)

    async def _events(self, query: sa.Select[Any]) -> list[StreamEvent]:
        async with self._engine.connect() as conn:
            result = await conn.execute(query)
            return [event_from_row(row) for row in result.mappings()]

    # --- instances -----------------------------------------------------------------------------------

    async def save_fleet(self, account: str, region: str, instances: Sequence[Instance], now_s: float) -> None:
        """The stream's whole fleet, in one transaction: instances not in it are deleted (they left: a cloud
        replacement has a new id), the others inserted or overwritten."""
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        for i, instance in enumerate(instances):
            try:
                row = codec.instance_to_row(account, region, instance, now_s)
            except InvalidRecordError as exc:
                raise InvalidRecordError(f"instances[{i}].{exc.field}", exc.message) from None
            if row["instance_id"] in seen:
                raise InvalidRecordError(f"instances[{i}]", f"{row['instance_id']!r} appears twice")
            seen.add(row["instance_id"])
            rows.append(row)
        c = INSTANCES.c
        async with self._engine.begin() as conn:
            await conn.execute(sa.delete(INSTANCES).where(c.account == account, c.region == region,
                                                          c.instance_id.not_in(sorted(seen))))
            if rows:
                insert = self._insert(INSTANCES)
                keys = ("account", "region", "instance_id")
                statement = insert.on_conflict_do_update(
                    index_elements=list(keys),
                    set_={name: insert.excluded[name] for name in rows[0] if name not in keys},
                )
                await conn.execute(statement, rows)

    async def list_instances(self, account: str, region: str) -> list[Instance]:
        """The stream's instances, ordered by id."""
        c = INSTANCES.c
        query = sa.select(INSTANCES).where(c.account == account, c.region == region).order_by(c.instance_id)
        async with self._engine.connect() as conn:
            result = await conn.execute(query)
            return [codec.instance_from_row(row) for row in result.mappings()]

    async def fleet_updated_at_s(self, account: str, region: str) -> float | None:
        """When the stream's stored fleet last changed (the newest ``updated_at_s``), None with no fleet."""
        c = INSTANCES.c
        query = sa.select(sa.func.max(c.updated_at_s)).where(c.account == account, c.region == region)
        async with self._engine.connect() as conn:
            newest = (await conn.execute(query)).scalar_one()
        return None if newest is None else float(newest)

    # --- checkpoints ---------------------------------------------------------------------------------

    async def save_checkpoint(self, account: str, region: str, payload: bytes, *, version: int,
                              tick_s: float | None, created_at_s: float, sha256: str | None = None,
                              keep: int = KEEP_CHECKPOINTS) -> int:
        """Add a checkpoint of the stream and delete all but its ``keep`` newest, in one transaction;
        returns its id. ``sha256`` (hex) is the payload's, computed here when not given."""
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep must be a positive integer, got {keep!r}")
        row = checkpoint_row(account, region, payload, version=version, tick_s=tick_s,
                             created_at_s=created_at_s, sha256=sha256)
        c = CHECKPOINTS.c
        stream = (c.account == account, c.region == region)
        newest = sa.select(c.id).where(*stream).order_by(c.id.desc()).limit(keep)
        async with write_transaction(self._engine) as conn:
            new_id = (await conn.execute(sa.insert(CHECKPOINTS).returning(c.id), row)).scalar_one()
            await conn.execute(sa.delete(CHECKPOINTS).where(*stream, c.id.not_in(newest)))
        return int(new_id)

    async def load_checkpoints(self, account: str, region: str) -> list[CheckpointRecord]:
        """The stream's stored checkpoints, newest first (unchecked: see ``CheckpointRecord.intact``)."""
        c = CHECKPOINTS.c
        query = sa.select(CHECKPOINTS).where(c.account == account, c.region == region).order_by(c.id.desc())
        async with self._engine.connect() as conn:
            result = await conn.execute(query)
            return [checkpoint_from_row(row) for row in result.mappings()]


def _decision_rows(account: str, region: str, batch: Sequence[tuple[int, Decision]]) -> list[dict[str, Any]]:
    """Validated ``decisions`` rows; errors name ``decisions[i].field``."""
    rows: list[dict[str, Any]] = []
    seen: set[int] = set()
    for i, item in enumerate(batch):
        try:
            seq, decision = item
            row = codec.decision_to_row(account, region, seq, decision)
        except InvalidRecordError as exc:
            raise InvalidRecordError(f"decisions[{i}].{exc.field}", exc.message) from None
        except (TypeError, ValueError) as exc:
            raise InvalidRecordError(f"decisions[{i}]", f"must be a (seq, Decision) pair: {exc}") from None
        if row["seq"] in seen:
            raise InvalidRecordError(f"decisions[{i}].seq", f"seq {row['seq']} appears twice in the batch")
        seen.add(row["seq"])
        rows.append(row)
    return rows


def _event_rows(account: str, region: str, events: Sequence[StreamEvent]) -> list[dict[str, Any]]:
    """Validated ``stream_events`` rows; errors name ``events[i].field``."""
    if not events:
        return []
    check_string(account, "account", ACCOUNT_MAX_LEN)
    check_string(region, "region", REGION_MAX_LEN)
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, int]] = set()
    for i, event in enumerate(events):
        try:
            row = event_to_row(account, region, event)
        except InvalidRecordError as exc:
            raise InvalidRecordError(f"events[{i}].{exc.field}" if exc.field else f"events[{i}]",
                                     exc.message) from None
        key = (row["topic"], row["seq"])
        if key in seen:
            raise InvalidRecordError(f"events[{i}].seq", f"{key[0]} seq {key[1]} appears twice in the tick")
        seen.add(key)
        rows.append(row)
    return rows


def _check_limit(limit: int, maximum: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= maximum:
        raise ValueError(f"limit must be an integer in [1, {maximum}], got {limit!r}")


def _int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer seq, got {value!r}")
    return value


def _number(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be epoch seconds, got {value!r}")
    return float(value)


def _topic(value: str) -> str:
    try:
        return check_topic(value)
    except InvalidRecordError:
        raise ValueError(f"topic must be one of {', '.join(EVENT_TOPICS)}, got {value!r}") from None


def _action(value: Action | str) -> Action:
    try:
        return Action(value)
    except ValueError:
        allowed = ", ".join(a.value for a in Action)
        raise ValueError(f"action must be one of {allowed}, got {value!r}") from None


def _describe(exc: BaseException) -> str:
    """The driver's own words, without SQLAlchemy's multi-line background links."""
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    return lines[0] if lines else type(original).__name__
