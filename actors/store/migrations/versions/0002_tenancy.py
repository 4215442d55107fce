"""Tenants, hashed API keys, registered accounts and bulk simulations.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("created_at_s", sa.Float(), nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("label", sa.String(128), nullable=False),
        sa.Column("created_at_s", sa.Float(), nullable=False),
        sa.Column("revoked_at_s", sa.Float(), nullable=True),
    )
    op.create_index("ix_api_keys_tenant", "api_keys", ["tenant_id"])
    op.create_table(
        "accounts",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("regions", sa.JSON(), nullable=False),
        sa.Column("credentials_mode", sa.String(32), nullable=False),
        sa.Column("credentials", sa.JSON(), nullable=False),
        sa.Column("executor_mode", sa.String(32), nullable=False),
        sa.Column("policy", sa.String(128), nullable=False),
        sa.Column("policy_params", sa.JSON(), nullable=False),
        sa.Column("created_at_s", sa.Float(), nullable=False),
        sa.Column("updated_at_s", sa.Float(), nullable=False),
        sa.Column("deleted_at_s", sa.Float(), nullable=True),
    )
    op.create_index("ix_accounts_tenant", "accounts", ["tenant_id"])
    op.create_table(
        "simulations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at_s", sa.Float(), nullable=False),
        sa.Column("finished_at_s", sa.Float(), nullable=True),
    )
    op.create_index("ix_simulations_tenant_created", "simulations", ["tenant_id", "created_at_s"])


def downgrade() -> None:
    op.drop_index("ix_simulations_tenant_created", table_name="simulations")
    op.drop_table("simulations")
    op.drop_index("ix_accounts_tenant", table_name="accounts")
    op.drop_table("accounts")
    op.drop_index("ix_api_keys_tenant", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("tenants")
