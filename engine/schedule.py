"""Hibernation schedules: the weekly windows, in a named time zone, during which instances run.

A schedule is written the way people say it::

    [key=value] DAYS HH:MM-HH:MM[; DAYS HH:MM-HH:MM ...] TIME/ZONE [except DATE[,DATE|DATE..DATE ...]]

``Mon-Fri 08:00-19:00 Europe/Berlin``, ``env=dev Mon,Wed 09:00-12:00; Sat 10:00-14:00 UTC except
2026-12-25``. Days are ranges (``Fri-Mon`` wraps) and lists; a window whose end is not after its start
runs overnight into the next day; ``24:00`` ends a day. A window belongs to the day it starts on, and an
excepted date opens none of its windows (a holiday). The optional ``key=value`` selects the instances it
governs by tag. Windows are wall-clock times in the zone, so a daylight-saving change moves them in UTC
(``zoneinfo``): 08:00 Berlin is 07:00 UTC in winter and 06:00 UTC in summer. Time is an argument.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MINUTES_PER_DAY = 1440
_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
_SELECTOR = re.compile(r"^([A-Za-z0-9_.:/+\-@]+)=([^\s=]*)$")
_EXCEPT = re.compile(r"\s+except(?:\s+|$)", re.IGNORECASE)
_SCAN_DAYS = (8, 800)  # a week covers every weekly window; the long scan only sees past a run of exceptions


def _day(name: str, where: str) -> int:
    low = name.lower()
    for i, full in enumerate(_FULL_DAY_NAMES):
        if low in (full, full[:3]):
            return i
    raise ValueError(f"{where}: unknown day {name!r} (use {' '.join(DAY_NAMES)})")


def _days(text: str, where: str) -> tuple[frozenset[int], str]:
    """``Mon-Fri``, ``Mon,Wed,Fri``, ``Fri-Mon`` (wraps over the weekend) -> weekday numbers and the
    canonical spelling."""
    days: set[int] = set()
    shown = []
    for part in text.split(","):
        first, sep, last = part.partition("-")
        if not first or (sep and not last):
            raise ValueError(f"{where}: days {text!r}: expected a day, a list (Mon,Wed) or a range (Mon-Fri)")
        a = _day(first, where)
        b = _day(last, where) if sep else a
        days.update((a + k) % 7 for k in range((b - a) % 7 + 1))
        shown.append(DAY_NAMES[a] if a == b else f"{DAY_NAMES[a]}-{DAY_NAMES[b]}")
    return frozenset(days), ",".join(shown)


def _minute(text: str, where: str) -> int:
    match = _TIME.match(text)
    if match is None:
        raise ValueError(f"{where}: time {text!r} is not HH:MM")
    hours, minutes = int(match[1]), int(match[2])
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        raise ValueError(f"{where}: time {text!r} is not a time of day (00:00 to 24:00)")
    return hours * 60 + minutes


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


@dataclass(frozen=True, slots=True)
class Window:
    """Open from ``start_min`` to ``end_min`` (minutes after local midnight) on each of ``days``
    (0 = Monday); an end not after the start is on the next day."""

    days: frozenset[int]
    start_min: int
    end_min: int
    text: str

    @classmethod
    def parse(cls, days_text: str, times_text: str, where: str) -> Window:
        days, days_shown = _days(days_text, where)
        start_text, sep, end_text = times_text.partition("-")
        if not sep:
            raise ValueError(f"{where}: hours {times_text!r} are not HH:MM-HH:MM")
        start, end = _minute(start_text, where), _minute(end_text, where)
        if start == MINUTES_PER_DAY:
            raise ValueError(f"{where}: a window cannot start at 24:00")
        if start == end:
            raise ValueError(f"{where}: hours {times_text!r} open and close at the same time")
        return cls(days, start, end, f"{days_shown} {_clock(start)}-{_clock(end)}")

    @property
    def length_min(self) -> int:
        return self.end_min - self.start_min if self.end_min > self.start_min \
            else self.end_min + MINUTES_PER_DAY - self.start_min


def _date(text: str, where: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not a date (YYYY-MM-DD)") from None


def _exceptions(text: str) -> tuple[frozenset[dt.date], str]:
    dates: set[dt.date] = set()
    shown = []
    for part in text.replace(" ", "").split(","):
        where = f"exception {part!r}"
        if not part:
            raise ValueError("exceptions: expected dates after 'except' (2026-12-25 or 2026-12-24..2026-12-31)")
        first, sep, last = part.partition("..")
        a = _date(first, where)
        b = _date(last, where) if sep else a
        if b < a:
            raise ValueError(f"{where}: the range ends before it starts")
        if (b - a).days > 366:
            raise ValueError(f"{where}: a range of exceptions is at most a year")
        dates.update(a + dt.timedelta(days=k) for k in range((b - a).days + 1))
        shown.append(a.isoformat() if a == b else f"{a.isoformat()}..{b.isoformat()}")
    return frozenset(dates), ",".join(shown)


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"time zone {name!r} is unknown (an IANA name such as Europe/Berlin or UTC)") from None


@dataclass(frozen=True, slots=True)
class Schedule:
    """The parsed schedule. ``str()`` gives its canonical text, which parses back to an equal schedule."""

    windows: tuple[Window, ...]
    zone: str
    closed_dates: frozenset[dt.date] = frozenset()
    selector: tuple[str, str] | None = None
    exceptions_text: str = ""

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """Parse and validate; a ValueError names the bad part.

        >>> str(Schedule.parse("mon-fri 8:00-19:00  Europe/Berlin"))
        'Mon-Fri 08:00-19:00 Europe/Berlin'
        >>> Schedule.parse("Mon-Fry 08:00-19:00 UTC")
        Traceback (most recent call last):
        ...
        ValueError: window 1: unknown day 'Fry' (use Mon Tue Wed Thu Fri Sat Sun)
        """
        if not isinstance(text, str) or not text.strip():
            raise ValueError("a schedule is text such as 'Mon-Fri 08:00-19:00 Europe/Berlin'")
        head, *tail = _EXCEPT.split(text.strip(), maxsplit=1)
        closed, exceptions_text = _exceptions(tail[0]) if tail else (frozenset(), "")
        tokens = head.replace(";", " ").split()
        selector = None
        if tokens and "=" in tokens[0]:
            match = _SELECTOR.match(tokens[0])
            if match is None or not match[2]:
                raise ValueError(f"selector {tokens[0]!r}: expected tag=value, such as env=dev")
            selector = (match[1], match[2])
            tokens = tokens[1:]
        if len(tokens) < 3:
            raise ValueError(f"schedule {text!r}: expected days, hours and a time zone, "
                             "such as 'Mon-Fri 08:00-19:00 Europe/Berlin'")
        zone_name, body = tokens[-1], tokens[:-1]
        if _TIME.match(zone_name.partition("-")[0]):
            raise ValueError(f"schedule {text!r}: the time zone is missing at the end (such as UTC)")
        _zone(zone_name)
        if len(body) % 2:
            raise ValueError(f"schedule {text!r}: each window is days then hours, such as 'Mon-Fri 08:00-19:00'")
        windows = tuple(Window.parse(body[k], body[k + 1], f"window {k // 2 + 1}") for k in range(0, len(body), 2))
        return cls(windows, zone_name, closed, selector, exceptions_text)

    def __str__(self) -> str:
        parts = [f"{self.selector[0]}={self.selector[1]}"] if self.selector else []
        parts.append(self.describe())
        if self.exceptions_text:
            parts.append(f"except {self.exceptions_text}")
        return " ".join(parts)

    def describe(self) -> str:
        """The windows and the zone, as a decision's explanation quotes them: ``Mon-Fri 08:00-19:00 UTC``."""
        return "; ".join(w.text for w in self.windows) + f" {self.zone}"

    def matches(self, tags: Mapping[str, str]) -> bool:
        """Whether the schedule governs an instance with these tags (no selector: every instance)."""
        return self.selector is None or tags.get(self.selector[0]) == self.selector[1]

    # -- time ------------------------------------------------------------------------------------------
    def _tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.zone)  # cached by zoneinfo; not a field, so pickles stay small

    def local_date(self, now_s: float) -> dt.date:
        """The date on the schedule's wall clock at ``now_s``."""
        return dt.datetime.fromtimestamp(now_s, self._tz()).date()

    def _epoch(self, day: dt.date, minute: int) -> float:
        """Local wall time ``minute`` after midnight of ``day`` as epoch seconds. A time skipped by a
        spring-forward change counts with the offset before it (zoneinfo's fold=0), so 02:30 on that
        day is 03:30 summer time: the window opens as soon as the clock allows."""
        day = day + dt.timedelta(days=minute // MINUTES_PER_DAY)
        minute %= MINUTES_PER_DAY
        return dt.datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=self._tz()).timestamp()

    def intervals(self, first: dt.date, last: dt.date) -> list[tuple[float, float]]:
        """The open intervals (epoch seconds) of the windows starting on local dates first..last, merged
        where they touch or overlap."""
        spans = []
        day = first
        while day <= last:
            if day not in self.closed_dates:
                weekday = day.weekday()
                for w in self.windows:
                    if weekday in w.days:
                        end = w.end_min if w.end_min > w.start_min else w.end_min + MINUTES_PER_DAY
                        spans.append((self._epoch(day, w.start_min), self._epoch(day, end)))
            day += dt.timedelta(days=1)
        spans.sort()
        merged: list[tuple[float, float]] = []
        for a, b in spans:
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        return merged

    def is_open(self, now_s: float) -> bool:
        """Whether instances run at ``now_s``.

        >>> s = Schedule.parse("Mon-Fri 09:00-17:00 UTC")
        >>> s.is_open(1_780_045_200.0), s.is_open(1_780_045_200.0 - 1)  # Fri 2026-05-29 09:00 UTC
        (True, False)
        """
        today = self.local_date(now_s)
        return any(a <= now_s < b for a, b in self.intervals(today - dt.timedelta(days=1), today))

    def next_change_s(self, now_s: float) -> float | None:
        """When the schedule next opens (if closed at ``now_s``) or closes (if open); None if it never
        does (open around the clock, or closed for longer than two years).

        >>> Schedule.parse("Mon-Fri 09:00-17:00 UTC").next_change_s(1_780_045_200.0) - 1_780_045_200.0
        28800.0
        """
        today = self.local_date(now_s)
        for span_days in _SCAN_DAYS:
            last = today + dt.timedelta(days=span_days)
            horizon_s = self._epoch(last + dt.timedelta(days=1), 0)  # no later window starts before this
            for a, b in self.intervals(today - dt.timedelta(days=1), last):
                if b <= now_s:
                    continue
                if a > now_s:
                    return a
                if b < horizon_s:
                    return b
                break  # open up to the horizon: a later window may extend it
        return None


