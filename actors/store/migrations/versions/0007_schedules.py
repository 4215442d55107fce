"""Hibernation schedules per account.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("account", sa.String(128), sa.ForeignKey("accounts.name"), primary_key=True),
        sa.Column("position", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("spec", sa.String(512), nullable=False),
        sa.Column("updated_at_s", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("schedules")
