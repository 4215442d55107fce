"""The period a report covers and the buckets it is cut into, in UTC calendar days and months.

A period is written the way people ask for one: ``2023-02`` (a month), ``2023-02-15`` (a day),
``2023-02-15..2023-02-21`` (days, both ends included) or ``2023-01..2023-03`` (months, both included).
Reports are cut per UTC day (``daily``) or per UTC calendar month (``monthly``, clipped to the period).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

MAX_PERIOD_DAYS = 366  # a year of daily rows at most: a longer question is several reports
PERIOD_FORMS = "YYYY-MM, YYYY-MM-DD, YYYY-MM-DD..YYYY-MM-DD or YYYY-MM..YYYY-MM (UTC)"
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


class Granularity(enum.StrEnum):
    """How a report's rows are cut."""

    DAILY = "daily"
    MONTHLY = "monthly"


@dataclass(frozen=True, slots=True)
class Period:
    """``[start_s, end_s)`` in epoch seconds, both at UTC midnight; ``label`` is how it was asked for."""

    label: str
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class Bucket:
    """One row of a report: ``[start_s, end_s)``, named ``2023-02-15`` (a day) or ``2023-02`` (a month)."""

    label: str
    start_s: float
    end_s: float


def parse_period(text: str) -> Period:
    """The period ``text`` names, or a ValueError that says which forms are accepted.

    >>> p = parse_period("2023-02")
    >>> (p.start_s, p.end_s, (p.end_s - p.start_s) / 86400)
    (1675209600.0, 1677628800.0, 28.0)
    >>> parse_period("2023-02-15..2023-02-21").end_s - parse_period("2023-02-15").start_s == 7 * 86400
    True
    >>> parse_period("2023-13")
    Traceback (most recent call last):
    ...
    ValueError: '2023-13' is not a valid month or day: month must be in 1..12
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"must be one of {PERIOD_FORMS}")
    label = text.strip()
    first, sep, last = (part.strip() for part in label.partition(".."))
    start, end = _span(first)
    if sep:
        end = _span(last)[1]
    if sep and _kind(first) != _kind(last):
        raise ValueError(f"{label!r}: both ends must be days or both months")
    if end <= start:
        raise ValueError(f"{label!r}: the end is before the start")
    if (end - start).days > MAX_PERIOD_DAYS:
        raise ValueError(f"{label!r} spans {(end - start).days} days; at most {MAX_PERIOD_DAYS}")
    return Period(label, _epoch(start), _epoch(end))


def buckets(period: Period, granularity: Granularity) -> list[Bucket]:
    """The period cut into UTC days or calendar months (a month is clipped to the period).

    >>> [b.label for b in buckets(parse_period("2023-01-30..2023-02-01"), Granularity.MONTHLY)]
    ['2023-01', '2023-02']
    >>> len(buckets(parse_period("2023-02"), Granularity.DAILY))
    28
    """
    start = datetime.fromtimestamp(period.start_s, tz=UTC).date()
    end = datetime.fromtimestamp(period.end_s, tz=UTC).date()
    cuts: list[Bucket] = []
    day = start
    while day < end:
        if granularity is Granularity.DAILY:
            following = day + timedelta(days=1)
            label = day.isoformat()
        else:
            following = min(end, _next_month(day))
            label = day.strftime("%Y-%m")
        cuts.append(Bucket(label, _epoch(day), _epoch(following)))
        day = following
    return cuts


def _kind(text: str) -> str:
    return "month" if _MONTH.match(text) else "day"


def _span(text: str) -> tuple[date, date]:
    """The first day of ``text`` and the day after its last."""
    try:
        if match := _MONTH.match(text):
            first = date(int(match[1]), int(match[2]), 1)
            return first, _next_month(first)
        if match := _DAY.match(text):
            first = date(int(match[1]), int(match[2]), int(match[3]))
            return first, first + timedelta(days=1)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"{text!r} is not a valid month or day: {exc}") from None
    raise ValueError(f"{text!r} is not one of {PERIOD_FORMS}")


def _next_month(day: date) -> date:
    return date(day.year + 1, 1, 1) if day.month == 12 else date(day.year, day.month + 1, 1)


def _epoch(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
