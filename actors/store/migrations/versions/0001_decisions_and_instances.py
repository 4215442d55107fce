"""Decisions and instances, with the indexes of the decision queries.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "decisions",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(128), nullable=False),
        sa.Column("region", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("instance_id", sa.String(255), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("rule", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("decided_at_s", sa.Float(), nullable=False),
        sa.Column("from_instance_type", sa.String(64), nullable=False),
        sa.Column("from_availability_zone", sa.String(64), nullable=False),
        sa.Column("from_lifecycle", sa.String(32), nullable=False),
        sa.Column("to_instance_type", sa.String(64), nullable=False),
        sa.Column("to_availability_zone", sa.String(64), nullable=False),
        sa.Column("to_lifecycle", sa.String(32), nullable=False),
        sa.Column("saving_usd_per_hour", sa.Float(), nullable=False),
        sa.Column("numbers", sa.JSON(), nullable=False),
        sa.Column("candidates", sa.JSON(), nullable=False),
        sa.Column("policy", sa.String(128), nullable=False),
        sa.UniqueConstraint("account", "region", "seq", name="uq_decisions_stream_seq"),
    )
    op.create_index("ix_decisions_stream_instance_seq", "decisions", ["account", "region", "instance_id", "seq"])
    op.create_index("ix_decisions_stream_action_seq", "decisions", ["account", "region", "action", "seq"])
    op.create_index("ix_decisions_stream_decided_at", "decisions", ["account", "region", "decided_at_s"])

    op.create_table(
        "instances",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(128), nullable=False),
        sa.Column("region", sa.String(64), nullable=False),
        sa.Column("instance_id", sa.String(255), nullable=False),
        sa.Column("instance_type", sa.String(64), nullable=False),
        sa.Column("availability_zone", sa.String(64), nullable=False),
        sa.Column("lifecycle", sa.String(32), nullable=False),
        sa.Column("launched_at_s", sa.Float(), nullable=False),
        sa.Column("fleet", sa.String(128), nullable=False),
        sa.Column("interrupted", sa.Boolean(), nullable=False),
        sa.Column("updated_at_s", sa.Float(), nullable=False),
        sa.UniqueConstraint("account", "region", "instance_id", name="uq_instances_stream_id"),
    )


def downgrade() -> None:
    op.drop_table("instances")
    op.drop_index("ix_decisions_stream_decided_at", table_name="decisions")
    op.drop_index("ix_decisions_stream_action_seq", table_name="decisions")
    op.drop_index("ix_decisions_stream_instance_seq", table_name="decisions")
    op.drop_table("decisions")
