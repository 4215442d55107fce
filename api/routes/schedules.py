"""Hibernation schedules of an account: read them, replace them.

A PUT validates every schedule (``engine.schedule``) before anything is stored, stores the canonical
texts in one transaction, then hands them to the account's running region actors, which decide
``hibernate`` and ``wake`` from the next tick on, on their own clock (the replayed one for a replay).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from actors.store.schedules import ScheduleStore
from actors.store.tables import SCHEDULE_MAX_LEN
from api.deps import AccountDep, RuntimeDep
from api.errors import InvalidInput
from api.schemas import ERRORS, Strict
from engine.schedule import Schedule

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/accounts/{account}", tags=["schedules"], responses=ERRORS)

MAX_SCHEDULES = 32
ScheduleText = Annotated[str, Field(min_length=1, max_length=SCHEDULE_MAX_LEN, pattern=r"^[^\x00-\x1f\x7f]+$",
                                    examples=["Mon-Fri 08:00-19:00 Europe/Berlin"])]


class SchedulesIn(Strict):
    """The account's schedules, all of them (an empty list removes them). An instance follows the first
    schedule whose ``tag=value`` selector matches its tags, else the first without a selector, else none
    (it always runs)."""

    schedules: list[ScheduleText] = Field(max_length=MAX_SCHEDULES, examples=[[
        "Mon-Fri 08:00-19:00 Europe/Berlin except 2026-12-24..2026-12-26",
        "env=dev Mon-Fri 09:00-17:00 UTC",
    ]])


class ScheduleOut(BaseModel):
    spec: str = Field(examples=["env=dev Mon-Fri 09:00-17:00 UTC"])
    windows: str = Field(examples=["Mon-Fri 09:00-17:00 UTC"])
    selector: str | None = Field(examples=["env=dev"])


class SchedulesOut(BaseModel):
    account: str
    schedules: list[ScheduleOut]


def parse_schedules(texts: list[str]) -> list[Schedule]:
    """Every schedule parsed; the first bad one is a 422 naming its index and the bad part. Two schedules
    with the same selector are refused: the second could never apply."""
    parsed: list[Schedule] = []
    for i, text in enumerate(texts):
        try:
            schedule = Schedule.parse(text)
        except ValueError as exc:
            raise InvalidInput(f"body.schedules.{i}: {exc}") from None
        twin = next((j for j, other in enumerate(parsed) if other.selector == schedule.selector), None)
        if twin is not None:
            whom = "=".join(schedule.selector) if schedule.selector else "every instance"
            raise InvalidInput(f"body.schedules.{i}: schedules.{twin} already applies to {whom}")
        parsed.append(schedule)
    return parsed


def schedules_out(account: str, specs: list[str]) -> SchedulesOut:
    shown = []
    for spec in specs:
        schedule = Schedule.parse(spec)
        shown.append(ScheduleOut(spec=str(schedule), windows=schedule.describe(),
                                 selector="=".join(schedule.selector) if schedule.selector else None))
    return SchedulesOut(account=account, schedules=shown)


@router.get("/schedules")
async def get_schedules(account: AccountDep, runtime: RuntimeDep) -> SchedulesOut:
    """The account's hibernation schedules, in the order they apply."""
    return schedules_out(account.name, await ScheduleStore(runtime.store.engine).get(account.name))


@router.put("/schedules")
async def put_schedules(body: SchedulesIn, account: AccountDep, runtime: RuntimeDep) -> SchedulesOut:
    """Replace the account's hibernation schedules; its region actors follow them from their next tick."""
    specs = [str(s) for s in parse_schedules(body.schedules)]
    await ScheduleStore(runtime.store.engine).put(account.name, specs, time.time())
    await reach_actors(runtime, account.name, account.regions, specs)
    return schedules_out(account.name, specs)


async def reach_actors(runtime: Any, account: str, regions: tuple[str, ...], specs: list[str]) -> None:
    """Hand the schedules to the account's running region actors. One that does not answer is logged: it
    reads the stored schedules again when it restarts."""
    handles = [(region, runtime.registry.supervisor.actors.get((account, region))) for region in regions]
    running = [(region, handle) for region, handle in handles if handle is not None]
    results = await asyncio.gather(*(h.set_schedules.remote(specs) for _, h in running), return_exceptions=True)
    for (region, _), result in zip(running, results, strict=True):
        if isinstance(result, BaseException):
            log.error("schedules for account=%s region=%s not applied: %s", account, region, result)
