"""iCalendar documents for appointments (RFC 5545 with the iTIP methods of RFC 5546).

Pure: no I/O. An event's UID is stable for the appointment's whole life and its SEQUENCE
rises with each change, so a calendar app that imported the first invitation updates that
same event when a move or a cancellation arrives. Times are written in the doctor's zone
with its VTIMEZONE, so they stay right across daylight-saving changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vCalAddress, vText

PRODID = "-//EHASS//Appointment scheduling//EN"


@dataclass(frozen=True, slots=True)
class CalendarEvent:
    appointment_id: int
    sequence: int
    starts_at: datetime
    ends_at: datetime
    timezone: str
    doctor_name: str
    patient_name: str
    cancelled: bool = False


def uid(appointment_id: int, domain: str) -> str:
    return f"appointment-{appointment_id}@{domain}"


def document(
    events: Iterable[CalendarEvent],
    *,
    domain: str,
    stamp: datetime,
    method: str | None = None,
    organizer: str | None = None,
    attendee: str | None = None,
    name: str | None = None,
) -> bytes:
    """A VCALENDAR holding `events`; `method` REQUEST or CANCEL for an emailed invitation,
    none for a subscription feed."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    if method:
        calendar.add("method", method)
    if name:
        calendar.add("x-wr-calname", name)
    items = list(events)
    for item in items:
        calendar.add_component(
            _event(item, domain=domain, stamp=stamp, organizer=organizer, attendee=attendee)
        )
    if items:
        # The zone's rules for the span the events cover (a year either side), not 1970-2038.
        first = min(item.starts_at for item in items).date()
        last = max(item.ends_at for item in items).date()
        calendar.add_missing_timezones(
            first_date=first.replace(year=first.year - 1, day=1),
            last_date=last.replace(year=last.year + 1, day=1),
        )
    return calendar.to_ical()


def _event(
    item: CalendarEvent,
    *,
    domain: str,
    stamp: datetime,
    organizer: str | None,
    attendee: str | None,
) -> Event:
    zone = ZoneInfo(item.timezone)
    event = Event()
    event.add("uid", uid(item.appointment_id, domain))
    event.add("sequence", item.sequence)
    event.add("dtstamp", stamp)
    event.add("dtstart", item.starts_at.astimezone(zone))
    event.add("dtend", item.ends_at.astimezone(zone))
    # No reason and no specialty: a calendar is shared and synced far beyond this system.
    event.add("summary", f"Appointment with {item.doctor_name}")
    event.add("status", "CANCELLED" if item.cancelled else "CONFIRMED")
    event.add("transp", "OPAQUE")
    if organizer:
        event.add("organizer", _address(organizer, "EHASS"))
    if attendee:
        event.add("attendee", _address(attendee, item.patient_name))
    return event


def _address(email: str, name: str) -> vCalAddress:
    address = vCalAddress(f"mailto:{email}")
    address.params["cn"] = vText(name)
    return address
