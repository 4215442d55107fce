"""Bulk simulation on Ray: split the runs into shards, one task per shard, merge in run order.

The kernels (:mod:`engine.sim`) are pure numpy; this module only distributes them. Ray is local by
default (``num_cpus`` workers on this machine, bound to loopback) or a running cluster when an address is
given (``--address`` or ``RAY_ADDRESS``, resolved by the CLI). A rich progress bar advances as shards
finish.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import ray
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from engine.policy import PolicyParams
from engine.sim.backtest import run_deadline_shard, run_fleet_shard
from engine.sim.clock import DeadlineJob
from engine.sim.deadline import DeadlineOutcome
from engine.sim.fleet import DEFAULT_DECISION_INTERVAL_S, FleetMarket, FleetOutcome, merge_fleet
from engine.sim.report import merge_outcomes
from engine.sim.runs import DeadlineRuns

T = TypeVar("T")
SHARDS_PER_CPU = 4
MIN_RUNS_PER_SHARD = 32


@dataclass(frozen=True, slots=True)
class RayTarget:
    """Where to run: a cluster address, or a local Ray with ``num_cpus`` workers (None: all cores)."""

    address: str | None = None
    num_cpus: int | None = None


def connect(target: RayTarget) -> None:
    """Start (or join) Ray once per process; a Ray already initialised (tests, notebooks) is reused."""
    if ray.is_initialized():
        return
    if target.address:
        ray.init(address=target.address, log_to_driver=False)
        return
    # Local Ray only: keep it on loopback and quiet.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(
        address="local", num_cpus=target.num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False
    )


def shard_bounds(n_runs: int, n_cpus: int, min_runs: int = MIN_RUNS_PER_SHARD) -> list[tuple[int, int]]:
    """Contiguous ``[start, stop)`` shards: a few per CPU so a slow shard does not idle the others.

    >>> shard_bounds(10, 2, min_runs=1)
    [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]
    >>> shard_bounds(100, 2, min_runs=64)
    [(0, 50), (50, 100)]
    """
    if n_runs <= 0:
        return []
    n_shards = max(1, min(n_cpus * SHARDS_PER_CPU, -(-n_runs // max(1, min_runs))))
    size = -(-n_runs // n_shards)
    return [(start, min(start + size, n_runs)) for start in range(0, n_runs, size)]


def cluster_cpus() -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def gather(refs: Sequence[ray.ObjectRef], label: str, show_progress: bool) -> list[Any]:
    """Wait for every ref, advancing a progress bar as each one lands; results in ``refs`` order."""
    pending = list(refs)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not show_progress,
        transient=True,
    ) as progress:
        task = progress.add_task(label, total=len(pending))
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            progress.advance(task, len(done))
    return list(ray.get(list(refs)))


@ray.remote
def _deadline_task(
    job: DeadlineJob, runs: DeadlineRuns, policies: Sequence[str], risk_horizon_s: float
) -> dict[str, DeadlineOutcome]:
    return run_deadline_shard(job, runs, policies, risk_horizon_s)


def simulate_deadline_runs(
    job: DeadlineJob,
    runs: DeadlineRuns,
    policies: Sequence[str],
    target: RayTarget | None = None,
    risk_horizon_s: float = 3600.0,
    show_progress: bool = False,
    n_shards: int | None = None,
) -> dict[str, DeadlineOutcome]:
    """Every policy on every run, sharded over Ray (``n_shards``, default a few per CPU); per-run
    outcomes merged back in run order."""
    connect(target or RayTarget())
    if n_shards is None:
        bounds = shard_bounds(runs.n_runs, cluster_cpus())
    else:
        size = -(-runs.n_runs // max(1, n_shards))
        bounds = [(a, min(a + size, runs.n_runs)) for a in range(0, runs.n_runs, size)]
    refs = [_deadline_task.remote(job, runs.shard(a, b), tuple(policies), risk_horizon_s) for a, b in bounds]
    parts: list[dict[str, DeadlineOutcome]] = gather(refs, "deadline runs", show_progress)
    return {name: merge_outcomes([p[name] for p in parts]) for name in policies}


def map_shards(
    fn: Callable[..., T],
    shards: Sequence[tuple[Any, ...]],
    label: str,
    show_progress: bool = False,
    target: RayTarget | None = None,
) -> list[T]:
    """Run ``fn(*args)`` for each shard as a Ray task (the fleet workload and the bench use this)."""
    connect(target or RayTarget())
    remote = ray.remote(fn)
    return gather([remote.remote(*args) for args in shards], label, show_progress)


_fleet_task = ray.remote(run_fleet_shard)


def simulate_fleet_runs(
    market: FleetMarket,
    policies: Sequence[str],
    starts: npt.NDArray[np.int64],
    n_ticks: int,
    fleet_size: int,
    params: PolicyParams | None = None,
    target: RayTarget | None = None,
    show_progress: bool = False,
    decision_interval_s: float = DEFAULT_DECISION_INTERVAL_S,
) -> dict[str, FleetOutcome]:
    """Every policy on every fleet run, sharded over Ray (the market is shipped once)."""
    connect(target or RayTarget())
    market_ref = ray.put(market)
    bounds = shard_bounds(len(starts), cluster_cpus(), min_runs=1)
    refs = [
        _fleet_task.remote(market_ref, tuple(policies), starts[a:b], n_ticks, fleet_size, params, decision_interval_s)
        for a, b in bounds
    ]
    parts: list[dict[str, FleetOutcome]] = gather(refs, "fleet runs", show_progress)
    return {name: merge_fleet([p[name] for p in parts]) for name in policies}
