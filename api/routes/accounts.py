"""Accounts: register (regions, credentials mode, executor mode, policy settings), read, update, remove.

An account name is global and never reused (removal leaves a tombstone): a name that is taken is a 409
whoever holds it, which tells a caller only that the name is not free.
"""

from __future__ import annotations

import dataclasses
import time

from fastapi import APIRouter, Response

from actors.registry import REPLAY
from actors.store.tenancy import Account, ConflictError
from api.deps import AccountDep, RuntimeDep, TenantDep
from api.errors import Conflict, InvalidInput
from api.runtime import Runtime
from api.schemas import (
    AWS_MODES,
    ERRORS,
    AccountIn,
    AccountOut,
    AccountPatch,
    AccountsOut,
    AwsSettings,
    CredentialsMode,
    ExecutorMode,
)
from engine.catalog import default_catalog
from engine.policy import PolicyParams

router = APIRouter(prefix="/api/v1", tags=["accounts"], responses=ERRORS)


EXECUTOR_MODES = {
    CredentialsMode.REPLAY: (ExecutorMode.SIMULATED, ExecutorMode.DRY_RUN, ExecutorMode.OBSERVE),
    CredentialsMode.AWS_DEFAULT: (ExecutorMode.OBSERVE, ExecutorMode.DRY_RUN, ExecutorMode.EXECUTE),
    CredentialsMode.AWS_ASSUME_ROLE: (ExecutorMode.OBSERVE, ExecutorMode.DRY_RUN, ExecutorMode.EXECUTE),
}
DEFAULT_EXECUTOR = {CredentialsMode.REPLAY: ExecutorMode.DRY_RUN, CredentialsMode.AWS_DEFAULT: ExecutorMode.OBSERVE,
                    CredentialsMode.AWS_ASSUME_ROLE: ExecutorMode.OBSERVE}


def account_out(account: Account, runtime: Runtime | None = None) -> AccountOut:
    status = runtime.registry.health(account.name) if runtime is not None else {}
    return AccountOut(account=account.name, regions=list(account.regions),
                      credentials_mode=account.credentials_mode, credentials=dict(account.credentials),
                      executor_mode=account.executor_mode, policy=account.policy,
                      policy_params=dict(account.policy_params), aws=dict(account.aws) or None, status=status,
                      created_at_s=account.created_at_s, updated_at_s=account.updated_at_s)


def check_executor(mode: str, executor: ExecutorMode | None) -> str:
    """The executor mode for credentials ``mode``: its default when omitted; one the mode cannot carry out
    (``execute`` on a replay, ``simulated`` on a real cloud) is a 422."""
    credentials_mode = CredentialsMode(mode)
    if executor is None:
        return DEFAULT_EXECUTOR[credentials_mode].value
    allowed = EXECUTOR_MODES[credentials_mode]
    if executor not in allowed:
        raise InvalidInput(f"body.executor_mode: {executor.value!r} is not available for credentials_mode "
                           f"{mode!r}; choose from {', '.join(m.value for m in allowed)}")
    return executor.value


def check_aws(mode: str, aws: AwsSettings | None) -> dict[str, object]:
    """AWS settings belong to AWS accounts; their defaults are filled in so reads show what is in force."""
    if CredentialsMode(mode) not in AWS_MODES:
        if aws is not None:
            raise InvalidInput(f"body.aws: only for credentials_mode aws_default or aws_assume_role, not {mode!r}")
        return {}
    return (aws or AwsSettings()).model_dump()


def check_regions(runtime: Runtime, mode: str, regions: list[str]) -> tuple[str, ...]:
    """Regions the account can be watched in: the replayed ones for ``replay``, the catalog's otherwise."""
    known = runtime.registry.replay_regions if mode == REPLAY else default_catalog().regions
    seen: set[str] = set()
    for i, region in enumerate(regions):
        if region in seen:
            raise InvalidInput(f"body.regions.{i}: {region!r} appears twice")
        if region not in known:
            raise InvalidInput(f"body.regions.{i}: {region!r} is not available for credentials_mode {mode!r}; "
                               f"choose from {', '.join(sorted(known)) or 'none (the server replays nothing)'}")
        seen.add(region)
    return tuple(regions)


