"""iCalendar documents: stable UIDs, rising SEQUENCEs, and local times right across DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from icalendar import Calendar

from ehass.calendars import ics

STAMP = datetime(2026, 11, 30, 12, tzinfo=UTC)


def _event(at: datetime, zone: str, **overrides: object) -> ics.CalendarEvent:
    fields = {
        "appointment_id": 7,
        "sequence": 0,
        "starts_at": at,
        "ends_at": at + timedelta(minutes=30),
        "timezone": zone,
        "doctor_name": "Dr Ada Lovelace",
        "patient_name": "Grace Hopper",
    } | overrides
    return ics.CalendarEvent(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("at", "zone", "local"),
    [
        # The Monday after New York springs forward (8 March 2026): 09:00 EDT is 13:00 UTC.
        (datetime(2026, 3, 9, 13, tzinfo=UTC), "America/New_York", "20260309T090000"),
        # The Friday before: 09:00 EST is 14:00 UTC.
        (datetime(2026, 3, 6, 14, tzinfo=UTC), "America/New_York", "20260306T090000"),
        # Berlin falls back on 25 October 2026: 09:00 CET is 08:00 UTC on the Monday after.
        (datetime(2026, 10, 26, 8, tzinfo=UTC), "Europe/Berlin", "20261026T090000"),
        (datetime(2026, 10, 23, 7, tzinfo=UTC), "Europe/Berlin", "20261023T090000"),
    ],
)
def test_times_are_written_in_the_doctors_zone_across_dst(
    at: datetime, zone: str, local: str
) -> None:
    document = ics.document([_event(at, zone)], domain="clinic.example", stamp=STAMP)

    assert f"DTSTART;TZID={zone}:{local}".encode() in document
    calendar = Calendar.from_ical(document)
    [event] = calendar.walk("VEVENT")
    assert event.decoded("DTSTART") == at
    [timezone] = calendar.walk("VTIMEZONE")
    assert timezone["TZID"] == zone
    # Both the summer and the winter rules are there, so any calendar app can convert.
    assert {c.name for c in timezone.subcomponents} == {"STANDARD", "DAYLIGHT"}


def test_a_cancellation_keeps_the_uid_and_says_cancel() -> None:
    at = datetime(2026, 12, 3, 10, tzinfo=UTC)
    document = ics.document(
        [_event(at, "UTC", sequence=2, cancelled=True)],
        domain="clinic.example",
        stamp=STAMP,
        method="CANCEL",
        organizer="no-reply@clinic.example",
        attendee="grace@example.org",
    )

    calendar = Calendar.from_ical(document)
    assert calendar["METHOD"] == "CANCEL"
    [event] = calendar.walk("VEVENT")
    assert str(event["UID"]) == "appointment-7@clinic.example"
    assert event["SEQUENCE"] == 2
    assert event["STATUS"] == "CANCELLED"
    assert str(event["ATTENDEE"]) == "mailto:grace@example.org"
    assert "Dr Ada Lovelace" in str(event["SUMMARY"])


def test_a_feed_without_events_is_still_a_valid_calendar() -> None:
    calendar = Calendar.from_ical(
        ics.document([], domain="clinic.example", stamp=STAMP, name="My appointments")
    )
    assert calendar.walk("VEVENT") == []
    assert calendar["X-WR-CALNAME"] == "My appointments"
