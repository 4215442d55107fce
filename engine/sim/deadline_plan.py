"""Decision tables for the risk-aware deadline policy: the best action under a learned spot model.

Spot availability is modelled as a Markov chain of three states: unavailable, available for the first
ticks of a spell ("fresh": as many as a restart takes, :func:`young_ticks`), and available for longer
("established"). A fresh spell ends at each tick with its own probability, because a spell that has just
begun is much more likely to end soon than one that has lasted (a restart onto a spell that vanishes
before the restart is over buys nothing). The policy learns the
mean unavailable and established spell lengths and the fresh spell's hazard online, per run. For every
point of a grid over those three, a backward dynamic program computes the action that minimises the
*expected* cost to finish, with state ``(ticks to deadline, slack left, mode, availability state now)``.
A state from which some availability sequence makes the deadline unreachable has infinite expected cost
(every sequence has positive probability under the chain), so the tables never take a risk with the
deadline: the policy cannot miss one by construction, whatever the trace.

Slack left, ``s = ticks_left * tick_u - work_left_u - pending_overhead_u``, is what the job can still
lose to idling and restarts; a restart is charged in full when it starts (conservative when the restart
overhead spans more than one tick).

With a launch delay of one tick (``clock.delay_ticks == 1``) the tables are those of the *blind* problem:
the action is chosen knowing the mode and availability of the tick being run, and takes effect at the next
tick, whose availability is not known yet; spot asked for that is gone by then is an idle tick. The state
is then read one tick ahead (:meth:`DeadlinePlan.lookup` is given the projected slack and the mode of the
running tick), and the same argument makes a miss impossible.

Nothing here is fitted to any trace: the grids span minutes to months and the whole range of hazards
that matter, and the costs are the job's.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from engine.sim.clock import DeadlineJob, JobError, WorkClock
from engine.sim.deadline import IDLE, ON_DEMAND, SPOT

# Mean spell lengths (hours) the tables are solved for; log-spaced from a few minutes to months.
UP_MEAN_HOURS: tuple[float, ...] = tuple(float(x) for x in np.geomspace(0.05, 2000.0, 14))
DOWN_MEAN_HOURS: tuple[float, ...] = tuple(float(x) for x in np.geomspace(0.05, 2000.0, 12))
# P(a fresh spell ends at its next tick): from rarely to most of the time (never 0: every sequence that can
# happen must keep a positive probability, or the tables could bet the deadline on it).
FRESH_HAZARDS: tuple[float, ...] = (0.02, 0.2, 0.4, 0.6)
MAX_TABLE_BYTES = 400 * 2**20
# Fine enough that a 0.2 h restart is not rounded up to a whole 10-minute tick on a 22 h slack.
MAX_SLACK_STATES = 1024
MAX_RESTART_ROUNDING = 0.1  # a coarser slack unit may price a restart at most this share above its cost
UNAVAILABLE, FRESH, ESTABLISHED = 0, 1, 2  # availability states
# The nine actions of one state (mode x availability state) are packed as base-3 digits, 3 * mode + state.
DIGIT = np.array([3**k for k in range(9)], np.uint16).reshape(3, 3)
ALL_ON_DEMAND = np.uint16(int(ON_DEMAND) * int(DIGIT.sum()))


def pack(codes: npt.NDArray[np.int8]) -> npt.NDArray[np.uint16]:
    """``(..., 3 modes, 3 availability states)`` action codes -> one base-3 number per state.

    >>> codes = np.zeros((1, 3, 3), np.int8); codes[0, 2, 1] = 1
    >>> int(pack(codes)[0]), unpack(pack(codes), np.array([2]), np.array([1])).tolist()
    (2187, [1])
    """
    return np.asarray((codes.astype(np.uint16) * DIGIT).sum(axis=(-2, -1)), np.uint16)


def unpack(
    packed: npt.NDArray[np.uint16], mode: npt.NDArray[np.int8], avail_state: npt.NDArray[np.integer]
) -> npt.NDArray[np.int8]:
    """The action code for each ``(mode, availability state)`` from its packed state."""
    return np.asarray(packed // DIGIT[mode.astype(np.intp), avail_state.astype(np.intp)] % 3, np.int8)


def nearest_log(grid: tuple[float, ...], values: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    """Nearest grid point in log space.

    >>> nearest_log((1.0, 10.0, 100.0), np.array([0.5, 2.0, 4.0, 40.0, 1e6])).tolist()
    [0, 0, 1, 2, 2]
    """
    logs = np.log(np.asarray(grid))
    return np.searchsorted((logs[1:] + logs[:-1]) / 2, np.log(np.maximum(values, 1e-12))).astype(np.intp)


def nearest(grid: tuple[float, ...], values: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    """Nearest grid point.

    >>> nearest((0.0, 0.2, 0.4), np.array([0.05, 0.11, 0.9])).tolist()
    [0, 1, 2]
    """
    points = np.asarray(grid)
    return np.searchsorted((points[1:] + points[:-1]) / 2, values).astype(np.intp)


@dataclass(frozen=True, slots=True, eq=False)
class DeadlinePlan:
    """``packed[tau, u, d, f, s + 1]``: the modes to take with ``tau`` ticks left, for established up-time
    ``up_hours[u]``, down-time ``down_hours[d]``, fresh hazard ``fresh_hazards[f]`` and slack ``s`` (in
    units of ``slack_unit_u``), one per (mode held, availability state) packed in one number (:func:`pack`).

    Tick-major, so the table of one tick is one contiguous block that stays in cache while every run of a
    batch reads it. Slack index 0 (``s = -1``) is "the slack is gone": on-demand, whatever the rest.
    """

    up_hours: tuple[float, ...]
    down_hours: tuple[float, ...]
    fresh_hazards: tuple[float, ...]
    packed: npt.NDArray[np.uint16]
    slack_unit_u: int
    max_tau: int

    @property
    def n_slack(self) -> int:
        """Slack states ``0 .. n_slack - 1`` (the table holds one more, for lost slack)."""
        return int(self.packed.shape[4]) - 1

    def model_index(
        self, up_hours: npt.NDArray[np.float64], down_hours: npt.NDArray[np.float64], fresh: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
        """The grid point of each run's learned model."""
        return (
            nearest_log(self.up_hours, up_hours),
            nearest_log(self.down_hours, down_hours),
            nearest(self.fresh_hazards, fresh),
        )

    def lookup(
        self,
        model: tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.intp]],
        tau: npt.NDArray[np.int64],
        slack_u: npt.NDArray[np.int64],
        mode: npt.NDArray[np.int8],
        avail_state: npt.NDArray[np.integer],
    ) -> npt.NDArray[np.int8]:
        """The planned mode per run; on-demand where the slack is gone or the deadline has passed.

        The readable form of what :class:`engine.sim.risk_deadline` does with flat integer indices.
        """
        s = slack_u // self.slack_unit_u  # floor: never credit slack the job does not have
        u, d, f = model
        packed = self.packed[np.clip(tau, 0, self.max_tau), u, d, f, np.clip(s, -1, self.n_slack - 1) + 1]
        return np.where(tau <= 0, ON_DEMAND, unpack(packed, mode, avail_state)).astype(np.int8)


