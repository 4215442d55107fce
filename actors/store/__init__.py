"""Persistence of decisions, stream events, instance state and region actor checkpoints: SQLModel
tables, Alembic migrations, one async Store.

SQLite (``sqlite+aiosqlite:///file.db``) by default, PostgreSQL (``postgresql+asyncpg://...``) in
production; the same code and the same tests run on both.
"""

from actors.store import tenancy_tables as _tenancy_tables  # noqa: F401  (registers the tenancy tables in METADATA)
from actors.store.checkpoints import KEEP_CHECKPOINTS, CheckpointRecord
from actors.store.decision_json import DecisionRecord, decision_from_json, decision_to_json
from actors.store.errors import DatabaseUnavailableError, DatabaseURLError, InvalidRecordError, StoreError
from actors.store.events import StreamEvent
from actors.store.repository import MAX_PAGE, MAX_REPLAY, Store
from actors.topics import DECISIONS_TOPIC, EVENT_TOPICS

__all__ = [
    "DECISIONS_TOPIC",
    "EVENT_TOPICS",
    "KEEP_CHECKPOINTS",
    "MAX_PAGE",
    "MAX_REPLAY",
    "CheckpointRecord",
    "DatabaseURLError",
    "DatabaseUnavailableError",
    "DecisionRecord",
    "InvalidRecordError",
    "Store",
    "StoreError",
    "StreamEvent",
    "decision_from_json",
    "decision_to_json",
]
