"""Bulk simulations: submit (Ray tasks), follow status and progress, read the result JSON."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from actors.store.tenancy import SimulationRecord
from api.deps import RuntimeDep, TenantDep
from api.errors import Conflict, InvalidInput, NotFound
from api.schemas import ERRORS, SimulationIn, SimulationOut, SimulationsOut
from api.simulations import SUCCEEDED, DeadlineSpec, Progress
from engine.sim.clock import DeadlineJob, JobError

router = APIRouter(prefix="/api/v1/simulations", tags=["simulations"], responses=ERRORS)


def simulation_out(record: SimulationRecord, progress: Progress | None) -> SimulationOut:
    done = 1.0 if record.status == SUCCEEDED else (progress.fraction if progress else 0.0)
    return SimulationOut(
        id=record.id, status=record.status, progress=round(done, 4), request=dict(record.request),
        error=record.error, created_at_s=record.created_at_s, finished_at_s=record.finished_at_s,
        result_path=f"/api/v1/simulations/{record.id}/result" if record.status == SUCCEEDED else None)


@router.post("", status_code=202)
async def submit(body: SimulationIn, principal: TenantDep, runtime: RuntimeDep) -> SimulationOut:
    """Start a bulk backtest of the deadline-job workload on the recorded history, sharded over Ray."""
    try:
        job = DeadlineJob(body.job.job_hours, body.job.deadline_hours, body.job.restart_overhead_hours,
                          body.job.spot_usd_per_hour, body.job.on_demand_usd_per_hour)
        spec = DeadlineSpec(job, tuple(str(p.value) for p in body.policies), body.runs, body.seed)
        record = await runtime.simulations.submit(principal.tenant_id or "", spec, body.model_dump(mode="json"))
    except JobError as exc:
        raise InvalidInput(f"body.job: {exc}") from None
    return simulation_out(record, runtime.simulations.progress.get(record.id))


@router.get("")
async def list_simulations(principal: TenantDep, runtime: RuntimeDep) -> SimulationsOut:
    records = await runtime.tenancy.list_simulations(principal.tenant_id or "")
    return SimulationsOut(simulations=[simulation_out(r, runtime.simulations.progress.get(r.id)) for r in records])


async def _found(runtime: RuntimeDep, tenant_id: str, simulation_id: str) -> tuple[SimulationRecord, Progress | None]:
    found = await runtime.simulations.get(tenant_id, simulation_id)
    if found is None:
        raise NotFound(f"unknown simulation {simulation_id!r}")
    return found


@router.get("/{simulation_id}")
async def status(simulation_id: str, principal: TenantDep, runtime: RuntimeDep) -> SimulationOut:
    """Status and progress (the share of shards done)."""
    return simulation_out(*await _found(runtime, principal.tenant_id or "", simulation_id))


@router.get("/{simulation_id}/result")
async def result(simulation_id: str, principal: TenantDep, runtime: RuntimeDep) -> dict[str, Any]:
    """The result JSON (per policy: costs, deadline misses, time on spot/on-demand); 409 until it is done."""
    record, _ = await _found(runtime, principal.tenant_id or "", simulation_id)
    if record.status != SUCCEEDED or record.result is None:
        raise Conflict(f"simulation {simulation_id!r} is {record.status}, not succeeded"
                       + (f": {record.error}" if record.error else ""))
    return dict(record.result)
