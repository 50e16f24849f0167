"""Tests for ehass.availability.slots: wall-clock availability -> UTC slots.

Expected UTC values in the example tests are worked out by hand from the zones'
published offsets (not by re-running the code under test), so they pin the contract.
"""

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta, timezone
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from ehass.availability import answer, cache
from ehass.availability import slots as slot_rules
from ehass.availability.schemas import SlotRead
from ehass.availability.slots import (
    Schedule,
    Slot,
    Window,
    free_slots,
    open_slots,
    slot_at,
    slots_between,
    windows_problems,
)

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
KOLKATA = ZoneInfo("Asia/Kolkata")

# 2026 transitions used below (all Sundays):
#   New York: 2026-03-08 02:00 EST -> 03:00 EDT;  2026-11-01 02:00 EDT -> 01:00 EST
#   Berlin:   2026-03-29 02:00 CET -> 03:00 CEST; 2026-10-25 03:00 CEST -> 02:00 CET
NY_SPRING = date(2026, 3, 8)
NY_FALL = date(2026, 11, 1)
BERLIN_SPRING = date(2026, 3, 29)
BERLIN_FALL = date(2026, 10, 25)


def win(start: str, end: str) -> Window:
    return Window(time.fromisoformat(start), time.fromisoformat(end))


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def every_day(*windows: Window) -> dict[int, tuple[Window, ...]]:
    return dict.fromkeys(range(7), windows)


def schedule(
    tz: ZoneInfo,
    minutes: int,
    weekly: Mapping[int, Sequence[Window]] | None = None,
    overrides: Mapping[date, Sequence[Window]] | None = None,
) -> Schedule:
    return Schedule(
        timezone=tz, slot_minutes=minutes, weekly=weekly or {}, overrides=overrides or {}
    )


def local_days(tz: ZoneInfo, first: date, days: int = 1) -> dict[str, datetime]:
    """Range keyword arguments covering whole local days."""
    return {
        "start": datetime.combine(first, time(0), tzinfo=tz),
        "end": datetime.combine(first + timedelta(days=days), time(0), tzinfo=tz),
    }


def starts(slots: Sequence[Slot]) -> list[datetime]:
    return [s.start for s in slots]


def one_day_schedule(tz: ZoneInfo, day: date, minutes: int, *windows: Window) -> Schedule:
    return schedule(tz, minutes, overrides={day: windows})


# --------------------------------------------------------------------------- plain weeks

WORKWEEK = {wd: (win("09:00", "12:00"), win("13:00", "17:00")) for wd in range(5)}


def test_plain_week_utc() -> None:
    sched = schedule(ZoneInfo("UTC"), 60, WORKWEEK)
    # 2026-01-05 is a Monday; the weekend has no windows.
    got = slots_between(sched, start=utc(2026, 1, 5), end=utc(2026, 1, 12))
    expected = [utc(2026, 1, day, h) for day in range(5, 10) for h in (9, 10, 11, 13, 14, 15, 16)]
    assert starts(got) == expected
    assert all(s.end - s.start == timedelta(hours=1) for s in got)
    assert all(s.start.tzinfo is UTC and s.end.tzinfo is UTC for s in got)


def test_plain_week_new_york_winter() -> None:
    sched = schedule(NY, 60, WORKWEEK)
    got = slots_between(sched, **local_days(NY, date(2026, 1, 5), 7))
    # EST is UTC-5 all week.
    expected = [utc(2026, 1, day, h) for day in range(5, 10) for h in (14, 15, 16, 18, 19, 20, 21)]
    assert starts(got) == expected
    assert all(s.start.tzinfo is UTC for s in got)


def test_plain_week_half_hour_offset_zone() -> None:
    sched = schedule(KOLKATA, 30, {0: (win("09:00", "10:30"),), 3: (win("23:00", "23:59"),)})
    got = slots_between(sched, **local_days(KOLKATA, date(2026, 1, 5), 7))
    # IST is UTC+05:30; the Thursday 23:00 IST slot is still Thursday in UTC.
    assert starts(got) == [
        utc(2026, 1, 5, 3, 30),
        utc(2026, 1, 5, 4, 0),
        utc(2026, 1, 5, 4, 30),
        utc(2026, 1, 8, 17, 30),
    ]


def test_slot_that_does_not_fit_the_window_end_is_dropped() -> None:
    sched = schedule(ZoneInfo("UTC"), 45, {0: (win("09:00", "11:00"),)})
    got = slots_between(sched, start=utc(2026, 1, 5), end=utc(2026, 1, 6))
    # 10:30 + 45 min = 11:15 > 11:00.
    assert starts(got) == [utc(2026, 1, 5, 9, 0), utc(2026, 1, 5, 9, 45)]


def test_missing_weekday_means_no_slots() -> None:
    sched = schedule(ZoneInfo("UTC"), 60, {2: [win("09:00", "10:00")]})
    got = slots_between(sched, start=utc(2026, 1, 5), end=utc(2026, 1, 12))
    assert starts(got) == [utc(2026, 1, 7, 9)]


