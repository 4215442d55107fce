"""Bulk simulations: submit (Ray tasks), follow status and progress, read the result JSON."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from actors.backtests import DeadlineRequest, FleetRequest, SimulationInputError
from actors.store.tenancy import SimulationRecord
from api.deps import RuntimeDep, TenantDep
from api.errors import Conflict, InvalidInput, NotFound
from api.schemas import ERRORS, DeadlineSimulationIn, FleetSimulationIn, SimulationIn, SimulationOut, SimulationsOut
from api.simulations import SUCCEEDED, BacktestRequest, Progress
from engine.policy import PolicyParams
from engine.sim.clock import DeadlineJob, JobError

router = APIRouter(prefix="/api/v1/simulations", tags=["simulations"], responses=ERRORS)


def simulation_out(record: SimulationRecord, progress: Progress | None) -> SimulationOut:
    done = 1.0 if record.status == SUCCEEDED else (progress.fraction if progress else 0.0)
    return SimulationOut(
        id=record.id, status=record.status, progress=round(done, 4), request=dict(record.request),
        error=record.error, created_at_s=record.created_at_s, finished_at_s=record.finished_at_s,
        result_path=f"/api/v1/simulations/{record.id}/result" if record.status == SUCCEEDED else None)


def backtest_request(body: DeadlineSimulationIn | FleetSimulationIn) -> BacktestRequest:
    """The body as the request the CLI builds from its options (JobError: an impossible job)."""
    if isinstance(body, FleetSimulationIn):
        return FleetRequest(tuple(str(p.value) for p in body.policies), body.fleet_size, body.runs, body.hours,
                            body.seed, PolicyParams(restart_hours=body.restart_hours), body.decision_interval_s,
                            body.instance_type, schedule=body.schedule)
    job = DeadlineJob(body.job.job_hours, body.job.deadline_hours, body.job.restart_overhead_hours,
                      body.job.spot_usd_per_hour, body.job.on_demand_usd_per_hour, body.job.delay_ticks)
    return DeadlineRequest(job, tuple(str(p.value) for p in body.policies), body.runs, body.seed, body.risk_horizon_s)


@router.post("", status_code=202)
async def submit(body: SimulationIn, principal: TenantDep, runtime: RuntimeDep) -> SimulationOut:
    """Start a bulk backtest on the recorded history, sharded over Ray: the deadline-job workload (the
    default) or ``"workload": "fleet"``; the same request gives the same result as ``spot-optimizer simulate``
    on the bundled files."""
    try:
        request = backtest_request(body)
        record = await runtime.simulations.submit(principal.tenant_id or "", request, body.model_dump(mode="json"))
    except JobError as exc:
        raise InvalidInput(f"body.job: {exc}") from None
    except SimulationInputError as exc:
        raise InvalidInput(f"body.{exc.field}: {exc.problem}" if exc.field else exc.problem) from None
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
