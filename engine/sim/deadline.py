"""The deadline-job kernel: many runs of one job at once, one numpy step per tick.

Rules (those of the Can't-Be-Late simulator, so its published numbers reproduce): at every tick each
unfinished run is idle, on spot (only if spot is available at that tick) or on on-demand. A tick on an
instance is paid in full. A new instance (from idle, after a preemption, or switching between spot and
on-demand) first consumes the restart overhead, inside the tick(s) it starts in. A spot instance whose
capacity is gone at a tick is preempted: the run is without an instance at that tick. A run is done once
its work is; it misses its deadline when that happens after ``deadline_ticks``.

With ``delay_ticks = d > 0`` (a launch takes time on a real cloud) the choice made at tick ``t`` takes
effect at ``t + d``; the first ``d`` ticks hold nothing. Spot asked for at ``t`` must be available at ``t``
(as without delay); if it is gone by ``t + d`` the launch fails and the run holds nothing at that tick
(whatever it held before is released: the choice took effect).

Runs are columns: ``available`` is tick-major ``(T, R)`` so each step reads one contiguous row.
Policies are controllers with per-run state (:mod:`engine.sim.deadline_policies`); the kernel only
enforces the rules and counts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from engine.sim.clock import DeadlineJob, WorkClock

BoolArray = npt.NDArray[np.bool_]
ModeArray = npt.NDArray[np.int8]
IntArray = npt.NDArray[np.int32]
RiskArray = npt.NDArray[np.float32] | None


class Mode(enum.IntEnum):
    """What a run holds during a tick (array code)."""

    IDLE = 0
    SPOT = 1
    ON_DEMAND = 2


IDLE, SPOT, ON_DEMAND = np.int8(Mode.IDLE), np.int8(Mode.SPOT), np.int8(Mode.ON_DEMAND)


class PolicyError(RuntimeError):
    """A deadline policy asked for something the rules forbid (spot where there is none)."""


@dataclass(slots=True, eq=False)
class RunState:
    """The kernel's per-run state, updated in place; policies read it (never write it).

    ``mode`` is the instance held *now*, after preemptions at the current tick are applied.
    ``pending[k]`` is the choice already made for tick ``t + k`` (``delay_ticks`` rows; none without delay).
    """

    mode: ModeArray  # (R,)
    work_left_u: IntArray  # (R,)
    overhead_left_u: IntArray  # (R,) restart overhead still to consume on the current instance
    active: BoolArray  # (R,) not done yet
    pending: ModeArray  # (delay_ticks, R)

    @classmethod
    def start(cls, n_runs: int, clock: WorkClock) -> RunState:
        return cls(
            mode=np.zeros(n_runs, dtype=np.int8),
            work_left_u=np.full(n_runs, clock.job_u, dtype=np.int32),
            overhead_left_u=np.zeros(n_runs, dtype=np.int32),
            active=np.ones(n_runs, dtype=np.bool_),
            pending=np.zeros((clock.delay_ticks, n_runs), dtype=np.int8),
        )


@dataclass(frozen=True, slots=True, eq=False)
class Outlook:
    """What a run will be when the choice made now takes effect, ``delay_ticks`` from now: the mode it
    will hold just before, the work and restart overhead it will have left. Exact for a delay of 0 or 1
    (the running tick holds the choice made for it, or nothing if that was spot and spot has gone); for
    longer delays the other queued ticks are counted as making no progress (the side that never misses).
    """

    mode: ModeArray  # (R,)
    work_left_u: npt.NDArray[np.int64]  # (R,)
    overhead_left_u: npt.NDArray[np.int64]  # (R,)
    tick: int  # the tick the choice is for

    @classmethod
    def of(cls, tick: int, state: RunState, available: BoolArray, clock: WorkClock) -> Outlook:
        """
        >>> clock = WorkClock(600.0, 120.0, 5, 6, 100, 30, 1)
        >>> st = RunState.start(2, clock)
        >>> st.pending[0] = [SPOT, ON_DEMAND]
        >>> out = Outlook.of(3, st, np.array([False, False]), clock)
        >>> out.mode.tolist(), out.work_left_u.tolist(), out.overhead_left_u.tolist(), out.tick
        ([0, 2], [100, 100], [0, 1], 4)
        """
        work = state.work_left_u.astype(np.int64)
        if clock.delay_ticks == 0:
            return cls(state.mode, work, state.overhead_left_u.astype(np.int64), tick)
        chosen = state.pending[0]
        held = np.where((chosen == SPOT) & ~available, IDLE, chosen).astype(np.int8)
        running = held != IDLE
        overhead = np.where(running & (held != state.mode), clock.overhead_u, state.overhead_left_u).astype(np.int64)
        burnt = np.minimum(overhead, clock.tick_u) * running
        work = work - (clock.tick_u - burnt) * running
        if clock.delay_ticks > 1:
            held = state.pending[-1]
        return cls(held, work, (overhead - burnt) * running, tick + clock.delay_ticks)


class Controller(Protocol):
    """A policy bound to one batch of runs; keeps whatever per-run memory it needs."""

    def decide(self, tick: int, state: RunState, available: BoolArray, /) -> ModeArray:
        """The mode each run takes for tick ``tick + delay_ticks`` (finished runs are ignored)."""
        ...


class DeadlinePolicy(Protocol):
    """A deadline policy: a name and a factory of controllers.

    ``risk`` (optional, ``(T, R)`` like ``available``) is a causal prediction per run and tick of
    P(spot unavailable within the policy's horizon); policies that do not use it ignore it.
    """

    @property
    def name(self) -> str: ...

    def start(
        self, job: DeadlineJob, clock: WorkClock, n_runs: int, risk: npt.NDArray[np.float32] | None, /
    ) -> Controller: ...


@dataclass(frozen=True, slots=True, eq=False)
class DeadlineOutcome:
    """Per-run results of one policy over one batch."""

    policy: str
    cost_usd: npt.NDArray[np.float64]  # (R,)
    finish_tick: IntArray  # (R,) ticks elapsed when the job finished; -1 if it never did
    spot_ticks: IntArray
    on_demand_ticks: IntArray
    idle_ticks: IntArray
    restarts: IntArray
    preemptions: IntArray
    deadline_ticks: int

    @property
    def missed(self) -> BoolArray:
        """Runs that finished late or not at all: reported, never hidden."""
        return (self.finish_tick < 0) | (self.finish_tick > self.deadline_ticks)

    @property
    def n_runs(self) -> int:
        return int(self.cost_usd.shape[0])


def simulate_deadline(
    job: DeadlineJob,
    clock: WorkClock,
    available: BoolArray,
    policy: DeadlinePolicy,
    risk: npt.NDArray[np.float32] | None = None,
) -> DeadlineOutcome:
    """Run ``policy`` on every column of ``available`` (``(T, R)``, True = spot available).

    Ticks past the end of ``available`` count as spot unavailable.

    >>> job = DeadlineJob(1.0, 2.0, 0.1, 1.0, 3.0)
    >>> clock = WorkClock.of(job, 600)
    >>> from engine.sim.deadline_policies import OnDemandPolicy
    >>> out = simulate_deadline(job, clock, np.ones((20, 2), dtype=bool), OnDemandPolicy())
    >>> out.finish_tick.tolist(), out.cost_usd.round(2).tolist()
    ([7, 7], [3.5, 3.5])
    """
    if available.ndim != 2:
        raise ValueError(f"available must be (ticks, runs), got shape {available.shape}")
    n_ticks, n_runs = available.shape
    state = RunState.start(n_runs, clock)
    controller = policy.start(job, clock, n_runs, risk)
    spot_ticks = np.zeros(n_runs, dtype=np.int32)
    od_ticks = np.zeros(n_runs, dtype=np.int32)
    restarts = np.zeros(n_runs, dtype=np.int32)
    preemptions = np.zeros(n_runs, dtype=np.int32)
    finish = np.full(n_runs, -1, dtype=np.int32)
    never = np.zeros(n_runs, dtype=np.bool_)
    tick_u = np.int32(clock.tick_u)
    overhead_u = np.int32(clock.overhead_u)
    mode, active, work, overhead = state.mode, state.active, state.work_left_u, state.overhead_left_u
    pending = state.pending
    delayed = pending.shape[0] > 0
    # One buffer per intermediate, written in place every tick: the loop allocates nothing.
    request = np.empty(n_runs, np.int8)
    lost = np.empty(n_runs, np.bool_)
    on_spot = np.empty(n_runs, np.bool_)
    running = np.empty(n_runs, np.bool_)
    flag = np.empty(n_runs, np.bool_)
    burnt = np.empty(n_runs, np.int32)
    for t in range(clock.horizon_ticks):
        if not active.any():
            break
        avail = available[t] if t < n_ticks else never
        np.equal(mode, SPOT, out=lost)
        np.greater(lost, avail, out=lost)  # on spot & no spot now
        if lost.any():
            preemptions += lost & active
            mode[lost] = IDLE
        np.multiply(controller.decide(t, state, avail), active, out=request)  # finished runs idle (IDLE == 0)
        np.equal(request, SPOT, out=on_spot)
        if np.greater(on_spot, avail, out=flag).any():
            raise PolicyError(f"{policy.name} asked for spot where none is available at tick {t}")
        if delayed:  # this tick runs the choice made delay_ticks ago; the new one joins the queue
            chosen = request.copy()
            np.copyto(request, pending[0])
            pending[:-1] = pending[1:]
            pending[-1] = chosen
            np.equal(request, SPOT, out=on_spot)
            np.greater(on_spot, avail, out=flag)  # the launch failed: spot went away in the meantime
            request[flag] = IDLE
            np.logical_and(on_spot, avail, out=on_spot)
            np.multiply(request, active, out=request)
        np.not_equal(request, IDLE, out=running)
        np.not_equal(request, mode, out=flag)
        np.logical_and(flag, running, out=flag)  # a new instance: pays the restart overhead first
        restarts += flag
        np.copyto(overhead, overhead_u, where=flag)
        np.minimum(overhead, tick_u, out=burnt)
        np.multiply(burnt, running, out=burnt)
        np.subtract(overhead, burnt, out=overhead)
        np.subtract(tick_u, burnt, out=burnt)
        np.multiply(burnt, running, out=burnt)
        np.subtract(work, burnt, out=work)
        spot_ticks += on_spot
        od_ticks += request == ON_DEMAND
        np.copyto(mode, request)
        np.less_equal(work, 0, out=flag)
        np.logical_and(flag, active, out=flag)
        if flag.any():
            finish[flag] = t + 1
            active &= ~flag
            mode[flag] = IDLE
    elapsed = np.where(finish >= 0, finish, clock.horizon_ticks)
    cost = (spot_ticks * job.spot_usd_per_hour + od_ticks * job.on_demand_usd_per_hour) * clock.tick_hours
    return DeadlineOutcome(
        policy=policy.name,
        cost_usd=cost,
        finish_tick=finish,
        spot_ticks=spot_ticks,
        on_demand_ticks=od_ticks,
        idle_ticks=(elapsed - spot_ticks - od_ticks).astype(np.int32),
        restarts=restarts,
        preemptions=preemptions,
        deadline_ticks=clock.deadline_ticks,
    )