def governing(schedules: tuple[Schedule, ...] | list[Schedule], tags: Mapping[str, str]) -> Schedule | None:
    """The schedule that governs an instance: the first whose selector matches its tags, a schedule with
    a selector before one without (the more specific wins); None: it runs around the clock.

    >>> dev, every = Schedule.parse("env=dev Mon-Fri 09:00-17:00 UTC"), Schedule.parse("Mon-Sun 06:00-22:00 UTC")
    >>> governing([every, dev], {"env": "dev"}) is dev, governing([every, dev], {"env": "prod"}) is every
    (True, True)
    """
    for schedule in sorted(schedules, key=lambda s: s.selector is None):
        if schedule.matches(tags):
            return schedule
    return None


def open_mask(schedule: Schedule, times_s: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Whether ``schedule`` is open at each of ``times_s`` (ascending epoch seconds, e.g. a trace's ticks):
    the open intervals over the whole span, found once, and a binary search per time.

    >>> office = Schedule.parse("Mon-Fri 09:00-17:00 UTC")
    >>> open_mask(office, 1_780_045_200.0 + np.array([-1.0, 0.0, 28_799.0, 28_800.0])).tolist()
    [False, True, True, False]
    """
    times = np.asarray(times_s, dtype=np.float64)
    if not times.size:
        return np.zeros(0, dtype=bool)
    first = schedule.local_date(float(times.min())) - dt.timedelta(days=1)
    last = schedule.local_date(float(times.max()))
    spans = np.array(schedule.intervals(first, last), dtype=np.float64).reshape(-1, 2)
    at = np.searchsorted(spans[:, 0], times, side="right") - 1  # the last interval opening at or before
    inside = (at >= 0) & (times < spans[np.maximum(at, 0), 1])
    return np.asarray(inside, dtype=bool)
