"""Hibernation schedules (engine/schedule.py): parsing with errors that name the bad part, whether a
schedule is open at a moment, when it next changes, and daylight-saving changes in Europe/Berlin."""

from __future__ import annotations

import datetime as dt
import pickle
import re
import zoneinfo

import pytest

from engine.schedule import Schedule, governing

BERLIN = "Europe/Berlin"


def at(local: str, zone: str = BERLIN) -> float:
    """Epoch seconds of a local wall time such as '2026-03-27 08:00' in ``zone``."""
    return dt.datetime.fromisoformat(local).replace(tzinfo=zoneinfo.ZoneInfo(zone)).timestamp()


def utc(text: str) -> float:
    return at(text, "UTC")


# -- parsing -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "canonical"), [
    ("Mon-Fri 08:00-19:00 Europe/Berlin", "Mon-Fri 08:00-19:00 Europe/Berlin"),
    ("mon-fri 8:00-19:00   UTC", "Mon-Fri 08:00-19:00 UTC"),
    ("Monday,Wed,fri 09:00-12:00; Sat 10:00-14:00 America/New_York",
     "Mon,Wed,Fri 09:00-12:00; Sat 10:00-14:00 America/New_York"),
    ("env=dev Mon-Fri 09:00-17:00 UTC except 2026-12-25, 2026-12-28..2026-12-31",
     "env=dev Mon-Fri 09:00-17:00 UTC except 2026-12-25,2026-12-28..2026-12-31"),
    ("Fri-Mon 22:00-06:00 UTC", "Fri-Mon 22:00-06:00 UTC"),
    ("Mon-Sun 00:00-24:00 UTC", "Mon-Sun 00:00-24:00 UTC"),
])
def test_a_schedule_parses_to_a_canonical_text_that_parses_back_to_it(text: str, canonical: str) -> None:
    schedule = Schedule.parse(text)
    assert str(schedule) == canonical
    assert Schedule.parse(canonical) == schedule
    assert pickle.loads(pickle.dumps(schedule)) == schedule


@pytest.mark.parametrize(("text", "named"), [
    ("", "a schedule is text"),
    ("Mon-Fri 08:00-19:00", "expected days, hours and a time zone"),
    ("Mon-Fri 08:00-19:00 Sat 10:00-12:00", "the time zone is missing"),
    ("Mon-Fri 08:00-19:00 Europe/Berln", "time zone 'Europe/Berln' is unknown"),
    ("Mon-Fry 08:00-19:00 UTC", "window 1: unknown day 'Fry'"),
    ("Mon-Fri 08:00-19:00; Sat 25:00-26:00 UTC", "window 2: time '25:00' is not a time of day"),
    ("Mon 08:60-09:00 UTC", "window 1: time '08:60'"),
    ("Mon 24:00-09:00 UTC", "cannot start at 24:00"),
    ("Mon 08:00-08:00 UTC", "open and close at the same time"),
    ("Mon 8h-9h UTC", "time '8h' is not HH:MM"),
    ("Mon 08:00 UTC", "hours '08:00' are not HH:MM-HH:MM"),
    ("Mon- 08:00-09:00 UTC", "days 'Mon-'"),
    ("env= Mon 08:00-09:00 UTC", "selector 'env='"),
    ("Mon 08:00-09:00 UTC except 2026-02-30", "exception '2026-02-30'"),
    ("Mon 08:00-09:00 UTC except 2026-12-31..2026-12-01", "ends before it starts"),
    ("Mon 08:00-09:00 UTC except", "expected dates after 'except'"),
])
def test_a_bad_schedule_is_refused_naming_the_bad_part(text: str, named: str) -> None:
    with pytest.raises(ValueError, match=re.escape(named)):
        Schedule.parse(text)


# -- open and closed ---------------------------------------------------------------------------------------

def test_a_weekday_window_is_open_inside_and_closed_outside_and_at_weekends() -> None:
    office = Schedule.parse("Mon-Fri 09:00-17:00 UTC")
    assert office.is_open(utc("2026-06-03 09:00"))  # a Wednesday
    assert office.is_open(utc("2026-06-03 16:59:59"))
    assert not office.is_open(utc("2026-06-03 08:59:59"))
    assert not office.is_open(utc("2026-06-03 17:00"))  # the end is not inside
    assert not office.is_open(utc("2026-06-06 12:00"))  # Saturday


def test_an_overnight_window_belongs_to_the_day_it_starts_on() -> None:
    nights = Schedule.parse("Fri 22:00-06:00 UTC")
    assert nights.is_open(utc("2026-06-05 23:00"))  # Friday night
    assert nights.is_open(utc("2026-06-06 05:59"))  # Saturday morning, still Friday's window
    assert not nights.is_open(utc("2026-06-06 06:00"))
    assert not nights.is_open(utc("2026-06-05 05:00"))  # Friday morning: Thursday has no window