def test_range_bounds_are_half_open_and_offset_agnostic() -> None:
    sched = schedule(ZoneInfo("UTC"), 60, WORKWEEK)
    # Start mid-slot: the 10:00 slot started before `start` and is excluded;
    # the end bound is exclusive, so the 14:00 slot is excluded too.
    got = slots_between(sched, start=utc(2026, 1, 5, 10, 30), end=utc(2026, 1, 5, 14))
    assert starts(got) == [utc(2026, 1, 5, 11), utc(2026, 1, 5, 13)]
    # The same instants written in another offset select the same slots.
    plus_two = timezone(timedelta(hours=2))
    same = slots_between(
        sched,
        start=datetime(2026, 1, 5, 12, 30, tzinfo=plus_two),
        end=datetime(2026, 1, 5, 16, tzinfo=plus_two),
    )
    assert same == got
    assert slots_between(sched, start=utc(2026, 1, 5, 14), end=utc(2026, 1, 5, 14)) == []
    assert slots_between(sched, start=utc(2026, 1, 6), end=utc(2026, 1, 5)) == []


def test_range_reaching_back_a_local_day() -> None:
    # Slots of local date D can have a UTC date before D: 00:30 in Kolkata on
    # Tuesday is Monday 19:00 UTC. A UTC-day query must still find it.
    sched = schedule(KOLKATA, 60, {1: (win("00:30", "01:30"),)})
    got = slots_between(sched, start=utc(2026, 1, 5), end=utc(2026, 1, 6))
    assert got == [Slot(utc(2026, 1, 5, 19), utc(2026, 1, 5, 20))]
    assert slot_at(sched, utc(2026, 1, 5, 19)) == got[0]


def test_range_starting_in_local_evening_of_previous_day() -> None:
    # West of UTC the other way round: Monday 21:00-23:00 EST is Tuesday 02:00-04:00 UTC.
    sched = schedule(NY, 60, {0: (win("21:00", "23:00"),)})
    got = slots_between(sched, start=utc(2026, 1, 6), end=utc(2026, 1, 7))
    assert starts(got) == [utc(2026, 1, 6, 2), utc(2026, 1, 6, 3)]
    assert slot_at(sched, utc(2026, 1, 6, 3)) == got[1]


# --------------------------------------------------------------------------- overrides


def test_override_day_off() -> None:
    # Wednesday 2026-01-07 off.
    sched = schedule(ZoneInfo("UTC"), 60, every_day(win("09:00", "11:00")), {date(2026, 1, 7): ()})
    got = slots_between(sched, start=utc(2026, 1, 6), end=utc(2026, 1, 9))
    assert starts(got) == [
        utc(2026, 1, 6, 9),
        utc(2026, 1, 6, 10),
        utc(2026, 1, 8, 9),
        utc(2026, 1, 8, 10),
    ]


def test_override_extra_hours_on_weekend() -> None:
    # Saturday 2026-01-10 opened although the weekly pattern has no weekend.
    sched = schedule(NY, 60, WORKWEEK, {date(2026, 1, 10): [win("10:00", "12:00")]})
    got = slots_between(sched, **local_days(NY, date(2026, 1, 10), 2))
    assert starts(got) == [utc(2026, 1, 10, 15), utc(2026, 1, 10, 16)]


def test_override_replaces_weekday_windows() -> None:
    # Thursday 2026-01-08: only 14:00-16:00 instead of the weekly 09-12 and 13-17.
    sched = schedule(ZoneInfo("UTC"), 60, WORKWEEK, {date(2026, 1, 8): [win("14:00", "16:00")]})
    got = slots_between(sched, start=utc(2026, 1, 8), end=utc(2026, 1, 9))
    assert starts(got) == [utc(2026, 1, 8, 14), utc(2026, 1, 8, 15)]
    # Neighbouring days keep their weekly windows.
    wednesday = slots_between(sched, start=utc(2026, 1, 7), end=utc(2026, 1, 8))
    assert len(wednesday) == 7


def test_override_applies_to_local_date_not_utc_date() -> None:
    # 2026-01-10 00:30 in Kolkata is 2026-01-09 19:00 UTC; the override is keyed
    # by the local date.
    sched = schedule(KOLKATA, 60, {}, {date(2026, 1, 10): [win("00:30", "01:30")]})
    got = slots_between(sched, start=utc(2026, 1, 9), end=utc(2026, 1, 11))
    assert starts(got) == [utc(2026, 1, 9, 19)]


# --------------------------------------------------------------------------- DST


