"""FastAPI dependencies: the runtime, the caller (authenticated and rate limited), the caller's account.

Every tenant route reaches data through :data:`AccountDep` / :func:`region_handle`, which look the account
up *with the caller's tenant id*: another tenant's account and a missing one are the same 404.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from actors.store.tenancy import Account, split_key
from api.auth import ADMIN_KEY_ID, Principal, is_admin_key
from api.errors import Forbidden, NotFound, RateLimited, Unauthorized
from api.runtime import Runtime

bearer_scheme = HTTPBearer(auto_error=False, description="a tenant API key, or the admin key for /tenants")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def resolve_key(runtime: Runtime, key: str) -> Principal | None:
    """The principal of an admin or tenant key, None when the key is unknown or revoked."""
    if is_admin_key(key, runtime.settings.admin_api_key):
        return Principal(ADMIN_KEY_ID)
    tenant_id = await runtime.tenancy.authenticate(key)
    return Principal(split_key(key) or "", tenant_id) if tenant_id else None


async def caller(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    if credentials is None:
        raise Unauthorized()
    principal = await resolve_key(runtime, credentials.credentials)
    if principal is None:
        raise Unauthorized("unknown or revoked API key")
    wait_s = runtime.limiter.take(principal.key_id, time.monotonic())
    if wait_s > 0:
        raise RateLimited(wait_s)
    return principal


async def admin(principal: Annotated[Principal, Depends(caller)]) -> Principal:
    if not principal.is_admin:
        raise Forbidden("this route needs the admin key")
    return principal


async def tenant(principal: Annotated[Principal, Depends(caller)]) -> Principal:
    if principal.is_admin:
        raise Forbidden("this route needs a tenant API key; the admin key only manages tenants")
    return principal


CallerDep = Annotated[Principal, Depends(caller)]
AdminDep = Annotated[Principal, Depends(admin)]
TenantDep = Annotated[Principal, Depends(tenant)]


async def owned_account(account: str, principal: TenantDep, runtime: RuntimeDep) -> Account:
    found = await runtime.tenancy.get_account(principal.tenant_id, account)
    if found is None:
        raise NotFound(f"unknown account {account!r}")
    return found


AccountDep = Annotated[Account, Depends(owned_account)]


@dataclass(frozen=True, slots=True)
class RegionRef:
    account: Account
    region: str
    handle: Any


async def owned_region(region: str, account: AccountDep, runtime: RuntimeDep) -> RegionRef:
    if region not in account.regions or not runtime.supervisor.known(account.name, region):
        raise NotFound(f"unknown account {account.name!r} or region {region!r}")
    return RegionRef(account, region, runtime.supervisor.get(account.name, region))


RegionDep = Annotated[RegionRef, Depends(owned_region)]
