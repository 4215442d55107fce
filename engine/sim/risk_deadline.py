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
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.sim.clock import DeadlineJob, WorkClock
from engine.sim.deadline import ON_DEMAND, BoolArray, ModeArray, RunState
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
    """The controller, in flat integer indices so one tick of a large batch is a handful of numpy passes.

    What it learns per run are two integer counts per state (ticks seen available/unavailable, spells
    that ended), so the grid point of each mean is a table lookup on a flat index ``ticks * W + ends``
    that the controller keeps up to date; the plan for a tick is one contiguous block indexed by
    ``grid base + slack * 6 + mode * 2 + available``. The tables are built with the same arithmetic as
    the readable form (:meth:`mean_hours`, :meth:`DeadlinePlan.lookup`), so the decisions are the same.
    Nothing is allocated per tick: every pass writes into a buffer made once.
    """

    def __init__(
        self, plan: DeadlinePlan, clock: WorkClock, n_runs: int, risk: npt.NDArray[np.float32] | None, horizon_s: float
    ) -> None:
        self._plan = plan
        self._clock = clock
        self._risk = risk
        self._horizon_s = horizon_s
        self._prior_ticks = PRIOR_SPELLS * horizon_s / clock.tick_s
        g, n_sp = len(plan.mean_hours), plan.n_slack + 1
        self._per_tick = plan.action.reshape(plan.max_tau + 1, g * g * n_sp * 6)
        self._u_stride = g * n_sp * 6
        self._d_stride = n_sp * 6
        # Counts reach at most the horizon: grid point of every (ticks, ends) pair, pre-multiplied.
        width = clock.horizon_ticks + 1
        self._width = width
        grid = plan.grid_index(self._spell_hours(np.arange(width)[:, None], np.arange(width)[None, :])).ravel()
        self._u_base = (grid * self._u_stride).astype(np.int32)
        self._d_base = (grid * self._d_stride).astype(np.int32)
        # Per previous/now availability code (prev * 2 + now): how each flat count index moves.
        self._u_step = np.array([0, 0, width + 1, width], np.int32)  # an available tick; a spell ending
        self._d_step = np.array([width, width + 1, 0, 0], np.int32)
        self._u_flat = np.zeros(n_runs, np.int32)  # (available ticks seen) * width + (spells ended)
        self._d_flat = np.zeros(n_runs, np.int32)
        self._previous = np.zeros(n_runs, np.uint8)
        self._seen = False
        self._risk_base = np.full(n_runs, -1, np.int32)  # up-time grid base from the risk model; -1: none
        self._code = np.empty(n_runs, np.uint8)
        self._step = np.empty(n_runs, np.int32)
        self._base = np.empty(n_runs, np.int32)
        self._index = np.empty(n_runs, np.int32)
        self._small = np.empty(n_runs, np.int8)
        self._out = np.empty(n_runs, np.int8)

    def _spell_hours(
        self, ticks: npt.NDArray[np.integer[Any]], ends: npt.NDArray[np.integer[Any]]
    ) -> npt.NDArray[np.float64]:
        """Mean spell length, hours, from ``ticks`` observed and ``ends`` spells ended (beyond the prior)."""
        return (self._prior_ticks + ticks) / (PRIOR_SPELLS + ends) * self._clock.tick_hours

    def observe(self, tick: int, available: BoolArray) -> None:
        """Learn from the availability just seen (before deciding on it)."""
        now = available.view(np.uint8)
        if self._seen:
            np.left_shift(self._previous, 1, out=self._code)
            np.bitwise_or(self._code, now, out=self._code)
            np.take(self._u_step, self._code, out=self._step)
            np.add(self._u_flat, self._step, out=self._u_flat)
            np.take(self._d_step, self._code, out=self._step)
            np.add(self._d_flat, self._step, out=self._d_flat)
        self._seen = True
        np.copyto(self._previous, now)
        if self._risk is not None and tick < self._risk.shape[0]:
            fresh = self._plan.grid_index(mean_hours_from_risk(self._risk[tick], self._horizon_s))
            np.copyto(self._risk_base, (fresh * self._u_stride).astype(np.int32), where=available)

    def mean_hours(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Current estimates of the mean (available, unavailable) spell lengths, hours (the risk model's
        up-time where it has spoken, as the grid point the plan uses)."""
        w = self._width
        up = self._spell_hours(self._u_flat // w, self._u_flat % w)
        from_risk = np.asarray(self._plan.mean_hours)[np.maximum(self._risk_base, 0) // self._u_stride]
        up = np.where(self._risk_base >= 0, from_risk, up)
        return up, self._spell_hours(self._d_flat // w, self._d_flat % w)

    def decide(self, tick: int, state: RunState, available: BoolArray, /) -> ModeArray:
        self.observe(tick, available)
        c = self._clock
        tau = c.deadline_ticks - tick
        out = self._out
        if tau <= 0:
            out.fill(ON_DEMAND)
            return out
        base, index, small = self._base, self._index, self._small
        np.take(self._u_base, self._u_flat, out=base)
        if self._risk is not None:
            np.copyto(base, self._risk_base, where=self._risk_base >= 0)
        np.take(self._d_base, self._d_flat, out=index)
        np.add(base, index, out=base)
        # slack index + 1 = floor((tau * tick_u - work - pending overhead) / unit) + 1, within [0, n_slack]
        np.add(state.work_left_u, state.overhead_left_u, out=index)
        unit = self._plan.slack_unit_u
        if unit == 1:
            np.subtract(tau * c.tick_u + 1, index, out=index)
        else:
            np.subtract(tau * c.tick_u, index, out=index)
            np.floor_divide(index, unit, out=index)
            np.add(index, 1, out=index)
        np.clip(index, 0, self._plan.n_slack, out=index)
        np.multiply(index, 6, out=index)
        np.add(index, base, out=index)
        np.left_shift(state.mode, 1, out=small)
        np.add(small, available.view(np.int8), out=small)
        np.add(index, small, out=index)
        return np.take(self._per_tick[min(tau, self._plan.max_tau)], index, out=out)