@pytest.mark.parametrize(
    ("tz", "first", "utc_hour_of_nine"),
    [
        # (zone, Saturday before the change, UTC hour of 09:00 local on Sat, Sun, Mon)
        (NY, date(2026, 3, 7), (14, 13, 13)),
        (NY, date(2026, 10, 31), (13, 14, 14)),
        (BERLIN, date(2026, 3, 28), (8, 7, 7)),
        (BERLIN, date(2026, 10, 24), (7, 8, 8)),
    ],
    ids=["ny-spring", "ny-fall", "berlin-spring", "berlin-fall"],
)
def test_business_hours_keep_wall_clock_across_dst(
    tz: ZoneInfo, first: date, utc_hour_of_nine: tuple[int, int, int]
) -> None:
    sched = schedule(tz, 60, every_day(win("09:00", "17:00")))
    got = slots_between(sched, **local_days(tz, first, 3))
    expected = [
        datetime.combine(first + timedelta(days=i), time(h), tzinfo=UTC) + timedelta(hours=k)
        for i, h in enumerate(utc_hour_of_nine)
        for k in range(8)
    ]
    assert starts(got) == expected
    assert [s.start.astimezone(tz).hour for s in got] == list(range(9, 17)) * 3
    assert all(s.end - s.start == timedelta(hours=1) for s in got)


@pytest.mark.parametrize(
    ("tz", "day", "expected"),
    [
        # 01:00, 01:30 EST (UTC-5); 02:00 and 02:30 do not exist; 03:00, 03:30 EDT (UTC-4).
        (
            NY,
            NY_SPRING,
            [
                utc(2026, 3, 8, 6),
                utc(2026, 3, 8, 6, 30),
                utc(2026, 3, 8, 7),
                utc(2026, 3, 8, 7, 30),
            ],
        ),
        # 01:00, 01:30 CET (UTC+1); 02:00 and 02:30 do not exist; 03:00, 03:30 CEST (UTC+2).
        (
            BERLIN,
            BERLIN_SPRING,
            [
                utc(2026, 3, 29, 0),
                utc(2026, 3, 29, 0, 30),
                utc(2026, 3, 29, 1),
                utc(2026, 3, 29, 1, 30),
            ],
        ),
    ],
    ids=["ny", "berlin"],
)
def test_spring_forward_gap_skips_missing_starts(
    tz: ZoneInfo, day: date, expected: list[datetime]
) -> None:
    sched = one_day_schedule(tz, day, 30, win("01:00", "04:00"))
    got = slots_between(sched, **local_days(tz, day))
    assert starts(got) == expected
    assert [s.start.astimezone(tz).strftime("%H:%M") for s in got] == [
        "01:00",
        "01:30",
        "03:00",
        "03:30",
    ]
    assert all(s.end - s.start == timedelta(minutes=30) for s in got)


@pytest.mark.parametrize(
    ("tz", "day", "window", "expected"),
    [
        # 00:00-01:30 EDT (UTC-4) incl. the first 01:00/01:30; 02:00, 02:30 EST (UTC-5).
        (
            NY,
            NY_FALL,
            win("00:00", "03:00"),
            [
                utc(2026, 11, 1, 4),
                utc(2026, 11, 1, 4, 30),
                utc(2026, 11, 1, 5),
                utc(2026, 11, 1, 5, 30),
                utc(2026, 11, 1, 7),
                utc(2026, 11, 1, 7, 30),
            ],
        ),
        # 01:00-02:30 CEST (UTC+2) incl. the first 02:00/02:30; 03:00, 03:30 CET (UTC+1).
        (
            BERLIN,
            BERLIN_FALL,
            win("01:00", "04:00"),
            [
                utc(2026, 10, 24, 23),
                utc(2026, 10, 24, 23, 30),
                utc(2026, 10, 25, 0),
                utc(2026, 10, 25, 0, 30),
                utc(2026, 10, 25, 2),
                utc(2026, 10, 25, 2, 30),
            ],
        ),
    ],
    ids=["ny", "berlin"],
)
def test_fall_back_repeat_offers_first_occurrence_once(
    tz: ZoneInfo, day: date, window: Window, expected: list[datetime]
) -> None:
    sched = one_day_schedule(tz, day, 30, window)
    got = slots_between(sched, **local_days(tz, day))
    assert starts(got) == expected
    walls = [s.start.astimezone(tz).strftime("%H:%M") for s in got]
    assert len(set(walls)) == len(walls)  # each repeated label sold once
    assert all(s.start.astimezone(tz).fold == 0 for s in got)  # ... at its first occurrence


@pytest.mark.parametrize(
    ("tz", "day", "expected"),
    [
        # 01:00 EST, 01:45 EST (ends 07:30Z = 03:30 EDT); 02:30 does not exist;
        # 03:15 EDT = 07:15Z overlaps the 01:45 slot and is skipped.
        (NY, NY_SPRING, [utc(2026, 3, 8, 6), utc(2026, 3, 8, 6, 45)]),
        (BERLIN, BERLIN_SPRING, [utc(2026, 3, 29, 0), utc(2026, 3, 29, 0, 45)]),
    ],
    ids=["ny", "berlin"],
)
def test_45_minute_slots_across_gap_do_not_overlap(
    tz: ZoneInfo, day: date, expected: list[datetime]
) -> None:
    sched = one_day_schedule(tz, day, 45, win("01:00", "04:00"))
    got = slots_between(sched, **local_days(tz, day))
    assert starts(got) == expected
    assert all(s.end - s.start == timedelta(minutes=45) for s in got)
    assert all(a.end <= b.start for a, b in pairwise(got))


