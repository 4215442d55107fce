"""One entry point per workload that a worker calls on its shard of runs.

The Ray fan-out (:mod:`actors.simulation`) ships a shard and a policy list here and merges what comes
back; this module knows the policy names and nothing about distribution.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from engine.policy import PolicyParams, make_policy
from engine.sim.clock import DeadlineJob, JobError, WorkClock
from engine.sim.deadline import DeadlineOutcome, DeadlinePolicy, simulate_deadline
from engine.sim.deadline_policies import GreedyPolicy, OnDemandPolicy, UniformProgressPolicy
from engine.sim.fleet import DEFAULT_DECISION_INTERVAL_S, FleetMarket, FleetOutcome, simulate_fleet
from engine.sim.optimal import optimal_deadline
from engine.sim.risk_deadline import RiskAwareDeadlinePolicy
from engine.sim.runs import DeadlineRuns

DEADLINE_POLICY_NAMES: tuple[str, ...] = ("on_demand", "greedy", "uniform_progress", "optimal", "risk_aware")


def deadline_policy(name: str, risk_horizon_s: float = 3600.0) -> DeadlinePolicy | None:
    """The online policy called ``name``; None for ``optimal``, which is solved offline."""
    match name:
        case "on_demand":
            return OnDemandPolicy()
        case "greedy":
            return GreedyPolicy()
        case "uniform_progress":
            return UniformProgressPolicy()
        case "risk_aware":
            return RiskAwareDeadlinePolicy(horizon_s=risk_horizon_s)
        case "optimal":
            return None
    raise JobError(f"unknown deadline policy {name!r}; choose from {', '.join(DEADLINE_POLICY_NAMES)}")


def run_deadline_shard(
    job: DeadlineJob, runs: DeadlineRuns, policies: Sequence[str], risk_horizon_s: float = 3600.0
) -> dict[str, DeadlineOutcome]:
    """Every policy on every run of the shard."""
    clock = WorkClock.of(job, runs.tick_s)
    out: dict[str, DeadlineOutcome] = {}
    for name in policies:
        policy = deadline_policy(name, risk_horizon_s)
        if policy is None:
            out[name] = optimal_deadline(job, clock, runs.available)
        else:
            out[name] = simulate_deadline(job, clock, runs.available, policy, runs.risk)
    return out


def run_fleet_shard(
    market: FleetMarket,
    policies: Sequence[str],
    starts: npt.NDArray[np.int64],
    n_ticks: int,
    fleet_size: int,
    params: PolicyParams | None = None,
    decision_interval_s: float = DEFAULT_DECISION_INTERVAL_S,
) -> dict[str, FleetOutcome]:
    """Every policy (the live engine's, by name) on every fleet run of the shard."""
    return {
        name: simulate_fleet(market, make_policy(name, params), starts, n_ticks, fleet_size, decision_interval_s)
        for name in policies
    }
