"""``risk_aware`` for the deadline workload: learn how long spot lasts and stays away, then act on the
plan that is cheapest in expectation under what was learned (:mod:`engine.sim.deadline_plan`).

Per run, online and causal (:mod:`engine.sim.spells`): the mean length of established available and of
unavailable spells, and the chance that a spell that has just begun ends at once, from the spells seen so
far, behind a prior of one risk horizon. Where a risk model's prediction
P(unavailable within the horizon) is given (the same online model the live engine uses), it stands for
the available spells. The slack is the
budget: idling and restarts spend it, and the plan spends it only where the expected spot savings pay for
it, never past what the deadline allows.

With a launch delay of one tick the plan is the blind one, read at the state the running tick leaves:
the mode it holds (the choice made a tick ago, or nothing if that was spot and spot has gone) and the
work it will have done.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine.sim.clock import DeadlineJob, WorkClock
from engine.sim.deadline import ON_DEMAND, BoolArray, ModeArray, Outlook, RunState
from engine.sim.deadline_plan import DeadlinePlan, mean_hours_from_risk, solve_plan, unpack, young_ticks
from engine.sim.spells import SpellRates


@dataclass(frozen=True, slots=True)
class RiskAwareDeadlinePolicy:
    """``horizon_s``: the horizon of the risk predictions passed in (and the prior mean spell length)."""

    horizon_s: float = 3600.0
    name: str = "risk_aware"

    def start(
        self, job: DeadlineJob, clock: WorkClock, n_runs: int, risk: npt.NDArray[np.float32] | None, /
    ) -> _RiskAware:
        return _RiskAware(solve_plan(job, clock), clock, n_runs, risk, self.horizon_s)


class _RiskAware:
    """The controller: per tick, learn, pick each run's grid point and slack, read the plan."""

    def __init__(
        self, plan: DeadlinePlan, clock: WorkClock, n_runs: int, risk: npt.NDArray[np.float32] | None, horizon_s: float
    ) -> None:
        self._plan = plan
        self._clock = clock
        self._risk = risk
        self._horizon_s = horizon_s
        self._spells = SpellRates(n_runs, horizon_s / clock.tick_s, young_ticks(clock))
        self._risk_up_hours = np.full(n_runs, np.nan)  # the risk model's mean up-time; nan: none yet
        _, _, n_down, n_fresh, n_sp = plan.packed.shape
        self._per_tick = plan.packed.reshape(plan.max_tau + 1, -1)
        self._strides = (n_down * n_fresh * n_sp, n_fresh * n_sp, n_sp)

    def observe(self, tick: int, available: BoolArray) -> None:
        """Learn from the availability just seen (before deciding on it)."""
        self._spells.learn_one(available)
        if self._risk is not None and tick < self._risk.shape[0]:
            fresh = mean_hours_from_risk(self._risk[tick], self._horizon_s)
            np.copyto(self._risk_up_hours, fresh, where=available)

    def mean_hours(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Current estimates of the mean (established available, unavailable) spell lengths, hours (the
        risk model's up-time where it has spoken)."""
        down, up = self._spells.mean_ticks() * self._clock.tick_hours
        return np.where(np.isnan(self._risk_up_hours), up, self._risk_up_hours), down

    def decide(self, tick: int, state: RunState, available: BoolArray, /) -> ModeArray:
        self.observe(tick, available)
        c = self._clock
        ahead = Outlook.of(tick, state, available, c)  # the state the choice will take effect in
        tau = c.deadline_ticks - ahead.tick
        if tau <= 0:
            return np.full(ahead.mode.shape, ON_DEMAND, np.int8)
        plan = self._plan
        u, d, f = plan.model_index(*self.mean_hours(), self._spells.fresh_hazard())
        s = (tau * c.tick_u - ahead.work_left_u - ahead.overhead_left_u) // plan.slack_unit_u
        index = u * self._strides[0] + d * self._strides[1] + f * self._strides[2] + np.clip(s, -1, plan.n_slack - 1)
        return unpack(self._per_tick[min(tau, plan.max_tau)][index + 1], ahead.mode, self.avail_state())

    def avail_state(self) -> npt.NDArray[np.intp]:
        """Each run's availability state now (unavailable, fresh, established)."""
        return self._spells.state
