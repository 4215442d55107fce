"""Hibernation schedules per account: read them, replace them all at once.

It shares the Store's engine (``ScheduleStore(store.engine)``). The texts are stored as given; the API
validates them (``engine.schedule.Schedule.parse``) and stores the canonical form, so a read gives back
exactly what is in force. A PUT is one transaction: the old list is gone only if the new one is in.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from actors.store.tables import SCHEDULE_MAX_LEN, SCHEDULES


class ScheduleStore:
    """The ``schedules`` table of one database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, account: str) -> list[str]:
        """The account's schedules in the order they were set (none: its instances always run)."""
        query = sa.select(SCHEDULES.c.spec).where(SCHEDULES.c.account == account).order_by(SCHEDULES.c.position)
        async with self._engine.connect() as conn:
            return [str(spec) for spec in (await conn.execute(query)).scalars()]

    async def put(self, account: str, specs: Sequence[str], now_s: float) -> None:
        """Replace the account's schedules with ``specs`` (an empty list removes them)."""
        for i, spec in enumerate(specs):
            if len(spec) > SCHEDULE_MAX_LEN:
                raise ValueError(f"schedules.{i}: longer than {SCHEDULE_MAX_LEN} characters")
        async with self._engine.begin() as conn:
            await conn.execute(sa.delete(SCHEDULES).where(SCHEDULES.c.account == account))
            if specs:
                await conn.execute(sa.insert(SCHEDULES), [
                    {"account": account, "position": i, "spec": spec, "updated_at_s": now_s}
                    for i, spec in enumerate(specs)
                ])
