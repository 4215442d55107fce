"""Stream events other than decisions (prices, instances, alerts), for WebSocket resume and history.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stream_events",
        sa.Column("account", sa.String(128), primary_key=True),
        sa.Column("region", sa.String(64), primary_key=True),
        sa.Column("topic", sa.String(32), primary_key=True),
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("at_s", sa.Float(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
    )
    op.create_index("ix_stream_events_stream_topic_at", "stream_events", ["account", "region", "topic", "at_s"])
    op.create_index("ix_stream_events_topic_at", "stream_events", ["topic", "at_s"])


def downgrade() -> None:
    op.drop_index("ix_stream_events_topic_at", table_name="stream_events")
    op.drop_index("ix_stream_events_stream_topic_at", table_name="stream_events")
    op.drop_table("stream_events")