def test_45_minute_slots_across_fall_back() -> None:
    sched = one_day_schedule(NY, NY_FALL, 45, win("00:00", "03:00"))
    got = slots_between(sched, **local_days(NY, NY_FALL))
    # 00:00, 00:45, 01:30 EDT; 02:15 EST.
    assert starts(got) == [
        utc(2026, 11, 1, 4),
        utc(2026, 11, 1, 4, 45),
        utc(2026, 11, 1, 5, 30),
        utc(2026, 11, 1, 7, 15),
    ]


def test_lord_howe_half_hour_gap() -> None:
    # 2026-10-04: 02:00 (UTC+10:30) -> 02:30 (UTC+11); only 02:00 is missing.
    day = date(2026, 10, 4)
    sched = one_day_schedule(LORD_HOWE, day, 30, win("01:00", "03:30"))
    got = slots_between(sched, **local_days(LORD_HOWE, day))
    assert starts(got) == [
        utc(2026, 10, 3, 14, 30),
        utc(2026, 10, 3, 15),
        utc(2026, 10, 3, 15, 30),
        utc(2026, 10, 3, 16),
    ]


def test_window_ending_in_gap_next_to_window_after_it() -> None:
    # The 01:30 EST slot of the first window lasts until 07:30Z (03:30 EDT),
    # which overlaps the 03:00 EDT start of the second window: the later one is
    # skipped, as within a single window, so no two slots overlap.
    sched = one_day_schedule(NY, NY_SPRING, 60, win("00:30", "02:30"), win("03:00", "05:00"))
    got = slots_between(sched, **local_days(NY, NY_SPRING))
    assert starts(got) == [utc(2026, 3, 8, 5, 30), utc(2026, 3, 8, 6, 30), utc(2026, 3, 8, 8)]


def test_overlapping_windows_yield_no_duplicates() -> None:
    sched = schedule(ZoneInfo("UTC"), 60, {0: (win("09:00", "12:00"), win("10:00", "11:00"))})
    got = slots_between(sched, start=utc(2026, 1, 5), end=utc(2026, 1, 6))
    assert starts(got) == [utc(2026, 1, 5, 9), utc(2026, 1, 5, 10), utc(2026, 1, 5, 11)]


def test_windows_given_out_of_order_are_sorted() -> None:
    sched = schedule(ZoneInfo("UTC"), 60, {0: (win("13:00", "14:00"), win("09:00", "10:00"))})
    got = slots_between(sched, start=utc(2026, 1, 5), end=utc(2026, 1, 6))
    assert starts(got) == [utc(2026, 1, 5, 9), utc(2026, 1, 5, 13)]


# --------------------------------------------------------------------------- free_slots

DAY = schedule(ZoneInfo("UTC"), 30, {0: (win("09:00", "12:00"),)})
MONDAY = {"start": utc(2026, 1, 5), "end": utc(2026, 1, 6)}
LONG_AGO = utc(2000, 1, 1)


def test_free_slots_without_busy_or_past_is_slots_between() -> None:
    assert free_slots(DAY, **MONDAY, now=LONG_AGO, busy=[]) == slots_between(DAY, **MONDAY)


def test_free_slots_excludes_past_but_keeps_slot_starting_now() -> None:
    at_ten = free_slots(DAY, **MONDAY, now=utc(2026, 1, 5, 10), busy=[])
    assert starts(at_ten)[0] == utc(2026, 1, 5, 10)
    # A minute later the 10:00 slot has started and is no longer offered.
    later = free_slots(DAY, **MONDAY, now=utc(2026, 1, 5, 10, 1), busy=[])
    assert starts(later) == [utc(2026, 1, 5, 10, 30), utc(2026, 1, 5, 11), utc(2026, 1, 5, 11, 30)]
    # `now` in another offset means the same instant.
    new_york_now = datetime(2026, 1, 5, 5, 1, tzinfo=NY)
    assert free_slots(DAY, **MONDAY, now=new_york_now, busy=[]) == later


def test_free_slots_busy_removes_only_overlapping_slots() -> None:
    busy = [(utc(2026, 1, 5, 10), utc(2026, 1, 5, 11))]
    got = free_slots(DAY, **MONDAY, now=LONG_AGO, busy=busy)
    # 09:30-10:00 and 11:00-11:30 only touch the appointment: still free.
    assert starts(got) == [
        utc(2026, 1, 5, 9),
        utc(2026, 1, 5, 9, 30),
        utc(2026, 1, 5, 11),
        utc(2026, 1, 5, 11, 30),
    ]


