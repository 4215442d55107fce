"""The Store: what region actors and the API read and write, one async method per question.

Writes come in batches, one transaction each, never one per event: an actor collects a tick's decisions
and saves them together. Every batch is validated whole by the codec before the transaction starts, so a
bad item rejects the batch and leaves earlier batches untouched. Saving is idempotent by (account,
region, seq) — ``INSERT ... ON CONFLICT DO NOTHING`` — so an actor may retry a batch after a timeout;
the first write of a seq wins. Decisions are written by :mod:`actors.store.writer` in one hop to the
driver per batch, because that write is on the path of every decision to a dashboard.
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
from actors.store.codec import DecisionRecord
from actors.store.errors import DatabaseUnavailableError, InvalidRecordError
from actors.store.migrate import current_revision, head_revision, upgrade
from actors.store.tables import DECISIONS, INSTANCES
from engine.types import Action, Decision, Instance

MAX_PAGE = 1000  # list_decisions: a page for a person or a dashboard
MAX_REPLAY = 10_000  # decisions_after: a catch-up chunk for a reconnecting client
PING_TIMEOUT_S = 2.0


class Store:
    """Decisions and instances of every (account, region) stream, on SQLite or PostgreSQL."""

    def __init__(self, engine: AsyncEngine) -> None:
        """Wrap an engine that is already at the head revision; prefer :meth:`open`."""
        self._engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._decisions = writer.decision_writer(engine)

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
        """Release the decisions writer's connection and every pooled one."""
        try:
            await self._decisions.close()
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

    # --- decisions -----------------------------------------------------------------------------------

    async def save_decisions(self, account: str, region: str, batch: Sequence[tuple[int, Decision]]) -> None:
        """Write (seq, decision) pairs in one transaction; already-stored seqs are skipped, not errors."""
        rows: list[dict[str, Any]] = []
        seen: set[int] = set()
        for i, item in enumerate(batch):
            try:
                seq, decision = item
                row = codec.decision_to_row(account, region, seq, decision)
            except InvalidRecordError as exc:
                raise InvalidRecordError(f"batch[{i}].{exc.field}", exc.message) from None
            except (TypeError, ValueError) as exc:
                raise InvalidRecordError(f"batch[{i}]", f"must be a (seq, Decision) pair: {exc}") from None
            if row["seq"] in seen:
                raise InvalidRecordError(f"batch[{i}].seq", f"seq {row['seq']} appears twice in the batch")
            seen.add(row["seq"])
            rows.append(row)
        if rows:
            await self._decisions.write(rows)

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

    async def max_decision_seq(self, account: str, region: str) -> int:
        """The newest seq of the stream, 0 when it has none (an actor resumes numbering after it)."""
        c = DECISIONS.c
        query = sa.select(sa.func.coalesce(sa.func.max(c.seq), 0)).where(c.account == account, c.region == region)
        async with self._engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def _records(self, query: sa.Select[Any]) -> list[DecisionRecord]:
        async with self._engine.connect() as conn:
            result = await conn.execute(query)
            return [codec.record_from_row(row) for row in result.mappings()]

    # --- instances -----------------------------------------------------------------------------------

    async def upsert_instances(self, account: str, region: str, instances: Sequence[Instance], now_s: float) -> None:
        """Insert or overwrite instances by id, in one transaction, stamping ``updated_at_s = now_s``."""
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
        if not rows:
            return
        insert = self._insert(INSTANCES)
        keys = ("account", "region", "instance_id")
        statement = insert.on_conflict_do_update(
            index_elements=list(keys),
            set_={name: insert.excluded[name] for name in rows[0] if name not in keys},
        )
        async with self._engine.begin() as conn:
            await conn.execute(statement, rows)

    async def list_instances(self, account: str, region: str) -> list[Instance]:
        """The stream's instances, ordered by id."""
        c = INSTANCES.c
        query = sa.select(INSTANCES).where(c.account == account, c.region == region).order_by(c.instance_id)
        async with self._engine.connect() as conn:
            result = await conn.execute(query)
            return [codec.instance_from_row(row) for row in result.mappings()]

    async def remove_instances(self, account: str, region: str, instance_ids: Sequence[str]) -> None:
        """Forget instances (terminated); unknown ids are ignored."""
        ids = list(instance_ids)
        for i, instance_id in enumerate(ids):
            if not isinstance(instance_id, str):
                raise InvalidRecordError(f"instance_ids[{i}]", f"must be a string, got {instance_id!r}")
        if not ids:
            return
        c = INSTANCES.c
        statement = sa.delete(INSTANCES).where(c.account == account, c.region == region, c.instance_id.in_(ids))
        async with self._engine.begin() as conn:
            await conn.execute(statement)

    # --- streams -------------------------------------------------------------------------------------

    async def known_streams(self) -> list[tuple[str, str]]:
        """Every (account, region) with a decision or an instance, sorted."""
        d, i = DECISIONS.c, INSTANCES.c
        query = sa.union(sa.select(d.account, d.region).distinct(), sa.select(i.account, i.region).distinct())
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return sorted((str(account), str(region)) for account, region in rows)


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
