"""Tenancy tables: tenants, their hashed API keys, the accounts they registered, their simulations.

An account name is global (it names the account's region actors and its decision streams), so a name is
owned by one tenant for ever: removing an account leaves a tombstone (``deleted_at_s``) and the name is
never handed to anyone else, who would otherwise read the old owner's decision history.

API keys are stored as a SHA-256 of the whole key: keys are 256-bit random secrets, so a slow password
hash buys nothing, and the lookup stays one indexed read by the key's public id.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from actors.store.tables import ACCOUNT_MAX_LEN, POLICY_MAX_LEN

TENANT_ID_MAX_LEN = 32
NAME_MAX_LEN = 128
KEY_ID_MAX_LEN = 32
HASH_LEN = 64
MODE_MAX_LEN = 32
SIMULATION_ID_MAX_LEN = 32


def _text(length: int | None = None, *, nullable: bool = False) -> Any:
    column_type = sa.Text() if length is None else sa.String(length)
    return Field(sa_column=sa.Column(column_type, nullable=nullable))


def _float(*, nullable: bool = False) -> Any:
    return Field(sa_column=sa.Column(sa.Float(), nullable=nullable))


class TenantRow(SQLModel, table=True):
    __tablename__ = "tenants"

    id: str = Field(sa_column=sa.Column(sa.String(TENANT_ID_MAX_LEN), primary_key=True))
    name: str = Field(sa_column=sa.Column(sa.String(NAME_MAX_LEN), nullable=False, unique=True))
    created_at_s: float = _float()


class ApiKeyRow(SQLModel, table=True):
    __tablename__ = "api_keys"
    __table_args__ = (sa.Index("ix_api_keys_tenant", "tenant_id"),)

    id: str = Field(sa_column=sa.Column(sa.String(KEY_ID_MAX_LEN), primary_key=True))
    tenant_id: str = Field(sa_column=sa.Column(sa.String(TENANT_ID_MAX_LEN), sa.ForeignKey("tenants.id"),
                                               nullable=False))
    key_hash: str = _text(HASH_LEN)
    label: str = _text(NAME_MAX_LEN)
    created_at_s: float = _float()
    revoked_at_s: float | None = _float(nullable=True)


class AccountRow(SQLModel, table=True):
    __tablename__ = "accounts"
    __table_args__ = (sa.Index("ix_accounts_tenant", "tenant_id"),)

    name: str = Field(sa_column=sa.Column(sa.String(ACCOUNT_MAX_LEN), primary_key=True))
    tenant_id: str = Field(sa_column=sa.Column(sa.String(TENANT_ID_MAX_LEN), sa.ForeignKey("tenants.id"),
                                               nullable=False))
    regions: list[str] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))
    credentials_mode: str = _text(MODE_MAX_LEN)
    credentials: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))  # never secrets
    executor_mode: str = _text(MODE_MAX_LEN)
    policy: str = _text(POLICY_MAX_LEN)
    policy_params: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))
    created_at_s: float = _float()
    updated_at_s: float = _float()
    deleted_at_s: float | None = _float(nullable=True)
    aws: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON(), nullable=True))  # never secrets


class SimulationRow(SQLModel, table=True):
    __tablename__ = "simulations"
    __table_args__ = (sa.Index("ix_simulations_tenant_created", "tenant_id", "created_at_s"),)

    id: str = Field(sa_column=sa.Column(sa.String(SIMULATION_ID_MAX_LEN), primary_key=True))
    tenant_id: str = Field(sa_column=sa.Column(sa.String(TENANT_ID_MAX_LEN), sa.ForeignKey("tenants.id"),
                                               nullable=False))
    status: str = _text(MODE_MAX_LEN)
    request: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))
    result: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON(), nullable=True))
    error: str | None = _text(None, nullable=True)
    created_at_s: float = _float()
    finished_at_s: float | None = _float(nullable=True)


TENANTS: sa.Table = TenantRow.__table__  # type: ignore[attr-defined]
API_KEYS: sa.Table = ApiKeyRow.__table__  # type: ignore[attr-defined]
ACCOUNTS: sa.Table = AccountRow.__table__  # type: ignore[attr-defined]
SIMULATIONS: sa.Table = SimulationRow.__table__  # type: ignore[attr-defined]
