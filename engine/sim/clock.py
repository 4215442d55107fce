"""The simulated clock of the deadline workload: whole ticks, and work counted in integer units.

The Can't-Be-Late rules advance time in whole ticks; every tick on an instance is paid in full, and a
restart overhead is consumed inside the first tick(s) on a new instance. Counting work in an integer unit
that divides both the tick and the overhead keeps every comparison exact (no float drift between the
kernel, the policies and the offline optimum) and lets the dynamic programs index slack directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

# Finer than this and the unit is rounded: 3600 units per tick is 1/6 s at the usual 600 s tick.
MAX_UNITS_PER_TICK = 3600


class JobError(ValueError):
    """A deadline job that cannot be simulated (for instance more work than time before the deadline)."""


@dataclass(frozen=True, slots=True)
class DeadlineJob:
    """A batch job: ``job_hours`` of compute due ``deadline_hours`` after it starts.

    ``delay_ticks``: every choice of instance takes effect that many ticks after it is made, as a launch
    takes time on a real cloud (0: at once, the paper's rules).
    """

    job_hours: float
    deadline_hours: float
    restart_overhead_hours: float
    spot_usd_per_hour: float
    on_demand_usd_per_hour: float
    delay_ticks: int = 0

    def __post_init__(self) -> None:
        for name in ("job_hours", "deadline_hours", "spot_usd_per_hour", "on_demand_usd_per_hour"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise JobError(f"{name} must be a positive number, got {value!r}")
        if not (math.isfinite(self.restart_overhead_hours) and self.restart_overhead_hours >= 0):
            raise JobError(f"restart_overhead_hours must be >= 0, got {self.restart_overhead_hours!r}")
        if isinstance(self.delay_ticks, bool) or not isinstance(self.delay_ticks, int) or self.delay_ticks < 0:
            raise JobError(f"delay_ticks must be a whole number >= 0, got {self.delay_ticks!r}")
        if self.job_hours > self.deadline_hours:
            raise JobError(
                f"impossible job: {self.job_hours} h of work cannot finish within a {self.deadline_hours} h "
                "deadline (job hours must not exceed deadline hours)"
            )


@dataclass(frozen=True, slots=True)
class WorkClock:
    """A job on a tick grid, in integer work units.

    ``tick_u`` units of work fit in one tick; ``overhead_u`` are lost on every new instance; the job
    needs ``job_u``; it must be done after ``deadline_ticks`` whole ticks; a choice takes effect
    ``delay_ticks`` after it is made.
    """

    tick_s: float
    unit_s: float
    tick_u: int
    overhead_u: int
    job_u: int
    deadline_ticks: int
    delay_ticks: int = 0

    @classmethod
    def of(cls, job: DeadlineJob, tick_s: float, max_units_per_tick: int = MAX_UNITS_PER_TICK) -> WorkClock:
        """Choose the coarsest unit that keeps tick, overhead and job exact (else 1/max of a tick,
        rounding overhead and job up, the conservative side).

        >>> job = DeadlineJob(48, 52, 0.1, 0.9731, 3.06)
        >>> c = WorkClock.of(job, 600)
        >>> (c.unit_s, c.tick_u, c.overhead_u, c.job_u, c.deadline_ticks, c.slack_u)
        (120.0, 5, 3, 1440, 312, 120)
        """
        if not (math.isfinite(tick_s) and tick_s > 0):
            raise JobError(f"tick length must be positive, got {tick_s!r}")
        tick = Fraction(tick_s).limit_denominator(1000)
        parts = [
            Fraction(job.restart_overhead_hours * 3600).limit_denominator(1000) / tick,
            Fraction(job.job_hours * 3600).limit_denominator(1000) / tick,
        ]
        per_tick = math.lcm(1, *(p.denominator for p in parts))
        if per_tick > max_units_per_tick:
            per_tick = max_units_per_tick
        unit_s = tick_s / per_tick
        overhead_u = math.ceil(job.restart_overhead_hours * 3600 / unit_s - 1e-9)
        job_u = math.ceil(job.job_hours * 3600 / unit_s - 1e-9)
        deadline_ticks = math.floor(job.deadline_hours * 3600 / tick_s + 1e-9)
        clock = cls(float(tick_s), unit_s, per_tick, overhead_u, job_u, deadline_ticks, job.delay_ticks)
        if clock.slack_u - job.delay_ticks * per_tick < 0:
            raise JobError(
                f"impossible job: {job.job_hours} h of work does not fit in the {deadline_ticks} whole "
                f"{tick_s:g} s ticks before the {job.deadline_hours} h deadline"
                + (f" once the first {job.delay_ticks} tick(s) of launch delay are spent" if job.delay_ticks else "")
            )
        return clock

    @property
    def slack_u(self) -> int:
        """Units of time the job may lose (idle ticks, restarts) and still make its deadline."""
        return self.deadline_ticks * self.tick_u - self.job_u

    @property
    def horizon_ticks(self) -> int:
        """Ticks the kernel simulates: the deadline plus enough to finish a late job on on-demand."""
        return self.deadline_ticks + self.ticks_for(self.job_u + self.overhead_u) + 1 + self.delay_ticks

    def ticks_for(self, work_u: int) -> int:
        """Whole ticks that ``work_u`` units take.

        >>> WorkClock(600.0, 120.0, 5, 3, 1440, 312).ticks_for(11)
        3
        """
        return -(-work_u // self.tick_u)

    @property
    def tick_hours(self) -> float:
        return self.tick_s / 3600.0
