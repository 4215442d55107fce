"""Decision tables for the risk-aware deadline policy: the best action under a learned spot model.

Spot availability is modelled as a two-state Markov chain (available <-> unavailable) whose mean
durations the policy learns online, per run, from what it has observed (and from the risk model's
predictions when given). For every pair of mean durations on a log grid, a backward dynamic program
computes the action that minimises the *expected* cost to finish, with state ``(ticks to deadline,
slack left, mode, spot available now)``. A state from which some availability sequence makes the deadline
unreachable has infinite expected cost (every sequence has positive probability under the chain), so the
tables never take a risk with the deadline: the policy cannot miss one by construction, whatever the trace.

Slack left, ``s = ticks_left * tick_u - work_left_u - pending_overhead_u``, is what the job can still
lose to idling and restarts; a restart is charged in full when it starts (conservative when the restart
overhead spans more than one tick).

With a launch delay of one tick (``clock.delay_ticks == 1``) the tables are those of the *blind* problem:
the action is chosen knowing the mode and availability of the tick being run, and takes effect at the next
tick, whose availability is not known yet; spot asked for that is gone by then is an idle tick. The state
is then read one tick ahead (:meth:`DeadlinePlan.lookup` is given the projected slack and the mode of the
running tick), and the same argument makes a miss impossible.

Nothing here is fitted to any trace: the grid spans minutes to weeks, and the costs are the job's.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from engine.sim.clock import DeadlineJob, JobError, WorkClock
from engine.sim.deadline import IDLE, ON_DEMAND, SPOT

# Mean run lengths (hours) the tables are solved for; log-spaced from a few minutes to months.
DEFAULT_MEAN_HOURS: tuple[float, ...] = tuple(float(x) for x in np.geomspace(0.05, 2000.0, 22))
MAX_TABLE_BYTES = 384 * 2**20
# Fine enough that a 0.2 h restart is not rounded up to a whole 10-minute tick on a 22 h slack.
MAX_SLACK_STATES = 1024
# The six actions of one state (mode x available) are packed as base-3 digits: digit 2 * mode + available.
DIGIT = np.array([3**k for k in range(6)], np.uint16).reshape(3, 2)
ALL_ON_DEMAND = np.uint16(int(ON_DEMAND) * int(DIGIT.sum()))


def pack(codes: npt.NDArray[np.int8]) -> npt.NDArray[np.uint16]:
    """``(..., 3 modes, 2 availabilities)`` action codes -> one base-3 number per state.

    >>> codes = np.array([[[0, 1], [2, 2], [1, 0]]], np.int8)
    >>> int(pack(codes)[0]), unpack(pack(codes), np.array([2]), np.array([0])).tolist()  # 3 + 2*9 + 2*27 + 81
    (156, [1])
    """
    return np.asarray((codes.astype(np.uint16) * DIGIT).sum(axis=(-2, -1)), np.uint16)


def unpack(
    packed: npt.NDArray[np.uint16], mode: npt.NDArray[np.int8], available: npt.NDArray[np.bool_]
) -> npt.NDArray[np.int8]:
    """The action code for each ``(mode, available)`` from its packed state."""
    return np.asarray(packed // DIGIT[mode.astype(np.intp), available.astype(np.intp)] % 3, np.int8)


@dataclass(frozen=True, slots=True, eq=False)
class DeadlinePlan:
    """``packed[tau, u, d, s + 1]``: the modes to take with ``tau`` ticks left, for mean up-time
    ``mean_hours[u]``, mean down-time ``mean_hours[d]``, slack ``s`` (in units of ``slack_unit_u``), one
    per (mode held, spot available) packed in one number (:func:`pack`).

    Tick-major, so the table of one tick is one contiguous block that stays in cache while every run of a
    batch reads it. Slack index 0 (``s = -1``) is "the slack is gone": on-demand, whatever the rest.
    """

    mean_hours: tuple[float, ...]
    packed: npt.NDArray[np.uint16]
    slack_unit_u: int
    max_tau: int

    @property
    def n_slack(self) -> int:
        """Slack states ``0 .. n_slack - 1`` (the table holds one more, for lost slack)."""
        return int(self.packed.shape[3]) - 1

    def grid_index(self, mean_hours: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
        """Nearest grid point in log space.

        >>> plan = DeadlinePlan((1.0, 10.0, 100.0), np.zeros((1, 3, 3, 2), np.uint16), 1, 0)
        >>> plan.grid_index(np.array([0.5, 2.0, 4.0, 40.0, 1e6])).tolist()
        [0, 0, 1, 2, 2]
        """
        logs = np.log(np.asarray(self.mean_hours))
        edges = (logs[1:] + logs[:-1]) / 2
        return np.searchsorted(edges, np.log(np.maximum(mean_hours, 1e-12))).astype(np.intp)

    def lookup(
        self,
        up: npt.NDArray[np.intp],
        down: npt.NDArray[np.intp],
        tau: npt.NDArray[np.int64],
        slack_u: npt.NDArray[np.int64],
        mode: npt.NDArray[np.int8],
        available: npt.NDArray[np.bool_],
    ) -> npt.NDArray[np.int8]:
        """The planned mode per run; on-demand where the slack is gone or the deadline has passed.

        The readable form of what :class:`engine.sim.risk_deadline` does with flat integer indices.
        """
        s = slack_u // self.slack_unit_u  # floor: never credit slack the job does not have
        packed = self.packed[np.clip(tau, 0, self.max_tau), up, down, np.clip(s, -1, self.n_slack - 1) + 1]
        return np.where(tau <= 0, ON_DEMAND, unpack(packed, mode, available)).astype(np.int8)


@lru_cache(maxsize=8)
def solve_plan(job: DeadlineJob, clock: WorkClock, mean_hours: tuple[float, ...] = DEFAULT_MEAN_HOURS) -> DeadlinePlan:
    """Solve the tables for one job on one clock (cached: every shard of a run reuses them)."""
    if clock.delay_ticks > 1:
        raise JobError(f"the risk-aware plan models a launch delay of at most 1 tick, got {clock.delay_ticks}")
    blind = clock.delay_ticks == 1
    unit = slack_unit(clock)
    tick_u = clock.tick_u // unit
    overhead_u = -(-clock.overhead_u // unit)  # round the restart cost up: conservative
    n_s = clock.slack_u // unit + 1
    g = len(mean_hours)
    per_tau = g * g * (n_s + 1) * 2
    max_tau = max(1, min(clock.deadline_ticks, MAX_TABLE_BYTES // per_tau - 1))

    means_ticks = np.asarray(mean_hours) * 3600.0 / clock.tick_s
    leave = -np.expm1(-1.0 / means_ticks)  # per-tick probability of leaving a state with that mean
    p_up_up = np.repeat(1.0 - leave, g)  # (G,) flattened (u, d): stay available
    p_down_up = np.tile(leave, g)  # (G,): return from unavailable
    p_next_up = np.stack([p_down_up, p_up_up], axis=1)[:, None, :]  # (G, 1, avail now)

    spot_usd = job.spot_usd_per_hour * clock.tick_hours
    od_usd = job.on_demand_usd_per_hour * clock.tick_hours
    s_idx = np.arange(n_s)
    value = np.zeros((g * g, n_s, 3, 2))  # tau = 0: only done states remain, at zero cost
    # slack index 0 (s = -1, the slack is gone) stays on-demand; the solved states fill the rest in place
    table = np.full((max_tau + 1, g, g, n_s + 1), ALL_ON_DEMAND, np.uint16)
    solved = table.reshape(max_tau + 1, g * g, n_s + 1)[:, :, 1:]
    tick_usd = {IDLE: 0.0, SPOT: spot_usd, ON_DEMAND: od_usd}
    for tau in range(1, clock.deadline_ticks + 1):
        done_next = s_idx >= (tau - 1) * tick_u
        v_next = np.where(done_next[None, :, None, None], 0.0, value)
        if blind:
            out = solved[tau] if tau <= max_tau else None
            value = _blind_step(v_next, p_next_up, tick_usd, tick_u, overhead_u, out)
            continue
        # expected value of holding mode x after this tick, given availability now: (G, S, 2)
        held = {}
        for x in (IDLE, SPOT, ON_DEMAND):
            lost_to = IDLE if x == SPOT else x
            held[x] = (
                p_next_up * v_next[:, :, x, 1][:, :, None] + (1.0 - p_next_up) * v_next[:, :, lost_to, 0][:, :, None]
            )
        q = np.full((4, g * g, n_s, 3, 2), np.inf)  # candidate: 0 spot, 1 idle, 2 on-demand (3 unused)
        idle_val = _shift(held[IDLE], tick_u)
        for m in (IDLE, SPOT, ON_DEMAND):
            q[1, :, :, m, :] = idle_val
            for x, slot, usd in ((SPOT, 0, spot_usd), (ON_DEMAND, 2, od_usd)):
                q[slot, :, :, m, :] = usd + (held[x] if m == x else _shift(held[x], overhead_u))
        q[0, :, :, :, 0] = np.inf  # no spot where there is none
        best = np.argmin(q[:3], axis=0)
        best_val = np.take_along_axis(q[:3], best[None], axis=0)[0]
        codes = np.array([SPOT, IDLE, ON_DEMAND], np.int8)[best]
        codes[~np.isfinite(best_val)] = ON_DEMAND
        value = best_val
        if tau <= max_tau:
            solved[tau] = pack(codes)
    return DeadlinePlan(tuple(mean_hours), table, unit, max_tau)


def slack_unit(clock: WorkClock) -> int:
    """The finest divisor of a tick (in work units) that keeps the slack within ``MAX_SLACK_STATES``
    states; the restart overhead is rounded up to it.

    >>> slack_unit(WorkClock.of(DeadlineJob(48, 70, 0.2, 1.0, 3.0), 600))  # exact: no restart rounded up
    1
    >>> slack_unit(WorkClock.of(DeadlineJob(48, 70, 0.05, 1.0, 3.0), 600))  # a 0.05 h restart costs 240 s
    2
    """
    unit = 1
    while clock.slack_u // unit >= MAX_SLACK_STATES or clock.tick_u % unit:
        unit += 1
        if unit > clock.tick_u:
            return clock.tick_u
    return unit


def _blind_step(
    v_next: npt.NDArray[np.float64],
    p_next_up: npt.NDArray[np.float64],
    usd: dict[np.int8, float],
    tick_u: int,
    overhead_u: int,
    out: npt.NDArray[np.uint16] | None,
) -> npt.NDArray[np.float64]:
    """One step of the blind problem: from ``(slack, mode m of the running tick, its availability a)`` the
    action ``x`` for the next tick, whose availability ``a'`` follows the chain. The next tick holds ``x``,
    or nothing if ``x`` is spot and ``a'`` is not; it costs a tick of slack if it holds nothing, a restart
    if it holds a new instance. Writes the best codes into ``out`` and returns the values."""
    q = np.full((3, *v_next.shape), np.inf)  # candidate: 0 spot, 1 idle, 2 on-demand
    p_up = p_next_up  # (G, 1, 2): P(a' = 1 | a) for a = 0, 1
    for slot, x in ((0, SPOT), (1, IDLE), (2, ON_DEMAND)):
        for m in (IDLE, SPOT, ON_DEMAND):
            terms = []
            for a_next in (0, 1):
                held = IDLE if (x == SPOT and a_next == 0) else x
                by = tick_u if held == IDLE else (0 if held == m else overhead_u)
                terms.append(usd[held] + _shift(v_next[:, :, held, a_next][:, :, None], by))
            q[slot, :, :, m, :] = p_up * terms[1] + (1.0 - p_up) * terms[0]
    q[0, :, :, :, 0] = np.inf  # spot can be asked for only where there is some now
    best = np.argmin(q, axis=0)
    best_val = np.take_along_axis(q, best[None], axis=0)[0]
    if out is not None:
        codes = np.array([SPOT, IDLE, ON_DEMAND], np.int8)[best]
        codes[~np.isfinite(best_val)] = ON_DEMAND
        out[...] = pack(codes)
    return np.asarray(best_val, np.float64)


def _shift(values: npt.NDArray[np.float64], by: int) -> npt.NDArray[np.float64]:
    """``out[:, s] = values[:, s - by]``: the value after losing ``by`` units of slack (inf below 0)."""
    if by == 0:
        return values
    out = np.full_like(values, np.inf)
    if by < values.shape[1]:
        out[:, by:] = values[:, :-by]
    return out


def mean_hours_from_risk(risk: npt.NDArray[np.float32], horizon_s: float) -> npt.NDArray[np.float64]:
    """The mean time to the next loss of spot implied by P(unavailable within ``horizon_s``), assuming a
    constant hazard.

    >>> mean_hours_from_risk(np.array([1 - np.exp(-1)]), 3600.0).round(6).tolist()
    [1.0]
    """
    p = np.clip(risk.astype(np.float64), 1e-6, 1 - 1e-9)
    return horizon_s / 3600.0 / -np.log1p(-p)
