"""Tenancy repository: tenants, API keys, registered accounts and simulation records.

It shares the Store's engine (``Tenancy(store.engine)``): one database, one migration history. Every
read that a tenant can trigger takes the tenant id and filters on it, so scoping is not left to callers.
Keys are generated here and returned once; only their SHA-256 is kept (see ``tenancy_tables``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from actors.store.errors import StoreError
from actors.store.tenancy_tables import ACCOUNTS, API_KEYS, SIMULATIONS, TENANTS

KEY_PREFIX = "spk"


class ConflictError(StoreError, ValueError):
    """A name that must be unique is already taken (tenant name, account name)."""


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    name: str
    created_at_s: float


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    tenant_id: str
    label: str
    created_at_s: float
    revoked_at_s: float | None = None


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    tenant_id: str
    regions: tuple[str, ...]
    credentials_mode: str
    executor_mode: str
    policy: str
    policy_params: Mapping[str, Any] = field(default_factory=dict)
    credentials: Mapping[str, Any] = field(default_factory=dict)
    created_at_s: float = 0.0
    updated_at_s: float = 0.0
    aws: Mapping[str, Any] = field(default_factory=dict)  # interruption_queue_url, managed_tag: no secrets


@dataclass(frozen=True, slots=True)
class SimulationRecord:
    id: str
    tenant_id: str
    status: str
    request: Mapping[str, Any]
    result: Mapping[str, Any] | None
    error: str | None
    created_at_s: float
    finished_at_s: float | None


def new_id(prefix: str) -> str:
    """A random public id, e.g. ``t_3f9a0c1d2e4b``."""
    return f"{prefix}_{secrets.token_hex(6)}"


def hash_key(key: str) -> str:
    """SHA-256 hex of a whole API key.

    >>> len(hash_key("spk_x_y"))
    64
    """
    return hashlib.sha256(key.encode()).hexdigest()


def split_key(key: str) -> str | None:
    """The public key id of ``spk_<id>_<secret>``, or None when the string is not shaped like a key.

    >>> split_key("spk_0a1b2c3d4e5f_secret"), split_key("nope")
    ('0a1b2c3d4e5f', None)
    """
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1]


class Tenancy:
    """Tenants, keys, accounts and simulations, on the Store's engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    # --- tenants -------------------------------------------------------------------------------------

    async def create_tenant(self, name: str, now_s: float, tenant_id: str | None = None) -> Tenant:
        tenant = Tenant(tenant_id or new_id("t"), name, now_s)
        try:
            async with self._engine.begin() as conn:
                await conn.execute(sa.insert(TENANTS).values(id=tenant.id, name=name, created_at_s=now_s))
        except IntegrityError:
            raise ConflictError(f"a tenant named {name!r} already exists") from None
        return tenant

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(TENANTS).where(TENANTS.c.id == tenant_id))).mappings().first()
        return Tenant(row["id"], row["name"], row["created_at_s"]) if row else None

    async def tenant_by_name(self, name: str) -> Tenant | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(TENANTS).where(TENANTS.c.name == name))).mappings().first()
        return Tenant(row["id"], row["name"], row["created_at_s"]) if row else None

    async def list_tenants(self) -> list[Tenant]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sa.select(TENANTS).order_by(TENANTS.c.created_at_s, TENANTS.c.id))).mappings()
            return [Tenant(r["id"], r["name"], r["created_at_s"]) for r in rows]

    # --- keys ----------------------------------------------------------------------------------------

    async def create_key(self, tenant_id: str, label: str, now_s: float) -> tuple[ApiKey, str]:
        """A new key for the tenant: the record and the secret, which is never stored or shown again."""
        key_id = secrets.token_hex(6)
        secret = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        record = ApiKey(key_id, tenant_id, label, now_s)
        async with self._engine.begin() as conn:
            await conn.execute(sa.insert(API_KEYS).values(
                id=key_id, tenant_id=tenant_id, key_hash=hash_key(secret), label=label, created_at_s=now_s))
        return record, secret

    async def list_keys(self, tenant_id: str) -> list[ApiKey]:
        c = API_KEYS.c
        query = sa.select(API_KEYS).where(c.tenant_id == tenant_id).order_by(c.created_at_s, c.id)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings()
            return [ApiKey(r["id"], r["tenant_id"], r["label"], r["created_at_s"], r["revoked_at_s"]) for r in rows]

    async def revoke_key(self, tenant_id: str, key_id: str, now_s: float) -> bool:
        """Revoke one of the tenant's keys; False when the tenant has no such live key."""
        c = API_KEYS.c
        statement = (sa.update(API_KEYS).where(c.id == key_id, c.tenant_id == tenant_id, c.revoked_at_s.is_(None))
                     .values(revoked_at_s=now_s))
        async with self._engine.begin() as conn:
            return (await conn.execute(statement)).rowcount == 1

    async def revoke_keys_labelled(self, tenant_id: str, label: str, now_s: float) -> int:
        c = API_KEYS.c
        statement = (sa.update(API_KEYS).where(c.tenant_id == tenant_id, c.label == label, c.revoked_at_s.is_(None))
                     .values(revoked_at_s=now_s))
        async with self._engine.begin() as conn:
            return int((await conn.execute(statement)).rowcount)

    async def authenticate(self, key: str) -> str | None:
        """The tenant id of a live key, else None (constant-time comparison of the hashes)."""
        key_id = split_key(key)
        if key_id is None:
            return None
        c = API_KEYS.c
        query = sa.select(c.tenant_id, c.key_hash).where(c.id == key_id, c.revoked_at_s.is_(None))
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None or not hmac.compare_digest(row.key_hash, hash_key(key)):
            return None
        return str(row.tenant_id)

    # --- accounts ------------------------------------------------------------------------------------

    async def create_account(self, account: Account) -> Account:
        """Register an account; a name ever used (by anyone, even removed) is a ConflictError."""
        try:
            async with self._engine.begin() as conn:
                await conn.execute(sa.insert(ACCOUNTS).values(**_account_row(account)))
        except IntegrityError:
            raise ConflictError(f"account name {account.name!r} is not available") from None
        return account

    async def get_account(self, tenant_id: str | None, name: str) -> Account | None:
        """The live account ``name`` of ``tenant_id`` (of anyone when None); None otherwise."""
        c = ACCOUNTS.c
        query = sa.select(ACCOUNTS).where(c.name == name, c.deleted_at_s.is_(None))
        if tenant_id is not None:
            query = query.where(c.tenant_id == tenant_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return _account(row) if row else None

    async def list_accounts(self, tenant_id: str | None = None) -> list[Account]:
        c = ACCOUNTS.c
        query = sa.select(ACCOUNTS).where(c.deleted_at_s.is_(None)).order_by(c.name)
        if tenant_id is not None:
            query = query.where(c.tenant_id == tenant_id)
        async with self._engine.connect() as conn:
            return [_account(r) for r in (await conn.execute(query)).mappings()]

    async def update_account(self, account: Account) -> Account:
        row = _account_row(account)
        c = ACCOUNTS.c
        statement = (sa.update(ACCOUNTS).where(c.name == account.name, c.tenant_id == account.tenant_id,
                                               c.deleted_at_s.is_(None))
                     .values(**{k: v for k, v in row.items() if k not in ("name", "tenant_id", "created_at_s")}))
        async with self._engine.begin() as conn:
            await conn.execute(statement)
        return account

    async def delete_account(self, tenant_id: str, name: str, now_s: float) -> bool:
        c = ACCOUNTS.c
        statement = (sa.update(ACCOUNTS).where(c.name == name, c.tenant_id == tenant_id, c.deleted_at_s.is_(None))
                     .values(deleted_at_s=now_s))
        async with self._engine.begin() as conn:
            return (await conn.execute(statement)).rowcount == 1

    # --- simulations ---------------------------------------------------------------------------------

    async def save_simulation(self, record: SimulationRecord) -> None:
        """Insert or overwrite a simulation record by id."""
        values = {"id": record.id, "tenant_id": record.tenant_id, "status": record.status,
                  "request": dict(record.request), "result": None if record.result is None else dict(record.result),
                  "error": record.error, "created_at_s": record.created_at_s, "finished_at_s": record.finished_at_s}
        async with self._engine.begin() as conn:
            updated = await conn.execute(sa.update(SIMULATIONS).where(SIMULATIONS.c.id == record.id).values(**values))
            if updated.rowcount == 0:
                await conn.execute(sa.insert(SIMULATIONS).values(**values))

    async def get_simulation(self, tenant_id: str, simulation_id: str) -> SimulationRecord | None:
        c = SIMULATIONS.c
        query = sa.select(SIMULATIONS).where(c.id == simulation_id, c.tenant_id == tenant_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return _simulation(row) if row else None

    async def list_simulations(self, tenant_id: str, limit: int = 100) -> list[SimulationRecord]:
        c = SIMULATIONS.c
        query = (sa.select(SIMULATIONS).where(c.tenant_id == tenant_id)
                 .order_by(c.created_at_s.desc(), c.id).limit(limit))
        async with self._engine.connect() as conn:
            return [_simulation(r) for r in (await conn.execute(query)).mappings()]


def _account_row(account: Account) -> dict[str, Any]:
    return {"name": account.name, "tenant_id": account.tenant_id, "regions": list(account.regions),
            "credentials_mode": account.credentials_mode, "credentials": dict(account.credentials),
            "executor_mode": account.executor_mode,
            "policy": account.policy, "policy_params": dict(account.policy_params),
            "created_at_s": account.created_at_s, "updated_at_s": account.updated_at_s, "aws": dict(account.aws)}


def _account(row: Mapping[str, Any]) -> Account:
    return Account(row["name"], row["tenant_id"], tuple(row["regions"]), row["credentials_mode"],
                   row["executor_mode"], row["policy"], dict(row["policy_params"]), dict(row["credentials"]),
                   row["created_at_s"], row["updated_at_s"], dict(row.get("aws") or {}))


def _simulation(row: Mapping[str, Any]) -> SimulationRecord:
    return SimulationRecord(row["id"], row["tenant_id"], row["status"], row["request"], row["result"], row["error"],
                            row["created_at_s"], row["finished_at_s"])