def test_free_slots_partial_overlap_blocks_the_slot() -> None:
    busy = iter(
        [
            (utc(2026, 1, 5, 10, 15), utc(2026, 1, 5, 10, 20)),
            (utc(2026, 1, 5, 11, 29), utc(2026, 1, 5, 13)),
        ]
    )
    got = free_slots(DAY, **MONDAY, now=LONG_AGO, busy=busy)
    assert starts(got) == [utc(2026, 1, 5, 9), utc(2026, 1, 5, 9, 30), utc(2026, 1, 5, 10, 30)]


def test_free_slots_busy_in_another_offset() -> None:
    # 05:00-05:30 EST is 10:00-10:30 UTC.
    busy = [(datetime(2026, 1, 5, 5, tzinfo=NY), datetime(2026, 1, 5, 5, 30, tzinfo=NY))]
    got = free_slots(DAY, **MONDAY, now=LONG_AGO, busy=busy)
    assert utc(2026, 1, 5, 10) not in starts(got)
    assert len(got) == 5


def test_free_slots_honours_range_bounds() -> None:
    got = free_slots(
        DAY, start=utc(2026, 1, 5, 9, 30), end=utc(2026, 1, 5, 11), now=LONG_AGO, busy=[]
    )
    assert starts(got) == [utc(2026, 1, 5, 9, 30), utc(2026, 1, 5, 10), utc(2026, 1, 5, 10, 30)]


# --------------------------------------------------------------------------- slot_at


def test_slot_at_real_start() -> None:
    assert slot_at(DAY, utc(2026, 1, 5, 10, 30)) == Slot(
        utc(2026, 1, 5, 10, 30), utc(2026, 1, 5, 11)
    )
    # Any offset denoting the same instant finds it.
    assert slot_at(DAY, datetime(2026, 1, 5, 5, 30, tzinfo=NY)) == Slot(
        utc(2026, 1, 5, 10, 30), utc(2026, 1, 5, 11)
    )


@pytest.mark.parametrize(
    "at",
    [
        utc(2026, 1, 5, 10, 15),  # off the 30-minute grid
        utc(2026, 1, 5, 10, 30) + timedelta(seconds=1),  # one second off
        utc(2026, 1, 5, 8, 30),  # before the window
        utc(2026, 1, 5, 12),  # window end: a 12:00 slot would not fit
        utc(2026, 1, 6, 10),  # Tuesday: no windows
    ],
)
def test_slot_at_none_off_grid_or_outside_windows(at: datetime) -> None:
    assert slot_at(DAY, at) is None


@pytest.mark.parametrize(
    ("tz", "day"), [(NY, NY_SPRING), (BERLIN, BERLIN_SPRING)], ids=["ny", "berlin"]
)
def test_slot_at_non_existent_times(tz: ZoneInfo, day: date) -> None:
    # Grid 01:00, 01:45, 02:30 (does not exist), 03:15 (skipped: overlaps 01:45).
    sched = one_day_schedule(tz, day, 45, win("01:00", "04:00"))
    assert slot_at(sched, datetime.combine(day, time(1, 45), tzinfo=tz)) is not None
    # Whichever instant the non-existent label is read as, it is not a slot start.
    for fold in (0, 1):
        assert (
            slot_at(sched, datetime.combine(day, time(2, 30), tzinfo=tz).replace(fold=fold)) is None
        )
    assert slot_at(sched, datetime.combine(day, time(3, 15), tzinfo=tz)) is None


def test_slot_at_repeated_time_only_first_occurrence() -> None:
    sched = one_day_schedule(NY, NY_FALL, 30, win("00:00", "03:00"))
    first = datetime(2026, 11, 1, 1, 30, tzinfo=NY)  # EDT, 05:30Z
    second = first.replace(fold=1)  # EST, 06:30Z
    assert slot_at(sched, first) == Slot(utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 6))
    assert slot_at(sched, second) is None
    assert slot_at(sched, utc(2026, 11, 1, 6, 30)) is None
    assert slot_at(sched, utc(2026, 11, 1, 6)) is None


def test_slot_at_repeated_time_berlin() -> None:
    sched = one_day_schedule(BERLIN, BERLIN_FALL, 30, win("01:00", "04:00"))
    first = datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN)  # CEST, 00:30Z
    assert slot_at(sched, first) == Slot(utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1))
    assert slot_at(sched, first.replace(fold=1)) is None  # CET, 01:30Z


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("which", ["start", "end", "now", "at", "busy"])
def test_naive_datetimes_rejected(which: str) -> None:
    aware = utc(2026, 1, 5)
    naive = datetime(2026, 1, 5)
    args = {"start": aware, "end": aware + timedelta(days=1), "now": aware}
    if which == "at":
        with pytest.raises(ValueError):
            slot_at(DAY, naive)
        return
    busy = [(naive, aware)] if which == "busy" else []
    if which != "busy":
        args[which] = naive
    with pytest.raises(ValueError):
        free_slots(DAY, **args, busy=busy)
    if which in ("start", "end"):
        with pytest.raises(ValueError):
            slots_between(DAY, start=args["start"], end=args["end"])


