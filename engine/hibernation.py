"""Hibernation: which instances a schedule stops or wakes at a tick, and the decisions that say why.

Every instance follows the schedule that governs it (``engine.schedule.governing``, by its tags; none:
it always runs). At a tick a running instance outside its window is *hibernated* (stopped; a spot
instance cannot stop, so it is let go and relaunched later), a stopped one whose window is open is
*woken* through the normal placement path (the policy picks its pool and lifecycle, as for an instance
that has no home), and a stopped one still outside stays so. The rest are for the policy. Pure: the
schedules, the tags and ``now_s`` come in.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from engine.schedule import Schedule, governing
from engine.types import Action, Decision, Instance, Lifecycle, Rule


@dataclass(frozen=True, slots=True)
class SchedulePlan:
    """The instances of one tick, sorted by what their schedule says now."""

    hibernate: tuple[tuple[Instance, Schedule], ...] = ()  # running, outside their window
    asleep: tuple[tuple[Instance, Schedule], ...] = ()  # stopped, still outside their window
    wake: tuple[tuple[Instance, Schedule | None], ...] = ()  # stopped; the window opened (or no schedule now)
    running: tuple[Instance, ...] = ()  # running inside their window, or governed by none: the policy's

    @property
    def for_policy(self) -> tuple[Instance, ...]:
        """The instances the policy places this tick: those running on, and those waking."""
        return self.running + tuple(instance for instance, _ in self.wake)


@dataclass(slots=True)
class Hibernation:
    """An account's schedules and the tags they select instances by (a cloud's discovery sets them;
    every instance also carries its ``fleet`` as a tag)."""

    schedules: tuple[Schedule, ...] = ()
    tags: dict[str, Mapping[str, str]] = field(default_factory=dict)  # instance id -> its tags
    # Instances no schedule may stop: a group that keeps its size (an Auto Scaling group) would replace a
    # stopped member at once, so hibernating one would fail at every tick; the group's capacity is what to
    # schedule instead. The cloud's discovery says which.
    exempt: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, texts: Iterable[str]) -> Hibernation:
        """Parse schedule texts; a ValueError names the bad one (``schedules.1: ...``)."""
        parsed = []
        for i, text in enumerate(texts):
            try:
                parsed.append(Schedule.parse(text))
            except ValueError as exc:
                raise ValueError(f"schedules.{i}: {exc}") from None
        return cls(tuple(parsed))

    def set_schedules(self, texts: Iterable[str]) -> None:
        """Replace the schedules (all parsed first: a bad one changes nothing)."""
        self.schedules = Hibernation.of(texts).schedules

    def set_tags(self, tags: Mapping[str, Mapping[str, str]]) -> None:
        """The tags of the instances a cloud reported (instances not named keep theirs)."""
        self.tags.update({iid: dict(t) for iid, t in tags.items()})

    def set_exempt(self, reported: Iterable[str], exempt: Iterable[str]) -> None:
        """Of the ``reported`` instances, exactly those in ``exempt`` are governed by no schedule."""
        self.exempt.difference_update(reported)
        self.exempt.update(exempt)

    def forget(self, instance_ids: Iterable[str]) -> None:
        for iid in instance_ids:
            self.tags.pop(iid, None)
            self.exempt.discard(iid)

    def schedule_for(self, instance: Instance) -> Schedule | None:
        if not self.schedules or instance.instance_id in self.exempt:
            return None
        return governing(self.schedules, {"fleet": instance.fleet, **self.tags.get(instance.instance_id, {})})

    def plan(self, instances: Sequence[Instance], now_s: float) -> SchedulePlan:
        """Sort the instances by what their schedule says at ``now_s``."""
        if not self.schedules and not any(i.lifecycle is Lifecycle.STOPPED for i in instances):
            return SchedulePlan(running=tuple(instances))
        open_now: dict[int, bool] = {}  # per schedule, asked once a tick
        hibernate, asleep, wake, running = [], [], [], []
        for instance in instances:
            schedule = self.schedule_for(instance)
            if schedule is not None and id(schedule) not in open_now:  # not setdefault: it would ask every time
                open_now[id(schedule)] = schedule.is_open(now_s)
            is_open = schedule is None or open_now[id(schedule)]
            stopped = instance.lifecycle is Lifecycle.STOPPED
            if stopped and is_open:
                wake.append((instance, schedule))
            elif stopped:
                assert schedule is not None
                asleep.append((instance, schedule))
            elif not is_open:
                assert schedule is not None
                hibernate.append((instance, schedule))
            else:
                running.append(instance)
        return SchedulePlan(tuple(hibernate), tuple(asleep), tuple(wake), tuple(running))


def local_time(schedule: Schedule, at_s: float) -> str:
    """``at_s`` on the schedule's wall clock: ``Mon 2026-03-30 08:00 Europe/Berlin``.

    >>> local_time(Schedule.parse("Mon-Fri 08:00-19:00 Europe/Berlin"), 1_774_850_400.0)
    'Mon 2026-03-30 08:00 Europe/Berlin'
    """
    return dt.datetime.fromtimestamp(at_s, zoneinfo.ZoneInfo(schedule.zone)).strftime("%a %Y-%m-%d %H:%M ") \
        + schedule.zone


def _reopens(schedule: Schedule, now_s: float) -> tuple[str, dict[str, float]]:
    opens_s = schedule.next_change_s(now_s)
    if opens_s is None:
        return "", {}
    return f"; wakes {local_time(schedule, opens_s)}", {"wakes_at_s": opens_s}


def hibernate_decision(instance: Instance, schedule: Schedule, cost_usd_per_hour: float, now_s: float,
                       policy: str = "") -> Decision:
    """Stop a running instance outside its window: it saves what it costs now.

    >>> from engine.types import Pool
    >>> d = hibernate_decision(Instance("i-1", Pool("m5.large", "us-east-1a"), Lifecycle.ON_DEMAND),
    ...                        Schedule.parse("Mon-Fri 08:00-19:00 Europe/Berlin"), 0.096, 1_774_893_600.0)
    >>> d.action.value, d.to_lifecycle.value
    ('hibernate', 'stopped')
    >>> d.reason
    'outside Mon-Fri 08:00-19:00 Europe/Berlin: stop; saves $0.0960/h; wakes Tue 2026-03-31 08:00 Europe/Berlin'
    """
    reopens, numbers = _reopens(schedule, now_s)
    how = "stop" if instance.lifecycle is Lifecycle.ON_DEMAND else \
        "let the spot instance go (it cannot stop) and relaunch it when the window opens"
    return Decision(
        instance_id=instance.instance_id, action=Action.HIBERNATE, rule=Rule.SCHEDULE,
        reason=f"outside {schedule.describe()}: {how}; saves ${cost_usd_per_hour:.4f}/h{reopens}",
        decided_at_s=now_s, from_pool=instance.pool, from_lifecycle=instance.lifecycle,
        to_pool=instance.pool, to_lifecycle=Lifecycle.STOPPED, saving_usd_per_hour=cost_usd_per_hour,
        numbers={"cost_usd_per_hour": cost_usd_per_hour, "saving_usd_per_hour": cost_usd_per_hour, **numbers},
        policy=policy,
    )


def asleep_decision(instance: Instance, schedule: Schedule, now_s: float, policy: str = "") -> Decision:
    """A stopped instance outside its window stays stopped (a KEEP: nothing to carry out)."""
    reopens, numbers = _reopens(schedule, now_s)
    return Decision(
        instance_id=instance.instance_id, action=Action.KEEP, rule=Rule.SCHEDULE,
        reason=f"outside {schedule.describe()}: stays stopped{reopens}",
        decided_at_s=now_s, from_pool=instance.pool, from_lifecycle=Lifecycle.STOPPED,
        to_pool=instance.pool, to_lifecycle=Lifecycle.STOPPED, numbers=numbers, policy=policy,
    )


def wake_decision(placed: Decision, schedule: Schedule | None) -> Decision:
    """The policy's placement of a waking instance, as a WAKE that says which window opened."""
    target = next((c for c in placed.candidates
                   if (c.pool, c.lifecycle) == (placed.to_pool, placed.to_lifecycle)), None)
    if placed.to_lifecycle is Lifecycle.ON_DEMAND:
        where = f"on-demand {placed.to_pool.instance_type} in {placed.to_pool.availability_zone}"
    else:
        where = f"spot {placed.to_pool.key}"
    if target is not None:
        where += f" (${target.price_usd_per_hour:.4f}/h"
        where += f", risk {target.risk:.0%}/h)" if target.lifecycle is Lifecycle.SPOT else ")"
    why = f"inside {schedule.describe()}" if schedule is not None else "no schedule governs it now"
    if placed.action is Action.KEEP and placed.rule is Rule.NO_CAPACITY:
        return replace(placed, from_lifecycle=Lifecycle.STOPPED, to_lifecycle=Lifecycle.STOPPED,
                       reason=f"{why}: cannot wake, no compatible placement is available")
    return replace(placed, action=Action.WAKE, rule=Rule.SCHEDULE, from_lifecycle=Lifecycle.STOPPED,
                   reason=f"{why}: start {where}", saving_usd_per_hour=0.0)
