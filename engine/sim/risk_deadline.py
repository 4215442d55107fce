"""``risk_aware`` for the deadline workload: learn how long spot lasts and stays away, then act on the
plan that is cheapest in expectation under what was learned (:mod:`engine.sim.deadline_plan`).

Per run, online and causal: the mean length of spot-available spells comes from the risk model's
prediction P(unavailable within the horizon) when one is given (the same online model the live engine
uses), else from the spells observed so far; the mean length of unavailable spells from the outages
observed so far. Before any observation both start at one risk horizon, a neutral prior that the first
few transitions override. The slack is the budget: idling and restarts spend it, and the plan spends it
only where the expected spot savings pay for it, never past what the deadline allows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine.sim.clock import DeadlineJob, WorkClock
from engine.sim.deadline import BoolArray, ModeArray, RunState
from engine.sim.deadline_plan import DEFAULT_MEAN_HOURS, DeadlinePlan, mean_hours_from_risk, solve_plan

PRIOR_SPELLS = 1.0  # pseudo-observations behind the prior mean; weak on purpose


@dataclass(frozen=True, slots=True)
class RiskAwareDeadlinePolicy:
    """``horizon_s``: the horizon of the risk predictions passed in (and the prior mean spell length)."""

    horizon_s: float = 3600.0
    mean_hours: tuple[float, ...] = DEFAULT_MEAN_HOURS
    name: str = "risk_aware"

    def start(
        self, job: DeadlineJob, clock: WorkClock, n_runs: int, risk: npt.NDArray[np.float32] | None, /
    ) -> _RiskAware:
        return _RiskAware(solve_plan(job, clock, self.mean_hours), clock, n_runs, risk, self.horizon_s)


class _RiskAware:
    def __init__(
        self, plan: DeadlinePlan, clock: WorkClock, n_runs: int, risk: npt.NDArray[np.float32] | None, horizon_s: float
    ) -> None:
        self._plan = plan
        self._clock = clock
        self._risk = risk
        self._horizon_s = horizon_s
        prior_ticks = PRIOR_SPELLS * horizon_s / clock.tick_s
        self._up_ticks = np.full(n_runs, prior_ticks)
        self._up_ends = np.full(n_runs, PRIOR_SPELLS)
        self._down_ticks = np.full(n_runs, prior_ticks)
        self._down_ends = np.full(n_runs, PRIOR_SPELLS)
        self._previous: BoolArray | None = None
        self._up_from_risk = np.full(n_runs, np.nan)

    def observe(self, tick: int, available: BoolArray) -> None:
        """Learn from the availability just seen (before deciding on it)."""
        previous = self._previous
        if previous is not None:
            self._up_ticks += previous
            self._down_ticks += ~previous
            self._up_ends += previous & ~available
            self._down_ends += ~previous & available
        self._previous = available.copy()
        if self._risk is not None and tick < self._risk.shape[0]:
            fresh = mean_hours_from_risk(self._risk[tick], self._horizon_s)
            self._up_from_risk = np.where(available, fresh, self._up_from_risk)

    def mean_hours(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Current estimates of the mean (available, unavailable) spell lengths, hours."""
        tick_h = self._clock.tick_hours
        up = self._up_ticks / self._up_ends * tick_h
        up = np.where(np.isnan(self._up_from_risk), up, self._up_from_risk)
        return up, self._down_ticks / self._down_ends * tick_h

    def decide(self, tick: int, state: RunState, available: BoolArray, /) -> ModeArray:
        self.observe(tick, available)
        up, down = self.mean_hours()
        c = self._clock
        tau = np.int64(c.deadline_ticks - tick)
        slack = tau * c.tick_u - state.work_left_u.astype(np.int64) - state.overhead_left_u
        plan = self._plan
        return plan.lookup(
            plan.grid_index(up), plan.grid_index(down), np.full_like(slack, tau), slack, state.mode, available
        )