@pytest.mark.parametrize("minutes", [0, 4, 241, -30])
def test_schedule_rejects_slot_length_out_of_range(minutes: int) -> None:
    with pytest.raises(ValueError):
        schedule(ZoneInfo("UTC"), minutes)


# --------------------------------------------------------------------------- windows_problems


def test_windows_problems_valid() -> None:
    assert windows_problems([]) == []
    assert windows_problems([win("09:00", "12:00")]) == []
    # Touching is fine, and so is any order.
    assert windows_problems([win("12:00", "15:00"), win("09:00", "12:00")]) == []


def test_windows_problems_overlap() -> None:
    problems = windows_problems([win("09:00", "12:00"), win("11:00", "13:00")])
    assert len(problems) == 1
    assert "overlap" in problems[0]
    assert "09:00" in problems[0] and "11:00" in problems[0]


def test_windows_problems_nested_and_multiple() -> None:
    problems = windows_problems(
        [win("08:00", "18:00"), win("09:00", "10:00"), win("17:00", "19:00")]
    )
    assert len(problems) == 2


@pytest.mark.parametrize("window", [win("12:00", "09:00"), win("10:00", "10:00")])
def test_windows_problems_start_not_before_end(window: Window) -> None:
    problems = windows_problems([win("06:00", "07:00"), window])
    assert len(problems) == 1
    assert window.start.isoformat("minutes") in problems[0]


# --------------------------------------------------------------------------- properties

ZONE_NAMES = ("UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata")
ZONES = [ZoneInfo(n) for n in ZONE_NAMES]
# DST changes in 2026-2027. Half the ranges are started near one of the drawn
# zone's changes, so that the rare DST days are actually exercised.
TRANSITIONS = {
    "America/New_York": [date(2026, 3, 8), date(2026, 11, 1), date(2027, 3, 14), date(2027, 11, 7)],
    "Europe/Berlin": [date(2026, 3, 29), date(2026, 10, 25), date(2027, 3, 28), date(2027, 10, 31)],
    "Australia/Lord_Howe": [
        date(2026, 4, 5),
        date(2026, 10, 4),
        date(2027, 4, 4),
        date(2027, 10, 3),
    ],
}
# Window boundaries around the small hours where DST changes happen.
DST_MINUTES = [0, 60, 90, 105, 120, 135, 150, 165, 180, 210, 240, 1439]
RANGE_FLOOR, RANGE_CEILING = utc(2026, 1, 1), utc(2028, 1, 1)