def check_settings(account: Account) -> Account:
    try:
        PolicyParams(**account.policy_params)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"body.policy_params: {exc}") from None
    if account.credentials_mode == CredentialsMode.AWS_ASSUME_ROLE and not account.credentials.get("role_arn"):
        raise InvalidInput("body.credentials.role_arn: required with credentials_mode 'aws_assume_role'")
    return account


@router.get("/accounts")
async def list_accounts(principal: TenantDep, runtime: RuntimeDep) -> AccountsOut:
    """This tenant's accounts and the regions each is watched in."""
    accounts = await runtime.tenancy.list_accounts(principal.tenant_id)
    return AccountsOut(accounts=[account_out(a, runtime) for a in accounts])


@router.post("/accounts", status_code=201)
async def register_account(body: AccountIn, principal: TenantDep, runtime: RuntimeDep) -> AccountOut:
    """Register an account: its region actors start at once (``replay`` accounts follow the replayed market)."""
    now_s = time.time()
    account = check_settings(Account(
        name=body.name, tenant_id=principal.tenant_id or "",
        regions=check_regions(runtime, body.credentials_mode.value, body.regions),
        credentials_mode=body.credentials_mode.value,
        executor_mode=check_executor(body.credentials_mode.value, body.executor_mode),
        policy=str(body.policy.value), policy_params=body.policy_params.overrides(),
        credentials=body.credentials.model_dump(exclude_none=True), created_at_s=now_s, updated_at_s=now_s,
        aws=check_aws(body.credentials_mode.value, body.aws)))
    try:
        await runtime.tenancy.create_account(account)
    except ConflictError as exc:
        raise Conflict(str(exc)) from None
    await runtime.registry.start(account)
    return account_out(account, runtime)


@router.get("/accounts/{account}")
async def get_account(account: AccountDep, runtime: RuntimeDep) -> AccountOut:
    """The account, with each region's feed ``status``: whether its data is fresh, stale (and since when)
    or refused (denied or expired credentials)."""
    return account_out(account, runtime)


@router.patch("/accounts/{account}")
async def update_account(body: AccountPatch, account: AccountDep, runtime: RuntimeDep) -> AccountOut:
    """Change regions, executor, policy or its parameters; the account's actors restart with them."""
    changes: dict[str, object] = {"updated_at_s": time.time()}
    if body.regions is not None:
        changes["regions"] = check_regions(runtime, account.credentials_mode, body.regions)
    if body.executor_mode is not None:
        changes["executor_mode"] = check_executor(account.credentials_mode, body.executor_mode)
    if body.aws is not None:
        changes["aws"] = check_aws(account.credentials_mode, body.aws)
    if body.policy is not None:
        changes["policy"] = str(body.policy.value)
    if body.policy_params is not None:
        changes["policy_params"] = body.policy_params.overrides()
    if body.credentials is not None:
        changes["credentials"] = body.credentials.model_dump(exclude_none=True)
    updated = check_settings(dataclasses.replace(account, **changes))  # type: ignore[arg-type]
    await runtime.tenancy.update_account(updated)
    if any(name in changes for name in ("regions", "executor_mode", "policy", "policy_params")):
        await runtime.registry.restart(updated)
    if any(name in changes for name in ("aws", "credentials")):
        await runtime.registry.restart_feeds(updated)
    return account_out(updated, runtime)


@router.delete("/accounts/{account}", status_code=204)
async def remove_account(account: AccountDep, runtime: RuntimeDep) -> Response:
    """Stop the account's actors and remove it; its history stays, and its name is never reused."""
    await runtime.tenancy.delete_account(account.tenant_id, account.name, time.time())
    await runtime.registry.stop(account.name)
    return Response(status_code=204)
