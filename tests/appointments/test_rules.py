"""The pure booking rules: no database, time always passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ehass.appointments.models import Status
from ehass.appointments.rules import can_record_outcome, overlaps, within_notice

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
NOTICE = timedelta(hours=24)

instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
)
lengths = st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(hours=8))
offsets = st.timedeltas(min_value=-timedelta(days=30), max_value=timedelta(days=30))


def _shares_an_instant(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> bool:
    # Independent of the implementation: the latest start comes before the earliest end.
    return max(a[0], b[0]) < min(a[1], b[1])


@given(instants, lengths, instants, lengths)
def test_overlaps_is_symmetric(a_start, a_len, b_start, b_len):
    a_end, b_end = a_start + a_len, b_start + b_len
    assert overlaps(a_start, a_end, b_start, b_end) == overlaps(b_start, b_end, a_start, a_end)


@given(instants, lengths, instants, lengths)
def test_overlaps_means_sharing_an_instant(a_start, a_len, b_start, b_len):
    a, b = (a_start, a_start + a_len), (b_start, b_start + b_len)
    assert overlaps(*a, *b) == _shares_an_instant(a, b)


@given(instants, lengths, lengths)
def test_touching_intervals_do_not_overlap(start, first_len, second_len):
    middle = start + first_len
    assert not overlaps(start, middle, middle, middle + second_len)
    assert not overlaps(middle, middle + second_len, start, middle)


@given(instants, lengths)
def test_an_interval_overlaps_itself(start, length):
    assert overlaps(start, start + length, start, start + length)


@given(instants, lengths, st.integers(min_value=1, max_value=59))
def test_an_interval_overlaps_one_starting_inside_it(start, length, minutes):
    inner = start + min(length - timedelta(seconds=1), timedelta(minutes=minutes))
    assert overlaps(start, start + length, inner, inner + timedelta(minutes=30))


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((9, 0, 9, 30), (9, 30, 10, 0), False),  # back to back
        ((9, 0, 9, 30), (9, 15, 9, 45), True),  # partial
        ((9, 0, 10, 0), (9, 15, 9, 45), True),  # containment
        ((9, 15, 9, 45), (9, 0, 10, 0), True),  # contained
        ((9, 0, 9, 30), (10, 0, 10, 30), False),  # apart
    ],
)
def test_overlaps_examples(a, b, expected):
    def at(hour, minute):
        return datetime(2026, 12, 1, hour, minute, tzinfo=UTC)

    assert overlaps(at(*a[:2]), at(*a[2:]), at(*b[:2]), at(*b[2:])) is expected


@given(offsets)
def test_within_notice_is_less_than_the_notice_ahead(ahead):
    assert within_notice(NOW + ahead, now=NOW, notice=NOTICE) == (ahead < NOTICE)


def test_within_notice_edges():
    second = timedelta(seconds=1)
    assert within_notice(NOW + NOTICE - second, now=NOW, notice=NOTICE)
    # "Within 24 h" means less than 24 h away: exactly 24 h ahead may still be changed.
    assert not within_notice(NOW + NOTICE, now=NOW, notice=NOTICE)
    assert not within_notice(NOW + NOTICE + second, now=NOW, notice=NOTICE)
    assert within_notice(NOW - timedelta(hours=1), now=NOW, notice=NOTICE)  # already started


@given(offsets)
def test_zero_notice_only_refuses_what_has_started(ahead):
    assert within_notice(NOW + ahead, now=NOW, notice=timedelta(0)) == (ahead < timedelta(0))


@given(offsets)
def test_outcome_only_once_a_scheduled_appointment_has_started(ahead):
    starts_at = NOW + ahead
    assert can_record_outcome(Status.SCHEDULED, starts_at, now=NOW) == (starts_at <= NOW)
    # The database hands back plain strings.
    assert can_record_outcome("scheduled", starts_at, now=NOW) == (starts_at <= NOW)


@pytest.mark.parametrize("status", [Status.CANCELLED, Status.COMPLETED, Status.NO_SHOW])
@pytest.mark.parametrize("ago", [timedelta(0), timedelta(hours=1), timedelta(days=3)])
def test_no_outcome_for_an_appointment_that_is_not_scheduled(status, ago):
    assert not can_record_outcome(status, NOW - ago, now=NOW)
    assert not can_record_outcome(str(status), NOW - ago, now=NOW)


def test_outcome_at_the_start_instant():
    assert can_record_outcome(Status.SCHEDULED, NOW, now=NOW)
    assert not can_record_outcome(Status.SCHEDULED, NOW + timedelta(seconds=1), now=NOW)
