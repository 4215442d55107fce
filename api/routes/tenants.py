"""Tenants and API keys: the admin creates tenants (each with a first key); a tenant manages its own keys
and trades a key for a short-lived WebSocket token."""

from __future__ import annotations

import time

from fastapi import APIRouter, Response

from actors.store.tenancy import ApiKey, ConflictError, Tenant
from api.auth import mint_token
from api.deps import AdminDep, RuntimeDep, TenantDep
from api.errors import Conflict, NotFound
from api.schemas import ERRORS, KeyIn, KeyOut, NewKeyOut, NewTenantOut, TenantIn, TenantOut, TokenOut

router = APIRouter(prefix="/api/v1", responses=ERRORS)


def tenant_out(tenant: Tenant) -> TenantOut:
    return TenantOut(id=tenant.id, name=tenant.name, created_at_s=tenant.created_at_s)


def key_out(key: ApiKey) -> KeyOut:
    return KeyOut(id=key.id, tenant_id=key.tenant_id, label=key.label, created_at_s=key.created_at_s,
                  revoked_at_s=key.revoked_at_s)


@router.post("/tenants", status_code=201, tags=["tenants (admin)"], response_model=NewTenantOut)
async def create_tenant(body: TenantIn, _: AdminDep, runtime: RuntimeDep) -> NewTenantOut:
    """Create a tenant and its first API key. The key is in this response only: store it now."""
    try:
        tenant = await runtime.tenancy.create_tenant(body.name, time.time())
    except ConflictError as exc:
        raise Conflict(str(exc)) from None
    key, secret = await runtime.tenancy.create_key(tenant.id, "initial", time.time())
    return NewTenantOut(tenant=tenant_out(tenant), api_key=NewKeyOut(**key_out(key).model_dump(), key=secret))


@router.get("/tenants", tags=["tenants (admin)"])
async def list_tenants(_: AdminDep, runtime: RuntimeDep) -> dict[str, list[TenantOut]]:
    return {"tenants": [tenant_out(t) for t in await runtime.tenancy.list_tenants()]}


async def _known_tenant(runtime: RuntimeDep, tenant_id: str) -> Tenant:
    tenant = await runtime.tenancy.get_tenant(tenant_id)
    if tenant is None:
        raise NotFound(f"unknown tenant {tenant_id!r}")
    return tenant


@router.post("/tenants/{tenant_id}/keys", status_code=201, tags=["tenants (admin)"], response_model=NewKeyOut)
async def create_tenant_key(tenant_id: str, body: KeyIn, _: AdminDep, runtime: RuntimeDep) -> NewKeyOut:
    """A new key for any tenant (e.g. the bootstrapped demo tenant). Shown once."""
    await _known_tenant(runtime, tenant_id)
    key, secret = await runtime.tenancy.create_key(tenant_id, body.label, time.time())
    return NewKeyOut(**key_out(key).model_dump(), key=secret)


@router.get("/tenants/{tenant_id}/keys", tags=["tenants (admin)"])
async def list_tenant_keys(tenant_id: str, _: AdminDep, runtime: RuntimeDep) -> dict[str, list[KeyOut]]:
    await _known_tenant(runtime, tenant_id)
    return {"keys": [key_out(k) for k in await runtime.tenancy.list_keys(tenant_id)]}


@router.delete("/tenants/{tenant_id}/keys/{key_id}", status_code=204, tags=["tenants (admin)"])
async def revoke_tenant_key(tenant_id: str, key_id: str, _: AdminDep, runtime: RuntimeDep) -> Response:
    if not await runtime.tenancy.revoke_key(tenant_id, key_id, time.time()):
        raise NotFound(f"no live key {key_id!r} for tenant {tenant_id!r}")
    return Response(status_code=204)


@router.get("/me", tags=["keys"])
async def me(principal: TenantDep, runtime: RuntimeDep) -> TenantOut:
    """The tenant this key belongs to."""
    return tenant_out(await _known_tenant(runtime, principal.tenant_id or ""))


@router.get("/keys", tags=["keys"])
async def list_keys(principal: TenantDep, runtime: RuntimeDep) -> dict[str, list[KeyOut]]:
    """This tenant's keys (ids and labels; secrets are never shown again)."""
    return {"keys": [key_out(k) for k in await runtime.tenancy.list_keys(principal.tenant_id or "")]}


@router.post("/keys", status_code=201, tags=["keys"], response_model=NewKeyOut)
async def create_key(body: KeyIn, principal: TenantDep, runtime: RuntimeDep) -> NewKeyOut:
    """Another key for this tenant (to rotate: create, switch, revoke the old one). Shown once."""
    key, secret = await runtime.tenancy.create_key(principal.tenant_id or "", body.label, time.time())
    return NewKeyOut(**key_out(key).model_dump(), key=secret)


@router.delete("/keys/{key_id}", status_code=204, tags=["keys"])
async def revoke_key(key_id: str, principal: TenantDep, runtime: RuntimeDep) -> Response:
    if not await runtime.tenancy.revoke_key(principal.tenant_id or "", key_id, time.time()):
        raise NotFound(f"no live key {key_id!r}")
    return Response(status_code=204)


@router.post("/ws-tokens", status_code=201, tags=["keys"])
async def ws_token(principal: TenantDep, runtime: RuntimeDep) -> TokenOut:
    """A short-lived token for ``/ws?token=...`` (browsers cannot send headers on a WebSocket)."""
    ttl_s = runtime.settings.ws_token_ttl_s
    token = mint_token(runtime.token_secret, principal.tenant_id or "", time.time(), ttl_s)
    return TokenOut(token=token, expires_in_s=ttl_s, websocket_path=f"/ws?token={token}")
