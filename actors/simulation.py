"""Bulk simulation on Ray: split the runs into shards, one task per shard, merge in run order.

The kernels (:mod:`engine.sim`) are pure numpy; this module only distributes them. Shards in flight are a
:class:`Shards`, waited on from a thread (the CLI) or from an event loop (the REST jobs), reporting each
finished shard to a progress callback; :mod:`actors.backtests` builds the runs and the report around it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt
import ray

from actors.ray_runtime import RayTarget, cluster_cpus, connect
from engine.policy import PolicyParams
from engine.sim.backtest import run_deadline_shard, run_fleet_shard
from engine.sim.clock import DeadlineJob
from engine.sim.deadline import DeadlineOutcome
from engine.sim.fleet import DEFAULT_DECISION_INTERVAL_S, FleetMarket, FleetOutcome, merge_fleet
from engine.sim.report import merge_outcomes
from engine.sim.runs import DeadlineRuns

__all__ = [
    "ProgressCallback",
    "RayTarget",
    "Shards",
    "cluster_cpus",
    "connect",
    "merge_deadline",
    "merge_fleet_parts",
    "shard_bounds",
    "simulate_deadline_runs",
    "simulate_fleet_runs",
    "submit_deadline",
    "submit_fleet",
]

T = TypeVar("T")
ProgressCallback = Callable[[int, int], None]
"""Called with (shards done, shards in all) as each shard lands."""

SHARDS_PER_CPU = 4
MIN_RUNS_PER_SHARD = 32


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


@dataclass(slots=True)
class Shards(Generic[T]):
    """Shard tasks in flight. Their results come back in submission order, whatever order they finish in."""

    refs: list[ray.ObjectRef[Any]]

    @property
    def total(self) -> int:
        return len(self.refs)

    def wait(self, on_progress: ProgressCallback | None = None) -> list[T]:
        """Block until every shard is done (from a thread: the CLI)."""
        pending = list(self.refs)
        while pending:
            _, pending = ray.wait(pending, num_returns=1)
            if on_progress is not None:
                on_progress(self.total - len(pending), self.total)
        return list(ray.get(self.refs))

    async def wait_async(self, on_progress: ProgressCallback | None = None) -> list[T]:
        """Await every shard (from an event loop: the REST jobs); cancelled, it cancels the shards."""
        done = 0

        async def one(ref: ray.ObjectRef[Any]) -> T:
            nonlocal done
            value: T = await ref
            done += 1
            if on_progress is not None:
                on_progress(done, self.total)
            return value

        try:
            return list(await asyncio.gather(*(one(ref) for ref in self.refs)))
        except asyncio.CancelledError:
            self.cancel()
            raise

    def cancel(self) -> None:
        for ref in self.refs:
            with contextlib.suppress(Exception):
                ray.cancel(ref)


# Any: Ray's stubs type neither default arguments nor an ObjectRef passed in place of its value.
_deadline_task: Any = ray.remote(num_cpus=1, max_retries=1)(run_deadline_shard)
_fleet_task: Any = ray.remote(num_cpus=1, max_retries=1)(run_fleet_shard)


def submit_deadline(
    job: DeadlineJob,
    runs: DeadlineRuns,
    policies: Sequence[str],
    risk_horizon_s: float = 3600.0,
    n_shards: int | None = None,
) -> Shards[dict[str, DeadlineOutcome]]:
    """Every policy on every run, one task per shard (``n_shards``, default a few per CPU of the cluster).
    Ray must be connected."""
    if n_shards is None:
        bounds = shard_bounds(runs.n_runs, cluster_cpus())
    else:
        size = -(-runs.n_runs // max(1, n_shards))
        bounds = [(a, min(a + size, runs.n_runs)) for a in range(0, runs.n_runs, size)]
    return Shards([_deadline_task.remote(job, runs.shard(a, b), tuple(policies), risk_horizon_s) for a, b in bounds])


def merge_deadline(parts: Sequence[dict[str, DeadlineOutcome]], policies: Sequence[str]) -> dict[str, DeadlineOutcome]:
    """Per-run outcomes of every policy, shards concatenated in run order."""
    return {name: merge_outcomes([p[name] for p in parts]) for name in policies}


def submit_fleet(
    market: FleetMarket,
    policies: Sequence[str],
    starts: npt.NDArray[np.int64],
    n_ticks: int,
    fleet_size: int,
    params: PolicyParams | None = None,
    decision_interval_s: float = DEFAULT_DECISION_INTERVAL_S,
) -> Shards[dict[str, FleetOutcome]]:
    """Every policy on every fleet run, one task per shard; the market is shipped once. Ray must be
    connected."""
    market_ref = ray.put(market)
    bounds = shard_bounds(len(starts), cluster_cpus(), min_runs=1)
    return Shards([
        _fleet_task.remote(market_ref, tuple(policies), starts[a:b], n_ticks, fleet_size, params, decision_interval_s)
        for a, b in bounds
    ])


def merge_fleet_parts(parts: Sequence[dict[str, FleetOutcome]], policies: Sequence[str]) -> dict[str, FleetOutcome]:
    """Per-run fleet outcomes of every policy, shards concatenated in run order."""
    return {name: merge_fleet([p[name] for p in parts]) for name in policies}


def simulate_deadline_runs(
    job: DeadlineJob,
    runs: DeadlineRuns,
    policies: Sequence[str],
    target: RayTarget | None = None,
    risk_horizon_s: float = 3600.0,
    on_progress: ProgressCallback | None = None,
    n_shards: int | None = None,
) -> dict[str, DeadlineOutcome]:
    """Every policy on every run, sharded over Ray; per-run outcomes merged back in run order."""
    connect(target)
    parts = submit_deadline(job, runs, policies, risk_horizon_s, n_shards).wait(on_progress)
    return merge_deadline(parts, policies)


def simulate_fleet_runs(
    market: FleetMarket,
    policies: Sequence[str],
    starts: npt.NDArray[np.int64],
    n_ticks: int,
    fleet_size: int,
    params: PolicyParams | None = None,
    target: RayTarget | None = None,
    on_progress: ProgressCallback | None = None,
    decision_interval_s: float = DEFAULT_DECISION_INTERVAL_S,
) -> dict[str, FleetOutcome]:
    """Every policy on every fleet run, sharded over Ray; merged back in run order."""
    connect(target)
    parts = submit_fleet(market, policies, starts, n_ticks, fleet_size, params, decision_interval_s).wait(on_progress)
    return merge_fleet_parts(parts, policies)

