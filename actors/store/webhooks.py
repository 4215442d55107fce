"""Webhooks repository: an account's webhooks, the deliveries owed to them, and the consumer's cursors.

It shares the Store's engine (``Webhooks(store.engine)``). Every state change of a delivery is a row
update, so a consumer that restarts (or a second one beside it) continues from the database:

* **matching** (:meth:`Webhooks.match_stream`) reads a stream's stored decisions and alerts after the
  stream's cursor, inserts one delivery per (webhook, event) — ``ON CONFLICT DO NOTHING`` on the
  idempotency key, so matching twice owes once — and moves the cursor, in one transaction;
* **claiming** (:meth:`Webhooks.claim_due`) pushes a due delivery's ``next_attempt_at_s`` forward by a
  lease, conditional on the value it read: of two consumers only one sends it; if the sender dies, the
  lease runs out and it is sent again (at least once);
* **recording** an attempt sets ``delivered``, or the next retry, or ``failed`` after the last attempt.

A new webhook of an account that had none starts its streams' cursors at their newest seq: it is owed
what happens from now on, not the account's history.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from actors.notify.matching import ALERT_EVENTS, DECISION_EVENTS, Owed, owed_for_alert, owed_for_decision
from actors.notify.signing import new_secret
from actors.store import codec
from actors.store.db import write_transaction
from actors.store.tables import DECISIONS, STREAM_EVENTS, WEBHOOK_CURSORS, WEBHOOK_DELIVERIES, WEBHOOKS
from actors.store.tenancy import new_id
from actors.store.tenancy_tables import ACCOUNTS

PENDING, DELIVERED, FAILED, CANCELLED = "pending", "delivered", "failed", "cancelled"
DELIVERY_STATUSES = (PENDING, DELIVERED, FAILED, CANCELLED)
MATCH_CHUNK = 1000  # stored events read per stream and topic in one matching transaction
MAX_ERROR_LEN = 500
DECISIONS_TOPIC, ALERTS_TOPIC, DAILY_REPORT_TOPIC = "decisions", "alerts", "daily_report"


@dataclass(frozen=True, slots=True)
class Webhook:
    id: str
    account: str
    url: str
    events: tuple[str, ...]
    created_at_s: float


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    webhook_id: str
    event: str
    idempotency_key: str
    status: str
    attempts: int
    created_at_s: float
    next_attempt_at_s: float | None
    last_attempt_at_s: float | None
    last_status_code: int | None
    last_error: str | None
    delivered_at_s: float | None


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A claimed delivery with what sending it needs."""

    id: int
    webhook_id: str
    url: str
    secret: str
    event: str
    idempotency_key: str
    payload: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Subscriptions:
    """An account's live webhooks, as the consumer matches them: each one's id and events."""

    account: str
    regions: tuple[str, ...]
    webhooks: tuple[tuple[str, frozenset[str]], ...]

    @property
    def wanted(self) -> frozenset[str]:
        return frozenset().union(*(events for _, events in self.webhooks))


