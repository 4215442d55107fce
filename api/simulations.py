"""Bulk simulations behind REST: the job's record and progress; the backtest itself is the CLI's.

A request is checked at submission (an error names the field), then runs as an asyncio task that awaits
:func:`actors.backtests.run_bundled_backtest`, the same path ``spot-optimizer simulate`` takes, on the
bundled market. Progress is the share of shards done, kept in memory while the job runs; the record
(request, status, result or error) is in the store, so a finished result outlives the process. A job
interrupted by a restart is reported ``failed`` ("interrupted").
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from actors.backtests import DeadlineRequest, FleetRequest, check_bundled, run_bundled_backtest
from actors.store.tenancy import SimulationRecord, Tenancy, new_id

log = logging.getLogger(__name__)

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
BacktestRequest = DeadlineRequest | FleetRequest


@dataclass(slots=True)
class Progress:
    done: int = 0
    total: int = 0

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0

    def update(self, done: int, total: int) -> None:
        self.done, self.total = done, total


@dataclass(slots=True)
class SimulationService:
    tenancy: Tenancy
    progress: dict[str, Progress] = field(default_factory=dict)
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    async def submit(self, tenant_id: str, request: BacktestRequest, request_json: dict[str, Any]) -> SimulationRecord:
        """Check the request (``SimulationInputError`` or ``JobError``: nothing is stored), record it, start it."""
        check_bundled(request)
        record = SimulationRecord(new_id("sim"), tenant_id, QUEUED, request_json, None, None, time.time(), None)
        await self.tenancy.save_simulation(record)
        self.progress[record.id] = Progress()
        self.tasks[record.id] = asyncio.create_task(self._run(record, request), name=f"simulation:{record.id}")
        return record

    async def get(self, tenant_id: str, simulation_id: str) -> tuple[SimulationRecord, Progress | None] | None:
        record = await self.tenancy.get_simulation(tenant_id, simulation_id)
        if record is None:
            return None
        if record.status in (QUEUED, RUNNING) and simulation_id not in self.tasks:
            record = _with(record, status=FAILED, result=None, error="interrupted: the server restarted while it ran")
        return record, self.progress.get(simulation_id)

    async def _run(self, record: SimulationRecord, request: BacktestRequest) -> None:
        progress = self.progress[record.id]
        try:
            await self.tenancy.save_simulation(_with(record, status=RUNNING))
            result = await run_bundled_backtest(request, progress.update)
            await self.tenancy.save_simulation(_with(record, status=SUCCEEDED, result=result.report,
                                                     finished_at_s=time.time()))
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await self.tenancy.save_simulation(_with(record, status=FAILED, error="cancelled at shutdown",
                                                         finished_at_s=time.time()))
            raise
        except Exception as exc:
            log.exception("simulation %s failed", record.id)
            await self.tenancy.save_simulation(_with(record, status=FAILED, error=f"{type(exc).__name__}: {exc}",
                                                     finished_at_s=time.time()))
        finally:
            self.tasks.pop(record.id, None)

    async def close(self) -> None:
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _with(record: SimulationRecord, **changes: Any) -> SimulationRecord:
    return dataclasses.replace(record, **changes)