def test_an_excepted_date_opens_none_of_its_windows() -> None:
    office = Schedule.parse("Mon-Fri 09:00-17:00 UTC except 2026-12-24..2026-12-25")
    assert not office.is_open(utc("2026-12-24 12:00"))
    assert not office.is_open(utc("2026-12-25 12:00"))
    assert office.is_open(utc("2026-12-23 12:00"))
    assert office.next_change_s(utc("2026-12-23 18:00")) == utc("2026-12-28 09:00")  # the Monday after


def test_the_next_change_is_the_close_when_open_and_the_open_when_closed() -> None:
    office = Schedule.parse("Mon-Fri 09:00-17:00 UTC")
    assert office.next_change_s(utc("2026-06-03 10:00")) == utc("2026-06-03 17:00")
    assert office.next_change_s(utc("2026-06-05 17:00")) == utc("2026-06-08 09:00")  # Friday -> Monday
    assert office.next_change_s(utc("2026-06-08 08:00")) == utc("2026-06-08 09:00")


def test_touching_windows_make_no_change_between_them() -> None:
    weekdays = Schedule.parse("Mon-Fri 00:00-24:00 UTC")
    assert weekdays.next_change_s(utc("2026-06-02 12:00")) == utc("2026-06-06 00:00")  # Saturday
    assert Schedule.parse("Mon-Sun 00:00-24:00 UTC").next_change_s(utc("2026-06-02 12:00")) is None


# -- daylight saving: Europe/Berlin springs forward on 2026-03-29 and falls back on 2026-10-25 ----------

def test_a_berlin_window_opens_at_eight_local_on_both_sides_of_spring_forward() -> None:
    office = Schedule.parse("Mon-Fri 08:00-19:00 Europe/Berlin")
    friday, monday = at("2026-03-27 08:00"), at("2026-03-30 08:00")
    assert friday == utc("2026-03-27 07:00")  # CET, UTC+1
    assert monday == utc("2026-03-30 06:00")  # CEST, UTC+2
    for opening in (friday, monday):
        assert office.is_open(opening)
        assert not office.is_open(opening - 1)
    assert office.next_change_s(at("2026-03-27 19:00")) == monday
    assert office.next_change_s(monday) == at("2026-03-30 19:00") == utc("2026-03-30 17:00")


def test_a_berlin_window_opens_at_eight_local_on_both_sides_of_fall_back() -> None:
    office = Schedule.parse("Mon-Fri 08:00-19:00 Europe/Berlin")
    friday, monday = at("2026-10-23 08:00"), at("2026-10-26 08:00")
    assert friday == utc("2026-10-23 06:00")  # CEST
    assert monday == utc("2026-10-26 07:00")  # CET
    for opening in (friday, monday):
        assert office.is_open(opening)
        assert not office.is_open(opening - 1)
    assert office.next_change_s(at("2026-10-23 19:00")) == monday


def test_a_window_across_the_change_lasts_the_wall_clock_hours_that_really_pass() -> None:
    early = Schedule.parse("Sun 01:00-04:00 Europe/Berlin")
    spring_open, spring_close = at("2026-03-29 01:00"), at("2026-03-29 04:00")
    assert spring_close - spring_open == 2 * 3600  # 02:00-03:00 does not exist that night
    assert early.next_change_s(spring_open) == spring_close
    fall_open = at("2026-10-25 01:00")
    assert early.next_change_s(fall_open) - fall_open == 4 * 3600  # 02:00-03:00 happens twice
    assert early.is_open(fall_open + 3.5 * 3600)


def test_a_window_starting_in_the_skipped_hour_opens_when_the_clock_allows() -> None:
    skipped = Schedule.parse("Sun 02:30-05:00 Europe/Berlin")
    assert skipped.next_change_s(at("2026-03-29 00:00")) == utc("2026-03-29 01:30")  # 03:30 summer time
    assert skipped.is_open(at("2026-03-29 04:00"))


# -- selectors ----------------------------------------------------------------------------------------------

def test_the_schedule_with_a_matching_selector_governs_before_the_general_one() -> None:
    dev = Schedule.parse("env=dev Mon-Fri 09:00-17:00 UTC")
    every = Schedule.parse("Mon-Sun 06:00-22:00 UTC")
    assert governing([every, dev], {"env": "dev"}) is dev
    assert governing([every, dev], {"env": "prod"}) is every
    assert governing([dev], {}) is None
