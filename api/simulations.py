"""Bulk simulations behind REST: validate, submit as Ray tasks, follow progress, keep the result JSON.

The seam with the simulator is small and pure: :mod:`engine.sim` builds runs and runs a shard
(``run_deadline_shard``), :func:`actors.simulation.shard_bounds` splits them, :mod:`engine.sim.report`
merges and summarises. Here each shard is one Ray task; progress is the share of shards done, kept in
memory while the job runs; the record (request, status, result or error) is in the store, so a finished
result outlives the process. A job interrupted by a restart is reported ``failed`` ("interrupted").
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from actors.store.tenancy import SimulationRecord, Tenancy, new_id
from engine.market import MarketTrace
from engine.sim.backtest import run_deadline_shard
from engine.sim.clock import DeadlineJob, JobError, WorkClock
from engine.sim.report import deadline_report, merge_outcomes
from engine.sim.runs import DeadlineRuns, runs_from_trace
from engine.traces import bundled_market

log = logging.getLogger(__name__)

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"


@dataclass(frozen=True, slots=True)
class DeadlineSpec:
    """A validated deadline-workload request (see ``api.schemas.SimulationIn``)."""

    job: DeadlineJob
    policies: tuple[str, ...]
    n_runs: int
    seed: int
    risk_horizon_s: float = 3600.0


def build_runs(spec: DeadlineSpec, trace: MarketTrace) -> DeadlineRuns:
    """The runs of a request on the recorded market; JobError (the caller's input) when none fits."""
    clock = WorkClock.of(spec.job, trace.tick_s)
    return runs_from_trace(trace, clock, spec.n_runs, np.random.default_rng(spec.seed))


def check_spec(spec: DeadlineSpec, trace: MarketTrace | None = None) -> None:
    """Raise JobError now, at submission, for what would fail later in a worker."""
    clock = WorkClock.of(spec.job, (trace or bundled_market()).tick_s)
    if clock.deadline_ticks > (trace or bundled_market()).n_ticks:
        raise JobError(f"the deadline ({spec.job.deadline_hours} h) is longer than the recorded history")


@functools.cache
def _remote_shard() -> Any:
    import ray

    return ray.remote(num_cpus=1, max_retries=1)(run_deadline_shard)


@dataclass(slots=True)
class Progress:
    done: int = 0
    total: int = 0

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


@dataclass(slots=True)
class SimulationService:
    tenancy: Tenancy
    progress: dict[str, Progress] = field(default_factory=dict)
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    async def submit(self, tenant_id: str, spec: DeadlineSpec, request: dict[str, Any]) -> SimulationRecord:
        check_spec(spec)
        record = SimulationRecord(new_id("sim"), tenant_id, QUEUED, request, None, None, time.time(), None)
        await self.tenancy.save_simulation(record)
        self.progress[record.id] = Progress()
        self.tasks[record.id] = asyncio.create_task(self._run(record, spec), name=f"simulation:{record.id}")
        return record

    async def get(self, tenant_id: str, simulation_id: str) -> tuple[SimulationRecord, Progress | None] | None:
        record = await self.tenancy.get_simulation(tenant_id, simulation_id)
        if record is None:
            return None
        if record.status in (QUEUED, RUNNING) and simulation_id not in self.tasks:
            record = SimulationRecord(record.id, record.tenant_id, FAILED, record.request, None,
                                      "interrupted: the server restarted while it ran", record.created_at_s,
                                      record.finished_at_s)
        return record, self.progress.get(simulation_id)

    async def _run(self, record: SimulationRecord, spec: DeadlineSpec) -> None:
        from actors.simulation import cluster_cpus, shard_bounds

        progress = self.progress[record.id]
        try:
            runs = await asyncio.to_thread(build_runs, spec, bundled_market())
            bounds = shard_bounds(runs.n_runs, cluster_cpus())
            progress.total = len(bounds)
            await self.tenancy.save_simulation(_with(record, status=RUNNING))
            remote = _remote_shard()
            refs = [remote.remote(spec.job, runs.shard(a, b), spec.policies, spec.risk_horizon_s) for a, b in bounds]
            parts = await self._gather(refs, progress)
            outcomes = {name: merge_outcomes([p[name] for p in parts]) for name in spec.policies}
            settings = {**record.request, "tick_s": runs.tick_s, "shards": len(bounds)}
            result = deadline_report(outcomes, runs.labels, settings)
            await self.tenancy.save_simulation(_with(record, status=SUCCEEDED, result=result,
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

    @staticmethod
    async def _gather(refs: Sequence[Any], progress: Progress) -> list[Any]:
        async def one(ref: Any) -> Any:
            value = await ref
            progress.done += 1
            return value

        return list(await asyncio.gather(*(one(r) for r in refs)))

    async def close(self) -> None:
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _with(record: SimulationRecord, **changes: Any) -> SimulationRecord:
    return dataclasses.replace(record, **changes)
