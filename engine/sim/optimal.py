"""The omniscient policy: the cheapest schedule for a known availability trace, by dynamic programming.

It is the paper's Omniscient bound, solved exactly instead of with an ILP. The state at the start of a
tick is the *deficit* ``q`` (time lost so far to idle ticks and restarts, in work units: ``t * tick_u -
progress``) and the mode of the previous tick. A job that lost more than its slack cannot make the
deadline, so only ``slack_u + 1`` deficits exist whatever the job length: the state space is small and
the DP runs as numpy over (runs, deficit), one step per tick. Costs are exact (counts of spot and
on-demand ticks are carried along the argmin, so the report also says how the optimum spent its time).

With a launch delay of ``d`` ticks the omniscient schedule is the same problem on a shorter clock: it
knows the future, so it asks ``d`` ticks ahead; nothing runs in the first ``d`` ticks, and spot runs at
``t`` only where it is available both at ``t`` and when it was asked for, at ``t - d`` (the kernel's rule).

When the restart overhead is longer than a tick, a restart is charged in full when it starts; a schedule
interrupted mid-restart is then charged a little more than the kernel would, so the bound is exact only
for overheads within one tick (the usual case, and the paper's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine.sim.clock import DeadlineJob, WorkClock
from engine.sim.deadline import DeadlineOutcome

MAX_DEFICIT_STATES = 4096
RUNS_PER_CHUNK = 2048


@dataclass(slots=True, eq=False)
class _Best:
    """Per (run, deficit) the cheapest way to be there, and how it was spent."""

    spot: npt.NDArray[np.int32]
    od: npt.NDArray[np.int32]
    restarts: npt.NDArray[np.int32]
    cost: npt.NDArray[np.float64]

    @classmethod
    def empty(cls, shape: tuple[int, ...]) -> _Best:
        return cls(
            np.zeros(shape, np.int32), np.zeros(shape, np.int32), np.zeros(shape, np.int32), np.full(shape, np.inf)
        )

    def pick(self, other: _Best) -> _Best:
        better = other.cost < self.cost
        return _Best(
            np.where(better, other.spot, self.spot),
            np.where(better, other.od, self.od),
            np.where(better, other.restarts, self.restarts),
            np.minimum(self.cost, other.cost),
        )

    def shifted(self, by: int, restart: bool = False) -> _Best:
        """The same states ``by`` deficit units later (the ones shifted past the slack are dropped)."""
        if by == 0:
            return _Best(self.spot, self.od, self.restarts + restart, self.cost)
        out = _Best.empty(self.cost.shape)
        if by < self.cost.shape[1]:
            out.spot[:, by:] = self.spot[:, :-by]
            out.od[:, by:] = self.od[:, :-by]
            out.restarts[:, by:] = self.restarts[:, :-by] + restart
            out.cost[:, by:] = self.cost[:, :-by]
        return out

    def plus(self, spot: int, od: int, usd: float) -> _Best:
        return _Best(self.spot + spot, self.od + od, self.restarts, self.cost + usd)


def _dp_units(clock: WorkClock) -> tuple[int, int, int, int]:
    """(tick, overhead, job, slack) in DP units: the clock's, or coarser (a relaxation) when the slack
    has more than :data:`MAX_DEFICIT_STATES` states."""
    factor = 1
    for k in range(1, clock.tick_u + 1):
        if clock.tick_u % k == 0 and clock.slack_u // k < MAX_DEFICIT_STATES:
            factor = k
            break
    else:
        factor = clock.tick_u
    tick_u = clock.tick_u // factor
    overhead_u = clock.overhead_u // factor
    job_u = clock.job_u // factor
    return tick_u, overhead_u, job_u, clock.deadline_ticks * tick_u - job_u


def optimal_deadline(job: DeadlineJob, clock: WorkClock, available: npt.NDArray[np.bool_]) -> DeadlineOutcome:
    """The omniscient optimum of every run (``available`` is ``(T, R)``); never misses a deadline.

    >>> job = DeadlineJob(1.0, 1.5, 0.1, 1.0, 3.0)
    >>> clock = WorkClock.of(job, 600)
    >>> avail = np.zeros((9, 1), dtype=bool); avail[2:, 0] = True
    >>> out = optimal_deadline(job, clock, avail)
    >>> out.spot_ticks.tolist(), out.on_demand_ticks.tolist(), out.finish_tick.tolist()
    ([7], [0], [9])
    """
    n_runs = available.shape[1]
    parts = [_solve(job, clock, available[:, i : i + RUNS_PER_CHUNK]) for i in range(0, n_runs, RUNS_PER_CHUNK)]
    best = _Best(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("spot", "od", "restarts", "cost")))
    finish = np.concatenate([p.finish for p in parts])
    return DeadlineOutcome(
        policy="optimal",
        cost_usd=best.cost,
        finish_tick=finish,
        spot_ticks=best.spot,
        on_demand_ticks=best.od,
        idle_ticks=(finish - best.spot - best.od).astype(np.int32),
        restarts=best.restarts,
        preemptions=np.zeros(n_runs, np.int32),
        deadline_ticks=clock.deadline_ticks,
    )


@dataclass(slots=True, eq=False)
class _Solved:
    spot: npt.NDArray[np.int32]
    od: npt.NDArray[np.int32]
    restarts: npt.NDArray[np.int32]
    cost: npt.NDArray[np.float64]
    finish: npt.NDArray[np.int32]


def _solve(job: DeadlineJob, clock: WorkClock, available: npt.NDArray[np.bool_]) -> _Solved:
    tick_u, overhead_u, job_u, slack_u = _dp_units(clock)
    n_runs = available.shape[1]
    shape = (n_runs, slack_u + 1)
    spot_usd = job.spot_usd_per_hour * clock.tick_hours
    od_usd = job.on_demand_usd_per_hour * clock.tick_hours
    idle, spot, od = _Best.empty(shape), _Best.empty(shape), _Best.empty(shape)
    idle.cost[:, 0] = 0.0
    done = _Best.empty((n_runs,))
    finish = np.full(n_runs, -1, np.int32)
    delay = clock.delay_ticks
    never = np.zeros(n_runs, np.bool_)
    for t in range(clock.deadline_ticks):
        avail = available[t] if t < available.shape[0] else never
        if delay:
            asked = available[t - delay] if delay <= t < available.shape[0] + delay else never
            avail = avail & asked
        new_idle = idle.pick(spot).pick(od).shifted(tick_u)
        new_spot = spot.shifted(0).pick(idle.pick(od).shifted(overhead_u, restart=True)).plus(1, 0, spot_usd)
        new_spot.cost[~avail] = np.inf
        new_od = od.shifted(0).pick(idle.pick(spot).shifted(overhead_u, restart=True)).plus(0, 1, od_usd)
        if t < delay:
            new_od.cost[:] = np.inf
        idle, spot, od = new_idle, new_spot, new_od
        finished_upto = (t + 1) * tick_u - job_u  # deficits at or below this have done all the work
        if finished_upto >= 0:
            cut = min(finished_upto, slack_u) + 1
            for mode in (spot, od):
                k = np.argmin(mode.cost[:, :cut], axis=1)
                rows = np.arange(n_runs)
                cand = _Best(mode.spot[rows, k], mode.od[rows, k], mode.restarts[rows, k], mode.cost[rows, k])
                improved = cand.cost < done.cost
                finish[improved] = t + 1
                done = done.pick(cand)
                mode.cost[:, :cut] = np.inf
            idle.cost[:, :cut] = np.inf
    return _Solved(done.spot, done.od, done.restarts, done.cost, finish)
