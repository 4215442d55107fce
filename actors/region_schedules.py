"""A region actor's hibernation schedules: read from the store when the actor starts (the store is what is
in force, so a restart or a PUT it missed is caught up), and set in place by ``PUT /schedules``. The
engine decides ``hibernate`` and ``wake`` from them on each tick's time (``engine/hibernation.py``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from actors.region_config import RegionConfig
from actors.store import Store
from actors.store.schedules import ScheduleStore
from engine.region import RegionEngine

log = logging.getLogger(__name__)


class Scheduling:
    """Load and set an actor's schedules (mixed into ``RegionActor``)."""

    config: RegionConfig
    engine: RegionEngine

    async def _open_store(self) -> Store | None: ...
    async def _checkpoint_quietly(self) -> None: ...

    async def _load_schedules(self, store: Store) -> None:
        """The account's stored schedules; an unreadable store or a bad text is logged and keeps the
        schedules the checkpoint brought."""
        try:
            specs = await ScheduleStore(store.engine).get(self.config.account)
            self.engine.hibernation.set_schedules(specs)
        except Exception as exc:
            log.error("schedules of account=%s region=%s not loaded: %s", self.config.account,
                      self.config.region, exc)

    async def set_schedules(self, specs: Sequence[str]) -> dict[str, Any]:
        """New schedules in place (all valid, or none taken: a ValueError names the bad one), followed from
        the next tick; checkpointed at once."""
        await self._open_store()
        self.engine.hibernation.set_schedules(specs)
        await self._checkpoint_quietly()
        return {"schedules": [str(s) for s in self.engine.hibernation.schedules]}
