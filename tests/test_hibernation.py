"""Hibernation: the stored schedules, the engine's hibernate and wake decisions, their execution, the
backtest kernel and the replay demo following a schedule on the replayed clock."""

from __future__ import annotations

import pytest

from actors.store import Store
from actors.store.schedules import ScheduleStore
from actors.store.tenancy import Account, Tenancy

# -- the store ----------------------------------------------------------------------------------------------


async def registered(store: Store, name: str = "acme") -> str:
    tenancy = Tenancy(store.engine)
    tenant = await tenancy.create_tenant(f"tenant-{name}", 0.0)
    await tenancy.create_account(Account(name, tenant.id, ("us-east-1",), "replay", "simulated", "risk_aware"))
    return name


async def test_a_put_replaces_the_accounts_schedules_in_order(store: Store) -> None:
    schedules = ScheduleStore(store.engine)
    account = await registered(store)
    assert await schedules.get(account) == []
    await schedules.put(account, ["env=dev Mon-Fri 09:00-17:00 UTC", "Mon-Sun 06:00-22:00 UTC"], 1.0)
    assert await schedules.get(account) == ["env=dev Mon-Fri 09:00-17:00 UTC", "Mon-Sun 06:00-22:00 UTC"]
    await schedules.put(account, ["Sat 10:00-12:00 UTC"], 2.0)
    assert await schedules.get(account) == ["Sat 10:00-12:00 UTC"]
    await schedules.put(account, [], 3.0)
    assert await schedules.get(account) == []


async def test_a_failed_put_keeps_the_schedules_already_stored(store: Store) -> None:
    schedules = ScheduleStore(store.engine)
    account = await registered(store)
    await schedules.put(account, ["Mon-Fri 09:00-17:00 UTC"], 1.0)
    with pytest.raises(ValueError, match=r"schedules\.1: longer than"):
        await schedules.put(account, ["Sat 10:00-12:00 UTC", "x" * 600], 2.0)
    assert await schedules.get(account) == ["Mon-Fri 09:00-17:00 UTC"]
