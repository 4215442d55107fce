"""The baseline policies of the deadline workload, vectorized over runs.

* ``on_demand``: on-demand from start to finish.
* ``greedy``: spot whenever available, idle otherwise, on-demand (for good) once the whole ticks left no
  longer cover the remaining work plus two restarts (the paper's ``R(t) < C(t) + 2d``: one restart to
  get onto spot, one to get off it when preempted); a spot instance is kept until it is preempted.
* ``uniform_progress``: the Can't-Be-Late paper's policy. Expected progress ``ep(t) = t * J / D``; when
  spot is unavailable and the job is behind it, run on-demand; take spot whenever available, except that
  once on on-demand the job stays there until ``cp(t) >= ep(t + 2d)`` (its hysteresis, ``d`` the restart
  overhead); the same safety net as greedy.

All comparisons are in integer work units (:class:`engine.sim.clock.WorkClock`), so they are exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.sim.clock import DeadlineJob, WorkClock
from engine.sim.deadline import IDLE, ON_DEMAND, SPOT, BoolArray, ModeArray, Outlook, RiskArray, RunState


def safety_net(ahead: Outlook, clock: WorkClock) -> BoolArray:
    """Runs that can no longer afford to idle or try spot one more tick: the remaining work plus two
    restarts (onto spot and, if preempted, off it) takes all the whole ticks left before the deadline,
    counted from when the choice takes effect; with a launch delay, plus a tick per tick of delay (a spot
    choice that fails, or a preemption noticed a tick late, loses that tick).

    >>> from engine.sim.clock import WorkClock
    >>> clock = WorkClock(600.0, 120.0, 5, 3, 20, 6)
    >>> st = RunState.start(2, clock)
    >>> st.work_left_u[:] = [20, 10]
    >>> safety_net(Outlook.of(1, st, np.ones(2, bool), clock), clock).tolist()
    [True, False]
    """
    margin_u = 2 * clock.overhead_u + clock.delay_ticks * clock.tick_u
    need_ticks = (ahead.work_left_u + ahead.overhead_left_u + margin_u + clock.tick_u - 1) // clock.tick_u
    return need_ticks >= clock.deadline_ticks - ahead.tick


@dataclass(frozen=True, slots=True)
class OnDemandPolicy:
    name: str = "on_demand"

    def start(self, _job: DeadlineJob, _clock: WorkClock, n_runs: int, _risk: RiskArray, /) -> _Constant:
        return _Constant(np.full(n_runs, ON_DEMAND, dtype=np.int8))


class _Constant:
    def __init__(self, modes: ModeArray) -> None:
        self._modes = modes

    def decide(self, _tick: int, _state: RunState, _available: BoolArray, /) -> ModeArray:
        return self._modes


@dataclass(frozen=True, slots=True)
class GreedyPolicy:
    name: str = "greedy"

    def start(self, _job: DeadlineJob, clock: WorkClock, _n_runs: int, _risk: RiskArray, /) -> _Greedy:
        return _Greedy(clock)


class _Greedy:
    def __init__(self, clock: WorkClock) -> None:
        self._clock = clock

    def decide(self, tick: int, state: RunState, available: BoolArray, /) -> ModeArray:
        ahead = Outlook.of(tick, state, available, self._clock)
        request = np.where(available, SPOT, IDLE).astype(np.int8)
        late = safety_net(ahead, self._clock)
        if self._clock.overhead_u == 0:
            late &= ~available  # with free restarts, spot stays the better choice whenever it exists
        return np.where(late & (ahead.mode != SPOT), ON_DEMAND, request).astype(np.int8)


@dataclass(frozen=True, slots=True)
class UniformProgressPolicy:
    name: str = "uniform_progress"

    def start(self, _job: DeadlineJob, clock: WorkClock, _n_runs: int, _risk: RiskArray, /) -> _UniformProgress:
        return _UniformProgress(clock)


class _UniformProgress:
    def __init__(self, clock: WorkClock) -> None:
        self._clock = clock

    def decide(self, tick: int, state: RunState, available: BoolArray, /) -> ModeArray:
        c = self._clock
        ahead = Outlook.of(tick, state, available, c)
        deadline_u = np.int64(c.deadline_ticks * c.tick_u)
        done_u = np.int64(c.job_u) - ahead.work_left_u
        # cp(t) < ep(t)  <=>  done * D < t * J, in integers
        behind = done_u * deadline_u < np.int64(ahead.tick * c.tick_u) * c.job_u
        hold = done_u * deadline_u < np.int64(ahead.tick * c.tick_u + 2 * c.overhead_u) * c.job_u
        free_choice = np.where(available, SPOT, np.where(behind, ON_DEMAND, IDLE))
        request = np.where((ahead.mode == ON_DEMAND) & hold, ON_DEMAND, free_choice)
        on_spot = (ahead.mode == SPOT) & available  # exploitation: keep spot until preempted
        request = np.where(on_spot, SPOT, request)
        late = safety_net(ahead, c) & ~on_spot
        return np.where(late, ON_DEMAND, request).astype(np.int8)