class Webhooks:
    """Webhooks, deliveries and cursors, on the Store's engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    # --- webhooks ------------------------------------------------------------------------------------

    async def create(self, account: str, url: str, events: Iterable[str], now_s: float) -> tuple[Webhook, str]:
        """A new webhook and its signing secret (stored to sign; returned here only)."""
        webhook = Webhook(new_id("wh"), account, url, tuple(events), now_s)
        secret = new_secret()
        c = WEBHOOKS.c
        async with write_transaction(self._engine) as conn:
            others = (await conn.execute(sa.select(sa.func.count()).select_from(WEBHOOKS)
                                         .where(c.account == account, c.deleted_at_s.is_(None)))).scalar_one()
            if not others:
                await self._start_cursors_at_newest(conn, account)
            await conn.execute(sa.insert(WEBHOOKS).values(id=webhook.id, account=account, url=url,
                                                          events=list(webhook.events), secret=secret,
                                                          created_at_s=now_s))
        return webhook, secret

    async def _start_cursors_at_newest(self, conn: AsyncConnection, account: str) -> None:
        d, e, k = DECISIONS.c, STREAM_EVENTS.c, WEBHOOK_CURSORS.c
        # Daily reports start again from the stream's clock when first seen (see the dispatcher).
        await conn.execute(sa.delete(WEBHOOK_CURSORS).where(k.account == account, k.topic == DAILY_REPORT_TOPIC))
        newest = [(region, DECISIONS_TOPIC, seq) for region, seq in await conn.execute(
            sa.select(d.region, sa.func.max(d.seq)).where(d.account == account).group_by(d.region))]
        newest += [(region, ALERTS_TOPIC, seq) for region, seq in await conn.execute(
            sa.select(e.region, sa.func.max(e.seq)).where(e.account == account, e.topic == ALERTS_TOPIC)
            .group_by(e.region))]
        for region, topic, seq in newest:
            await self._set_cursor(conn, account, region, topic, int(seq))

    async def _set_cursor(self, conn: AsyncConnection, account: str, region: str, topic: str, seq: int) -> None:
        statement = self._insert(WEBHOOK_CURSORS).values(account=account, region=region, topic=topic, seq=seq)
        await conn.execute(statement.on_conflict_do_update(index_elements=["account", "region", "topic"],
                                                           set_={"seq": statement.excluded.seq}))

    async def of_account(self, account: str) -> list[Webhook]:
        """The account's live webhooks, oldest first."""
        c = WEBHOOKS.c
        query = (sa.select(WEBHOOKS).where(c.account == account, c.deleted_at_s.is_(None))
                 .order_by(c.created_at_s, c.id))
        async with self._engine.connect() as conn:
            return [_webhook(r) for r in (await conn.execute(query)).mappings()]

    async def get(self, account: str, webhook_id: str) -> Webhook | None:
        """The account's live webhook ``webhook_id``; None for another account's, a removed or unknown one."""
        c = WEBHOOKS.c
        query = sa.select(WEBHOOKS).where(c.id == webhook_id, c.account == account, c.deleted_at_s.is_(None))
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return _webhook(row) if row else None

    async def delete(self, account: str, webhook_id: str, now_s: float) -> bool:
        """Remove a webhook (a tombstone) and cancel what it is still owed; False when there is none."""
        c, dc = WEBHOOKS.c, WEBHOOK_DELIVERIES.c
        async with write_transaction(self._engine) as conn:
            removed = await conn.execute(sa.update(WEBHOOKS).where(
                c.id == webhook_id, c.account == account, c.deleted_at_s.is_(None)).values(deleted_at_s=now_s))
            if removed.rowcount != 1:
                return False
            await conn.execute(sa.update(WEBHOOK_DELIVERIES).where(dc.webhook_id == webhook_id, dc.status == PENDING)
                               .values(status=CANCELLED, next_attempt_at_s=None))
        return True

    async def deliveries(self, webhook_id: str, *, limit: int = 100, before: int | None = None,
                         status: str | None = None) -> list[Delivery]:
        """A webhook's deliveries, newest first; ``before``: ids below it (the next page)."""
        c = WEBHOOK_DELIVERIES.c
        query = sa.select(WEBHOOK_DELIVERIES).where(c.webhook_id == webhook_id)
        if before is not None:
            query = query.where(c.id < before)
        if status is not None:
            query = query.where(c.status == status)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query.order_by(c.id.desc()).limit(limit))).mappings()
            return [_delivery(r) for r in rows]

    # --- matching ------------------------------------------------------------------------------------

    async def subscriptions(self) -> list[Subscriptions]:
        """Every live account with live webhooks: its regions and each webhook's events."""
        w, a = WEBHOOKS.c, ACCOUNTS.c
        query = (sa.select(w.id, w.account, w.events, a.regions).join(ACCOUNTS, a.name == w.account)
                 .where(w.deleted_at_s.is_(None), a.deleted_at_s.is_(None)).order_by(w.account, w.id))
        found: dict[str, tuple[tuple[str, ...], list[tuple[str, frozenset[str]]]]] = {}
        async with self._engine.connect() as conn:
            for row in await conn.execute(query):
                found.setdefault(row.account, (tuple(row.regions), []))[1].append((row.id, frozenset(row.events)))
        return [Subscriptions(account, regions, tuple(hooks)) for account, (regions, hooks) in found.items()]

    async def stream_clock(self, account: str, region: str) -> float | None:
        """The stream's own time: its newest stored tick (prices event or decision); None before any."""
        d, e = DECISIONS.c, STREAM_EVENTS.c
        query = sa.select(
            sa.select(sa.func.max(d.decided_at_s)).where(d.account == account, d.region == region).scalar_subquery(),
            sa.select(sa.func.max(e.at_s)).where(e.account == account, e.region == region, e.topic == "prices")
            .scalar_subquery())
        async with self._engine.connect() as conn:
            times = [t for t in (await conn.execute(query)).one() if t is not None]
        return max(times) if times else None

    async def cursor(self, account: str, region: str, topic: str) -> int:
        c = WEBHOOK_CURSORS.c
        query = sa.select(c.seq).where(c.account == account, c.region == region, c.topic == topic)
        async with self._engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one_or_none() or 0)

    async def match_stream(self, subs: Subscriptions, region: str, now_s: float) -> int:
        """Turn the stream's stored events after its cursors into deliveries for ``subs``' webhooks and
        move the cursors, one transaction per topic; returns how many deliveries were added."""
        added = await self._match_decisions(subs, region, now_s)
        return added + await self._match_alerts(subs, region, now_s)

    async def _match_decisions(self, subs: Subscriptions, region: str, now_s: float) -> int:
        d = DECISIONS.c
        after = await self.cursor(subs.account, region, DECISIONS_TOPIC)
        stream = (d.account == subs.account, d.region == region)
        async with self._engine.connect() as conn:
            newest = int((await conn.execute(sa.select(sa.func.coalesce(sa.func.max(d.seq), 0))
                                             .where(*stream))).scalar_one())
            if newest <= after:
                return 0
            query = (sa.select(DECISIONS).where(*stream, d.seq > after, d.seq <= newest,
                                                sa.or_(d.action == "fallback_on_demand", d.rule == "interrupted"))
                     .order_by(d.seq).limit(MATCH_CHUNK))
            rows = list((await conn.execute(query)).mappings()) if subs.wanted & DECISION_EVENTS else []
        upto = int(rows[-1]["seq"]) if len(rows) == MATCH_CHUNK else newest
        owed = [o for r in rows
                for o in owed_for_decision(subs.account, region, codec.record_from_row(r).to_json(), subs.wanted)]
        return await self.owe(subs, region, DECISIONS_TOPIC, owed, upto, now_s)

    async def _match_alerts(self, subs: Subscriptions, region: str, now_s: float) -> int:
        e = STREAM_EVENTS.c
        after = await self.cursor(subs.account, region, ALERTS_TOPIC)
        query = (sa.select(e.seq, e.payload).where(e.account == subs.account, e.region == region,
                                                   e.topic == ALERTS_TOPIC, e.seq > after)
                 .order_by(e.seq).limit(MATCH_CHUNK))
        async with self._engine.connect() as conn:
            rows = list(await conn.execute(query))
        if not rows:
            return 0
        owed = []
        if subs.wanted & ALERT_EVENTS:
            for seq, payload in rows:
                alert = _json_object(payload)
                owed += owed_for_alert(subs.account, region, int(seq), alert, subs.wanted)
        return await self.owe(subs, region, ALERTS_TOPIC, owed, int(rows[-1][0]), now_s)

    async def owe(self, subs: Subscriptions, region: str, topic: str, owed: Sequence[Owed], upto: int,
                  now_s: float) -> int:
        """Add a delivery of each owed event to each of ``subs``' webhooks subscribed to it (once per key)
        and set the stream topic's cursor to ``upto``, in one transaction; returns how many were added."""
        values = [{"webhook_id": webhook_id, "event": o.event, "idempotency_key": o.idempotency_key,
                   "payload": o.body, "status": PENDING, "attempts": 0, "created_at_s": now_s,
                   "next_attempt_at_s": now_s}
                  for o in owed for webhook_id, events in subs.webhooks if o.event in events]
        added = 0
        async with write_transaction(self._engine) as conn:
            for value in values:
                statement = self._insert(WEBHOOK_DELIVERIES).values(**value).on_conflict_do_nothing(
                    index_elements=["webhook_id", "idempotency_key"])
                added += (await conn.execute(statement)).rowcount
            await self._set_cursor(conn, subs.account, region, topic, upto)
        return added

    # --- delivering ----------------------------------------------------------------------------------

    async def claim_due(self, now_s: float, lease_s: float, limit: int, per_webhook: int,
                        in_flight: Mapping[str, int] | None = None) -> list[DueDelivery]:
        """Up to ``limit`` pending deliveries due by ``now_s`` of live webhooks, oldest due first, but no
        more than ``per_webhook`` for one webhook counting the caller's ``in_flight`` ones (so a webhook
        with a backlog, or one that hangs, leaves room for the others). Each is leased to the caller for
        ``lease_s``: another consumer skips it until then. Read first, then taken in a write transaction
        only when something is due, each row on condition that nobody took it meanwhile."""
        busy = dict(in_flight or {})
        d, w = WEBHOOK_DELIVERIES.c, WEBHOOKS.c
        rank = sa.func.row_number().over(partition_by=d.webhook_id, order_by=(d.next_attempt_at_s, d.id))
        due = (sa.select(d.id, d.webhook_id, d.next_attempt_at_s, rank.label("rank"))
               .join(WEBHOOKS, w.id == d.webhook_id)
               .where(d.status == PENDING, d.next_attempt_at_s <= now_s, w.deleted_at_s.is_(None))
               .subquery())
        query = (sa.select(due.c.id, due.c.webhook_id, due.c.next_attempt_at_s).where(due.c.rank <= per_webhook)
                 .order_by(due.c.next_attempt_at_s, due.c.id).limit(limit + sum(busy.values())))
        async with self._engine.connect() as conn:
            candidates = (await conn.execute(query)).all()
        chosen: list[Any] = []
        for row in candidates:
            if len(chosen) < limit and busy.get(row.webhook_id, 0) < per_webhook:
                busy[row.webhook_id] = busy.get(row.webhook_id, 0) + 1
                chosen.append(row)
        if not chosen:
            return []
        taken_ids = []
        async with write_transaction(self._engine) as conn:
            for row in chosen:
                taken = await conn.execute(sa.update(WEBHOOK_DELIVERIES).where(
                    d.id == row.id, d.status == PENDING, d.next_attempt_at_s == row.next_attempt_at_s)
                    .values(next_attempt_at_s=now_s + lease_s))
                if taken.rowcount == 1:
                    taken_ids.append(row.id)
            details = (await conn.execute(
                sa.select(d.id, d.webhook_id, w.url, w.secret, d.event, d.idempotency_key, d.payload, d.attempts)
                .join(WEBHOOKS, w.id == d.webhook_id).where(d.id.in_(taken_ids)).order_by(d.id))).all()
        return [DueDelivery(r.id, r.webhook_id, r.url, r.secret, r.event, r.idempotency_key, r.payload, r.attempts)
                for r in details]

    async def record_delivered(self, delivery_id: int, attempts: int, status_code: int, now_s: float) -> None:
        await self._record(delivery_id, status=DELIVERED, attempts=attempts, last_attempt_at_s=now_s,
                           last_status_code=status_code, last_error=None, next_attempt_at_s=None,
                           delivered_at_s=now_s)

    async def record_failed_attempt(self, delivery_id: int, attempts: int, status_code: int | None, error: str,
                                    now_s: float, next_attempt_at_s: float | None) -> None:
        """A failed attempt: retried at ``next_attempt_at_s``, or ``failed`` for good when it is None."""
        await self._record(delivery_id, status=PENDING if next_attempt_at_s is not None else FAILED,
                           attempts=attempts, last_attempt_at_s=now_s, last_status_code=status_code,
                           last_error=error[:MAX_ERROR_LEN], next_attempt_at_s=next_attempt_at_s)

    async def _record(self, delivery_id: int, **values: Any) -> None:
        c = WEBHOOK_DELIVERIES.c
        async with write_transaction(self._engine) as conn:  # a delivery cancelled meanwhile stays cancelled
            await conn.execute(sa.update(WEBHOOK_DELIVERIES).where(c.id == delivery_id, c.status == PENDING)
                               .values(**values))


def _webhook(row: Mapping[Any, Any]) -> Webhook:
    return Webhook(row["id"], row["account"], row["url"], tuple(row["events"]), row["created_at_s"])


def _delivery(row: Mapping[Any, Any]) -> Delivery:
    return Delivery(row["id"], row["webhook_id"], row["event"], row["idempotency_key"], row["status"],
                    row["attempts"], row["created_at_s"], row["next_attempt_at_s"], row["last_attempt_at_s"],
                    row["last_status_code"], row["last_error"], row["delivered_at_s"])


def _json_object(payload: str) -> dict[str, Any]:
    """A stored alert's payload (JSON object text, checked on the way in); anything else matches nothing."""
    try:
        doc = json.loads(payload)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}
