"""The tables, as SQLModel models: one row per decision of a stream, one per other stream event, one per
known instance.

A *stream* is one (account, region); its decisions carry the stream's ``seq`` (1, 2, ...), assigned by
the region actor, unique in the stream, and the cursor for pagination and WebSocket resume. Pools are
stored as their two parts so they can be filtered; enums as their string values (portable, and a new
enum member needs no migration); the numbers and candidates behind a decision as JSON, read whole.

The other topics a region actor publishes (prices, instances, alerts) are stored whole, as the JSON text
a client receives, one row per event keyed by (account, region, topic, seq): the actor numbers each topic
itself, the store only keeps and replays them. Like decisions, events stay when their account is removed
(an account name is never reused, see ``tenancy_tables``); only retention (``Store.prune_events``)
deletes them, hence the (topic, at_s) index.

A region actor's checkpoints (its engine with the learned models, and where its streams stand) are rows
of ``checkpoints``: bytes the store does not interpret, with their format version and SHA-256.

Ids are BIGINT on PostgreSQL; on SQLite they must be INTEGER to alias the rowid and autoincrement.
The Alembic revisions in ``migrations/`` create exactly these tables (a test compares them).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

ACCOUNT_MAX_LEN = 128
REGION_MAX_LEN = 64
INSTANCE_ID_MAX_LEN = 255
INSTANCE_TYPE_MAX_LEN = 64
ZONE_MAX_LEN = 64
ENUM_MAX_LEN = 32
POLICY_MAX_LEN = 128
FLEET_MAX_LEN = 128
TOPIC_MAX_LEN = 32
SHA256_LEN = 64


def _id_column() -> Any:
    return Field(default=None, sa_column=sa.Column(ROW_ID, primary_key=True, autoincrement=True))


def _text(length: int | None = None) -> Any:
    column_type = sa.Text() if length is None else sa.String(length)
    return Field(sa_column=sa.Column(column_type, nullable=False))


def _float() -> Any:
    return Field(sa_column=sa.Column(sa.Float(), nullable=False))


class DecisionRow(SQLModel, table=True):
    """One engine Decision, placed in its stream by ``seq``."""

    __tablename__ = "decisions"
    __table_args__ = (
        sa.UniqueConstraint("account", "region", "seq", name="uq_decisions_stream_seq"),
        sa.Index("ix_decisions_stream_instance_seq", "account", "region", "instance_id", "seq"),
        sa.Index("ix_decisions_stream_action_seq", "account", "region", "action", "seq"),
        sa.Index("ix_decisions_stream_decided_at", "account", "region", "decided_at_s"),
    )

    id: int | None = _id_column()
    account: str = _text(ACCOUNT_MAX_LEN)
    region: str = _text(REGION_MAX_LEN)
    seq: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))
    instance_id: str = _text(INSTANCE_ID_MAX_LEN)
    action: str = _text(ENUM_MAX_LEN)
    rule: str = _text(ENUM_MAX_LEN)
    reason: str = _text()
    decided_at_s: float = _float()
    from_instance_type: str = _text(INSTANCE_TYPE_MAX_LEN)
    from_availability_zone: str = _text(ZONE_MAX_LEN)
    from_lifecycle: str = _text(ENUM_MAX_LEN)
    to_instance_type: str = _text(INSTANCE_TYPE_MAX_LEN)
    to_availability_zone: str = _text(ZONE_MAX_LEN)
    to_lifecycle: str = _text(ENUM_MAX_LEN)
    saving_usd_per_hour: float = _float()
    numbers: dict[str, float] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))
    candidates: list[dict[str, Any]] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))
    policy: str = _text(POLICY_MAX_LEN)


class InstanceRow(SQLModel, table=True):
    """The last known state of one instance of a stream's fleet."""

    __tablename__ = "instances"
    __table_args__ = (sa.UniqueConstraint("account", "region", "instance_id", name="uq_instances_stream_id"),)

    id: int | None = _id_column()
    account: str = _text(ACCOUNT_MAX_LEN)
    region: str = _text(REGION_MAX_LEN)
    instance_id: str = _text(INSTANCE_ID_MAX_LEN)
    instance_type: str = _text(INSTANCE_TYPE_MAX_LEN)
    availability_zone: str = _text(ZONE_MAX_LEN)
    lifecycle: str = _text(ENUM_MAX_LEN)
    launched_at_s: float = _float()
    fleet: str = _text(FLEET_MAX_LEN)
    interrupted: bool = Field(sa_column=sa.Column(sa.Boolean(), nullable=False))
    updated_at_s: float = _float()


class StreamEventRow(SQLModel, table=True):
    """One published event of a stream's topic other than decisions, as the JSON text sent live."""

    __tablename__ = "stream_events"
    __table_args__ = (
        sa.Index("ix_stream_events_stream_topic_at", "account", "region", "topic", "at_s"),
        sa.Index("ix_stream_events_topic_at", "topic", "at_s"),
    )

    account: str = Field(sa_column=sa.Column(sa.String(ACCOUNT_MAX_LEN), primary_key=True))
    region: str = Field(sa_column=sa.Column(sa.String(REGION_MAX_LEN), primary_key=True))
    topic: str = Field(sa_column=sa.Column(sa.String(TOPIC_MAX_LEN), primary_key=True))
    seq: int = Field(sa_column=sa.Column(sa.BigInteger(), primary_key=True, autoincrement=False))
    at_s: float = _float()
    payload: str = _text()