def minute_time(minute: int) -> time:
    return time(minute // 60, minute % 60)


def pair_up(bounds: list[int]) -> tuple[Window, ...]:
    """Sorted boundaries -> non-overlapping windows (touching where a boundary repeats)."""
    bounds = sorted(bounds)
    return tuple(
        Window(minute_time(a), minute_time(b))
        for a, b in zip(bounds[::2], bounds[1::2], strict=False)
        if a < b
    )


def spanning_window(bounds: tuple[int, int]) -> tuple[Window, ...]:
    return (Window(minute_time(bounds[0]), minute_time(bounds[1])),)


# Strategies are built once here rather than inside the composites: rebuilding
# them (and their lambdas) on every draw makes Hypothesis far slower.
DAY_WINDOWS = st.lists(
    st.one_of(st.integers(0, 1439), st.sampled_from(DST_MINUTES)), max_size=8
).map(pair_up)
SMALL_HOURS_WINDOWS = (
    st.lists(st.one_of(st.integers(0, 300), st.sampled_from(DST_MINUTES)), max_size=8)
    .map(pair_up)
    .filter(bool)
)
# One window over the whole change, where a slot stretched across the gap can
# collide with the next grid start.
SPANNING_WINDOW = st.tuples(st.integers(0, 120), st.integers(180, 360)).map(spanning_window)
MINUTE_OF_DAY = st.integers(0, 1439)
ANY_ZONE = st.sampled_from(ZONES)
OVERRIDES_BY_OFFSET = st.dictionaries(st.integers(-2, 64), DAY_WINDOWS, max_size=4)


@st.composite
def cases(draw: st.DrawFn) -> tuple[Schedule, datetime, datetime]:
    """A random schedule and a random range of up to 62 days in 2026-2027."""
    tz = draw(ANY_ZONE)
    if tz.key in TRANSITIONS and draw(st.booleans()):
        change = datetime.combine(draw(st.sampled_from(TRANSITIONS[tz.key])), time(0), tzinfo=UTC)
        start = change - timedelta(days=draw(st.integers(0, 7)), minutes=draw(MINUTE_OF_DAY))
    else:
        start = RANGE_FLOOR + timedelta(days=draw(st.integers(0, 729)), minutes=draw(MINUTE_OF_DAY))
    length = timedelta(days=draw(st.integers(0, 62)), minutes=draw(MINUTE_OF_DAY))
    end = min(start + length, RANGE_CEILING)
    weekly = {wd: draw(DAY_WINDOWS) for wd in range(7)}
    overrides = {start.date() + timedelta(days=n): w for n, w in draw(OVERRIDES_BY_OFFSET).items()}
    sched = Schedule(tz, draw(st.integers(5, 240)), weekly, overrides)
    # Present the bounds in arbitrary zones: only the instants may matter.
    return sched, start.astimezone(draw(ANY_ZONE)), end.astimezone(draw(ANY_ZONE))


@st.composite
def dst_day_cases(draw: st.DrawFn) -> tuple[Schedule, datetime, datetime]:
    """A DST change day with windows crowded into its small hours, where the gap or repeat is."""
    name = draw(st.sampled_from(sorted(TRANSITIONS)))
    tz = ZoneInfo(name)
    change = draw(st.sampled_from(TRANSITIONS[name]))
    odd_lengths = st.sampled_from([15, 20, 30, 40, 45, 50, 60, 75, 90])
    minutes = draw(st.one_of(odd_lengths, st.integers(5, 240)))
    windows = draw(st.one_of(SMALL_HOURS_WINDOWS, SPANNING_WINDOW))
    sched = Schedule(tz, minutes, {change.weekday(): draw(DAY_WINDOWS)}, {change: windows})
    start = datetime.combine(change, time(0), tzinfo=tz)
    start -= timedelta(minutes=draw(st.integers(0, 1440)))
    end = datetime.combine(change + timedelta(days=1), time(0), tzinfo=tz)
    end += timedelta(minutes=draw(st.integers(0, 1440)))
    return sched, start, end


def windows_of(sched: Schedule, day: date) -> Sequence[Window]:
    return sched.overrides[day] if day in sched.overrides else sched.weekly.get(day.weekday(), ())


def sample(slots: list[Slot], tz: ZoneInfo, k: int = 20) -> list[Slot]:
    """A spread of slots plus every one next to a local UTC-offset change (cheap but DST-aware)."""
    step = max(1, len(slots) // k)
    picked = slots[::step]
    picked += [
        b
        for a, b in pairwise(slots)
        if a.start.astimezone(tz).utcoffset() != b.start.astimezone(tz).utcoffset()
    ]
    return picked


def assert_well_formed(sched: Schedule, start: datetime, end: datetime) -> None:
    tz = sched.timezone
    length = timedelta(minutes=sched.slot_minutes)
    slots = slots_between(sched, start=start, end=end)
    for a, b in pairwise(slots):
        assert a.end <= b.start  # sorted, no duplicates, strictly non-overlapping
    for s in slots:
        assert s.start.tzinfo is UTC and s.end.tzinfo is UTC
        assert s.end - s.start == length
        assert start <= s.start < end
        local = s.start.astimezone(tz)
        assert local.fold == 0  # a repeated wall time is offered at its first occurrence
        wall = local.replace(tzinfo=None)
        day = wall.date()
        assert any(
            datetime.combine(day, w.start) <= wall
            and wall + length <= datetime.combine(day, w.end)
            and (wall - datetime.combine(day, w.start)) % length == timedelta(0)
            for w in windows_of(sched, day)
        ), (s, local)
    for s in sample(slots, tz):
        assert slot_at(sched, s.start) == s
        # Also as a local time: an ambiguous one must still match (PEP 495 comparisons).
        assert slot_at(sched, s.start.astimezone(tz)) == s
        assert slot_at(sched, s.start + timedelta(minutes=1)) is None


def assert_complete(sched: Schedule, start: datetime, end: datetime) -> None:
    """A grid start in range is missing only if it does not exist or overlaps a kept slot."""
    tz = sched.timezone
    length = timedelta(minutes=sched.slot_minutes)
    slots = slots_between(sched, start=start - timedelta(days=1), end=end + timedelta(days=1))
    offered = {s.start for s in slots}
    day = start.astimezone(tz).date()
    while day <= end.astimezone(tz).date():
        for w in windows_of(sched, day):
            wall = datetime.combine(day, w.start)
            while wall + length <= datetime.combine(day, w.end):
                instant = wall.replace(tzinfo=tz).astimezone(UTC)
                exists = instant.astimezone(tz).replace(tzinfo=None) == wall
                if exists and start <= instant < end and instant not in offered:
                    assert any(s.start < instant + length and instant < s.end for s in slots), wall
                wall += length
        day += timedelta(days=1)


@settings(max_examples=80, deadline=None)
@given(cases())
def test_property_slots_are_well_formed(case: tuple[Schedule, datetime, datetime]) -> None:
    assert_well_formed(*case)


@settings(max_examples=60, deadline=None)
@given(cases())
def test_property_every_existing_grid_time_is_offered_or_blocked(
    case: tuple[Schedule, datetime, datetime],
) -> None:
    assert_complete(*case)


@settings(max_examples=200, deadline=None)
@given(dst_day_cases())
def test_property_dst_days(case: tuple[Schedule, datetime, datetime]) -> None:
    assert_well_formed(*case)
    assert_complete(*case)


@settings(max_examples=40, deadline=None)
@given(cases(), st.floats(0, 1))
def test_property_ranges_compose(case: tuple[Schedule, datetime, datetime], cut: float) -> None:
    """Splitting a range never changes which slots exist (no dependence on query bounds)."""
    sched, start, end = case
    mid = start + (end - start) * cut
    whole = slots_between(sched, start=start, end=end)
    assert (
        slots_between(sched, start=start, end=mid) + slots_between(sched, start=mid, end=end)
        == whole
    )


@settings(max_examples=40, deadline=None)
@given(
    cases(),
    st.floats(0, 1),
    st.lists(st.tuples(st.floats(0, 1), st.integers(1, 600)), max_size=5),
)
def test_property_free_slots(
    case: tuple[Schedule, datetime, datetime], now_at: float, busy_spec: list[tuple[float, int]]
) -> None:
    sched, start, end = case
    span = end - start
    now = start + span * now_at
    busy = [(start + span * f, start + span * f + timedelta(minutes=m)) for f, m in busy_spec]
    free = free_slots(sched, start=start, end=end, now=now, busy=busy)
    every = slots_between(sched, start=start, end=end)
    assert set(free) <= set(every)
    for s in every:
        past = s.start < now
        clash = any(b0 < s.end and s.start < b1 for b0, b1 in busy)
        assert (s in free) == (not past and not clash)


@settings(max_examples=80, deadline=None)
@given(
    cases(),
    st.floats(0, 1),
    st.lists(
        st.tuples(st.floats(0, 1), st.integers(1, 600), st.sampled_from([None, -1, 1])),
        max_size=6,
    ),
)
def test_property_cached_days_give_the_free_slots(
    case: tuple[Schedule, datetime, datetime],
    now_at: float,
    busy_spec: list[tuple[float, int, int | None]],
) -> None:
    """What the slot cache keeps (each local day's slots minus appointments, with the holds
    over them, serialised, whenever it was computed) and composes at reading (range, now,
    holds that have not run out) is byte for byte `free_slots` through the response model."""
    sched, start, end = case
    span = end - start
    now = start + span * now_at
    # None: an appointment; -1 / 1: a hold that ran out a minute before now / runs out after.
    intervals = [
        (start + span * f, start + span * f + timedelta(minutes=m), hold)
        for f, m, hold in busy_spec
    ]
    appointments = [(b0, b1) for b0, b1, hold in intervals if hold is None]
    holds = [
        (b0.timestamp(), b1.timestamp(), (now + timedelta(minutes=hold)).timestamp())
        for b0, b1, hold in intervals
        if hold is not None
    ]
    length = sched.slot_minutes * 60
    days = []
    for day in slot_rules.local_days(sched.timezone, start=start, end=end):
        day_slots = open_slots(sched, day, busy=appointments)
        first = day_slots[0].start.timestamp() if day_slots else 0
        last = day_slots[-1].start.timestamp() + length if day_slots else 0
        days.append(cache.day_of(day_slots, [h for h in holds if h[0] < last and first < h[1]]))
    composed = answer.slots_json(
        days, length=length, start=start.timestamp(), end=end.timestamp(), now=now.timestamp()
    )
    live = [
        (datetime.fromtimestamp(h0, UTC), datetime.fromtimestamp(h1, UTC))
        for h0, h1, expires in holds
        if expires > now.timestamp()
    ]
    free = free_slots(sched, start=start, end=end, now=now, busy=appointments + live)
    expected = TypeAdapter(list[SlotRead]).dump_json(
        [SlotRead(start=s.start, end=s.end) for s in free]
    )
    assert b"[" + composed + b"]" == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1439), st.integers(0, 1439)), max_size=5))
def test_property_windows_problems_matches_minute_sets(pairs: list[tuple[int, int]]) -> None:
    windows = [Window(minute_time(a), minute_time(b)) for a, b in pairs]
    bad = [a >= b for a, b in pairs]
    minutes = [set(range(a, b)) for a, b in pairs]
    overlaps = sum(
        1
        for i in range(len(pairs))
        for j in range(i + 1, len(pairs))
        if not bad[i] and not bad[j] and minutes[i] & minutes[j]
    )
    assert len(windows_problems(windows)) == sum(bad) + overlaps


@settings(max_examples=60, deadline=None)
@given(DAY_WINDOWS)
def test_property_generated_windows_are_valid(windows: tuple[Window, ...]) -> None:
    assert windows_problems(windows) == []