def young_ticks(clock: WorkClock) -> int:
    """How many ticks a spell stays fresh: as many as a restart takes to finish (at least one). A restart
    onto spot pays off only if the spell outlives it, so the hazard that matters is the one over the ticks
    the restart runs in, not only the first.

    >>> young_ticks(WorkClock.of(DeadlineJob(48, 70, 0.1, 1.0, 3.0), 600)), young_ticks(
    ...     WorkClock.of(DeadlineJob(48, 70, 0.2, 1.0, 3.0), 600))
    (1, 2)
    """
    return max(1, -(-clock.overhead_u // clock.tick_u))


def transitions(
    up_hours: tuple[float, ...],
    down_hours: tuple[float, ...],
    fresh: tuple[float, ...],
    tick_s: float,
    young: int = 1,
) -> npt.NDArray[np.float64]:
    """``(G, 3, 3)``: P(next availability state | state now) for every grid point, flattened (u, d, f).

    A fresh spell ends at each of its ``young`` ticks with the fresh hazard and, if it goes on, becomes
    established after ``young`` ticks on average (one in ``young`` per tick: the chain keeps no age).

    >>> p = transitions((1.0,), (0.5,), (0.3,), 600.0)
    >>> p.shape, p.sum(axis=2).round(12).tolist(), float(p[0, FRESH, UNAVAILABLE])
    ((1, 3, 3), [[1.0, 1.0, 1.0]], 0.3)
    >>> transitions((1.0,), (0.5,), (0.3,), 600.0, young=2)[0, FRESH].round(3).tolist()
    [0.3, 0.35, 0.35]
    """
    leave_up = -np.expm1(-tick_s / 3600.0 / np.asarray(up_hours))  # per-tick chance a spell with that mean ends
    leave_down = -np.expm1(-tick_s / 3600.0 / np.asarray(down_hours))
    u, d, f = np.meshgrid(leave_up, leave_down, np.asarray(fresh), indexing="ij")
    u, d, f = u.ravel(), d.ravel(), f.ravel()
    p = np.zeros((u.size, 3, 3))
    p[:, UNAVAILABLE, UNAVAILABLE], p[:, UNAVAILABLE, FRESH] = 1.0 - d, d
    p[:, FRESH, UNAVAILABLE], p[:, FRESH, ESTABLISHED] = f, (1.0 - f) / young
    p[:, FRESH, FRESH] = (1.0 - f) * (1.0 - 1.0 / young)
    p[:, ESTABLISHED, UNAVAILABLE], p[:, ESTABLISHED, ESTABLISHED] = u, 1.0 - u
    return p


@lru_cache(maxsize=8)
def solve_plan(
    job: DeadlineJob,
    clock: WorkClock,
    up_hours: tuple[float, ...] = UP_MEAN_HOURS,
    down_hours: tuple[float, ...] = DOWN_MEAN_HOURS,
    fresh_hazards: tuple[float, ...] = FRESH_HAZARDS,
) -> DeadlinePlan:
    """Solve the tables for one job on one clock (cached: every shard of a run reuses them)."""
    if clock.delay_ticks > 1:
        raise JobError(f"the risk-aware plan models a launch delay of at most 1 tick, got {clock.delay_ticks}")
    shape = (len(up_hours), len(down_hours), len(fresh_hazards))
    g = int(np.prod(shape))
    unit = slack_unit(clock, g)
    tick_u = clock.tick_u // unit
    overhead_u = -(-clock.overhead_u // unit)  # round the restart cost up: conservative
    n_s = clock.slack_u // unit + 1
    max_tau = max(1, min(clock.deadline_ticks, MAX_TABLE_BYTES // (g * (n_s + 1) * 2) - 1))
    p = transitions(up_hours, down_hours, fresh_hazards, clock.tick_s, young_ticks(clock))
    step = _blind_step if clock.delay_ticks == 1 else _step
    hours = clock.tick_hours
    tick_usd = {IDLE: 0.0, SPOT: job.spot_usd_per_hour * hours, ON_DEMAND: job.on_demand_usd_per_hour * hours}
    s_idx = np.arange(n_s)
    value = np.zeros((g, n_s, 3, 3))  # tau = 0: only done states remain, at zero cost
    # slack index 0 (s = -1, the slack is gone) stays on-demand; the solved states fill the rest in place
    table = np.full((max_tau + 1, *shape, n_s + 1), ALL_ON_DEMAND, np.uint16)
    solved = table.reshape(max_tau + 1, g, n_s + 1)[:, :, 1:]
    for tau in range(1, clock.deadline_ticks + 1):
        done_next = s_idx >= (tau - 1) * tick_u
        v_next = np.where(done_next[None, :, None, None], 0.0, value)
        value = step(v_next, p, tick_usd, tick_u, overhead_u, solved[tau] if tau <= max_tau else None)
    return DeadlinePlan(up_hours, down_hours, fresh_hazards, table, unit, max_tau)


def _next(held: np.int8, a_next: int) -> np.int8:
    """The mode held at the next tick when ``held`` is asked for and the availability state is ``a_next``."""
    return IDLE if (held == SPOT and a_next == UNAVAILABLE) else held


def _restart_u(mode: np.int8, held: np.int8, tick_u: int, overhead_u: int) -> int:
    """Slack a tick costs: a whole tick held idle, a restart on a new instance, nothing on the same one."""
    return tick_u if held == IDLE else (0 if held == mode else overhead_u)


def _weighted(p: npt.NDArray[np.float64], values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``p * values`` where a transition the chain cannot make (``p == 0``) adds nothing, even from an
    infinite value."""
    return np.where(p > 0, p * np.where(np.isfinite(values), values, 0.0), 0.0) + np.where(
        (p > 0) & ~np.isfinite(values), np.inf, 0.0
    )


def _best(q: npt.NDArray[np.float64], out: npt.NDArray[np.uint16] | None) -> npt.NDArray[np.float64]:
    """Pick the cheapest candidate (0 spot, 1 idle, 2 on-demand); write the packed codes into ``out``."""
    q[0, :, :, :, UNAVAILABLE] = np.inf  # spot can be asked for only where there is some now
    best = np.argmin(q, axis=0)
    best_val = np.take_along_axis(q, best[None], axis=0)[0]
    if out is not None:
        codes = np.array([SPOT, IDLE, ON_DEMAND], np.int8)[best]
        codes[~np.isfinite(best_val)] = ON_DEMAND
        out[...] = pack(codes)
    return np.asarray(best_val, np.float64)


def _step(
    v_next: npt.NDArray[np.float64],
    p: npt.NDArray[np.float64],
    tick_usd: dict[np.int8, float],
    tick_u: int,
    overhead_u: int,
    out: npt.NDArray[np.uint16] | None,
) -> npt.NDArray[np.float64]:
    """One step with the availability of the tick known: the action runs this tick, then the chain moves."""
    q = np.full((3, *v_next.shape), np.inf)
    for slot, x in ((0, SPOT), (1, IDLE), (2, ON_DEMAND)):
        # expected value after this tick holding x, per availability state now: (G, S, 3)
        after = np.sum([_weighted(p[:, None, :, a], v_next[:, :, _next(x, a), a, None]) for a in range(3)], axis=0)
        for m in (IDLE, SPOT, ON_DEMAND):
            q[slot, :, :, m, :] = tick_usd[x] + _shift(after, _restart_u(m, x, tick_u, overhead_u))
    return _best(q, out)


def _blind_step(
    v_next: npt.NDArray[np.float64],
    p: npt.NDArray[np.float64],
    tick_usd: dict[np.int8, float],
    tick_u: int,
    overhead_u: int,
    out: npt.NDArray[np.uint16] | None,
) -> npt.NDArray[np.float64]:
    """One step of the blind problem: from ``(slack, mode m of the running tick, its availability state a)``
    the action ``x`` for the next tick, whose state ``a'`` follows the chain. The next tick holds ``x``, or
    nothing if ``x`` is spot and spot is gone; it costs a tick of slack if it holds nothing, a restart if
    it holds a new instance."""
    q = np.full((3, *v_next.shape), np.inf)
    for slot, x in ((0, SPOT), (1, IDLE), (2, ON_DEMAND)):
        for m in (IDLE, SPOT, ON_DEMAND):
            terms = []
            for a in range(3):
                held = _next(x, a)
                after = _shift(v_next[:, :, held, a, None], _restart_u(m, held, tick_u, overhead_u))
                terms.append(_weighted(p[:, None, :, a], tick_usd[held] + after))
            q[slot, :, :, m, :] = np.sum(terms, axis=0)
    return _best(q, out)


def slack_unit(clock: WorkClock, n_models: int = 672) -> int:
    """The divisor of a tick (in work units) the slack is counted in: the finest that keeps the slack
    within ``MAX_SLACK_STATES`` states and the tables of every tick to the deadline within
    ``MAX_TABLE_BYTES`` (a table for every tick first, then slack resolution), then the coarsest that
    still prices a restart within ``MAX_RESTART_ROUNDING`` of its cost (the overhead is rounded up to the
    unit). Solving takes time in proportion to the slack states, and a finer unit buys nothing once a
    restart is priced that closely: a 9 h deadline on 195 s ticks solves in seconds, not a minute.

    >>> slack_unit(WorkClock.of(DeadlineJob(48, 70, 0.2, 1.0, 3.0), 600))  # exact: no restart rounded up
    1
    >>> slack_unit(WorkClock.of(DeadlineJob(48, 70, 0.05, 1.0, 3.0), 600))  # a 0.05 h restart costs 240 s
    2
    >>> slack_unit(WorkClock.of(DeadlineJob(48, 52, 0.1, 1.0, 3.0), 195))  # 960 ticks: whole ticks of slack
    13
    >>> slack_unit(WorkClock.of(DeadlineJob(6, 9, 0.2, 1.0, 3.0), 195))  # a 0.2 h restart priced as 780 s
    13
    """
    per_tick_states = MAX_TABLE_BYTES // ((clock.deadline_ticks + 1) * n_models * 2)
    most = min(MAX_SLACK_STATES, per_tick_states)
    unit = 1
    while clock.slack_u // unit + 2 > most or clock.tick_u % unit:
        unit += 1
        if unit > clock.tick_u:
            return clock.tick_u
    coarser = [u for u in range(unit + 1, clock.tick_u + 1) if clock.tick_u % u == 0
               and -(-clock.overhead_u // u) * u <= clock.overhead_u * (1 + MAX_RESTART_ROUNDING)]
    return coarser[-1] if coarser else unit



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