class CheckpointRow(SQLModel, table=True):
    """One checkpoint of a region actor (``actors/checkpoint.py``): an opaque payload, its format version
    and SHA-256. Newest is the highest id; the store keeps the last few per (account, region)."""

    __tablename__ = "checkpoints"
    __table_args__ = (sa.Index("ix_checkpoints_stream_id", "account", "region", "id"),)

    id: int | None = _id_column()
    account: str = _text(ACCOUNT_MAX_LEN)
    region: str = _text(REGION_MAX_LEN)
    created_at_s: float = _float()  # wall clock
    tick_s: float | None = Field(default=None, sa_column=sa.Column(sa.Float(), nullable=True))  # none yet: NULL
    version: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    sha256: str = _text(SHA256_LEN)
    payload: bytes = Field(sa_column=sa.Column(sa.LargeBinary(), nullable=False))


METADATA = SQLModel.metadata
DECISIONS: sa.Table = DecisionRow.__table__  # type: ignore[attr-defined]
INSTANCES: sa.Table = InstanceRow.__table__  # type: ignore[attr-defined]
STREAM_EVENTS: sa.Table = StreamEventRow.__table__  # type: ignore[attr-defined]
CHECKPOINTS: sa.Table = CheckpointRow.__table__  # type: ignore[attr-defined]


WEBHOOK_ID_MAX_LEN = 32
URL_MAX_LEN = 2048
SECRET_MAX_LEN = 128
EVENT_NAME_MAX_LEN = 32
STATUS_MAX_LEN = 16
IDEMPOTENCY_KEY_MAX_LEN = 64


class WebhookRow(SQLModel, table=True):
    """One webhook of an account: where to POST which events, and the secret that signs them. Removing
    one leaves a tombstone (``deleted_at_s``) so its deliveries stay explained."""

    __tablename__ = "webhooks"
    __table_args__ = (sa.Index("ix_webhooks_account", "account"),)

    id: str = Field(sa_column=sa.Column(sa.String(WEBHOOK_ID_MAX_LEN), primary_key=True))
    account: str = Field(sa_column=sa.Column(sa.String(ACCOUNT_MAX_LEN), sa.ForeignKey("accounts.name"),
                                             nullable=False))
    url: str = _text(URL_MAX_LEN)
    events: list[str] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))
    secret: str = _text(SECRET_MAX_LEN)
    created_at_s: float = _float()
    deleted_at_s: float | None = Field(default=None, sa_column=sa.Column(sa.Float(), nullable=True))


class WebhookDeliveryRow(SQLModel, table=True):
    """One event owed to one webhook: the body sent on every attempt, its idempotency key (unique per
    webhook, so matching an event twice owes it once), and where its delivery stands."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.UniqueConstraint("webhook_id", "idempotency_key", name="uq_webhook_deliveries_key"),
        sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at_s"),
        sa.Index("ix_webhook_deliveries_webhook_id", "webhook_id", "id"),
    )

    id: int | None = _id_column()
    webhook_id: str = Field(sa_column=sa.Column(sa.String(WEBHOOK_ID_MAX_LEN), sa.ForeignKey("webhooks.id"),
                                                nullable=False))
    event: str = _text(EVENT_NAME_MAX_LEN)
    idempotency_key: str = _text(IDEMPOTENCY_KEY_MAX_LEN)
    payload: str = _text()
    status: str = _text(STATUS_MAX_LEN)
    attempts: int = Field(sa_column=sa.Column(sa.Integer(), nullable=False))
    created_at_s: float = _float()
    next_attempt_at_s: float | None = Field(default=None, sa_column=sa.Column(sa.Float(), nullable=True))
    last_attempt_at_s: float | None = Field(default=None, sa_column=sa.Column(sa.Float(), nullable=True))
    last_status_code: int | None = Field(default=None, sa_column=sa.Column(sa.Integer(), nullable=True))
    last_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
    delivered_at_s: float | None = Field(default=None, sa_column=sa.Column(sa.Float(), nullable=True))


class WebhookCursorRow(SQLModel, table=True):
    """How far the webhook consumer has matched one stream's topic (the last seq it turned into
    deliveries): a restarted consumer resumes here, so no event is matched twice or skipped."""

    __tablename__ = "webhook_cursors"

    account: str = Field(sa_column=sa.Column(sa.String(ACCOUNT_MAX_LEN), primary_key=True))
    region: str = Field(sa_column=sa.Column(sa.String(REGION_MAX_LEN), primary_key=True))
    topic: str = Field(sa_column=sa.Column(sa.String(TOPIC_MAX_LEN), primary_key=True))
    seq: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))


WEBHOOKS: sa.Table = WebhookRow.__table__  # type: ignore[attr-defined]
WEBHOOK_DELIVERIES: sa.Table = WebhookDeliveryRow.__table__  # type: ignore[attr-defined]
WEBHOOK_CURSORS: sa.Table = WebhookCursorRow.__table__  # type: ignore[attr-defined]


SCHEDULE_MAX_LEN = 512


class ScheduleRow(SQLModel, table=True):
    """One hibernation schedule of an account, as the canonical text ``engine.schedule.Schedule`` parses;
    ``position`` keeps the order the account gave them in (a PUT replaces them all)."""

    __tablename__ = "schedules"

    account: str = Field(sa_column=sa.Column(sa.String(ACCOUNT_MAX_LEN), sa.ForeignKey("accounts.name"),
                                             primary_key=True))
    position: int = Field(sa_column=sa.Column(sa.Integer(), primary_key=True, autoincrement=False))
    spec: str = _text(SCHEDULE_MAX_LEN)
    updated_at_s: float = _float()


SCHEDULES: sa.Table = ScheduleRow.__table__  # type: ignore[attr-defined]
