"""What each notification says: subject, text and calendar attachment. Pure: no I/O.

Subjects and the opening line (what a phone shows as the preview) carry no health
information: no reason, no specialty. The payload was fixed when the message was caused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any
from zoneinfo import ZoneInfo

from ehass.calendars import ics
from ehass.notifications.models import NotificationKind

# Messages about the account itself rather than an appointment: no calendar, no footer.
ACCOUNT_KINDS = frozenset({NotificationKind.PASSWORD_RESET, NotificationKind.VERIFY_EMAIL})


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A claimed notification, detached from the session that claimed it."""

    id: int
    kind: str
    message_id: str
    payload: dict[str, Any]
    request_id: str | None
    created_at: datetime
    attempts: int = 1


def _when(payload: dict[str, Any], field: str = "scheduled_at") -> str:
    zone = ZoneInfo(payload["timezone"])
    local = datetime.fromisoformat(payload[field]).astimezone(zone)
    return f"{local:%A %d %B %Y at %H:%M} ({payload['timezone']})"


def subject(kind: str, payload: dict[str, Any]) -> str:
    match kind:
        case NotificationKind.BOOKED:
            return "Appointment confirmed"
        case NotificationKind.RESCHEDULED:
            return "Appointment moved"
        case NotificationKind.CANCELLED:
            return "Appointment cancelled"
        case NotificationKind.REMINDER:
            # Short enough never to be folded; the text gives the zone.
            local = datetime.fromisoformat(payload["scheduled_at"]).astimezone(
                ZoneInfo(payload["timezone"])
            )
            return f"Reminder: your appointment on {local:%a %d %b %Y at %H:%M}"
        case NotificationKind.WAITLIST_OFFER:
            return "A time has opened up for you"
        case NotificationKind.PASSWORD_RESET:
            return "Reset your password"
        case NotificationKind.VERIFY_EMAIL:
            return "Confirm your email address"
    raise ValueError(f"unknown notification kind {kind!r}")


def _account_text(kind: str, payload: dict[str, Any]) -> str:
    match kind:
        case NotificationKind.PASSWORD_RESET:
            return (
                "Someone asked to reset the password of your EHASS account. To choose a new "
                f"one, open this link within {payload['valid_minutes']} minutes:\n"
                f"{payload['link']}\n\n"
                "The link works once. If you did not ask, ignore this message: your password "
                "stays as it is."
            )
        case NotificationKind.VERIFY_EMAIL:
            return (
                "Please confirm that this address belongs to your EHASS account by opening "
                f"this link within {payload['valid_hours']} hours:\n{payload['link']}\n\n"
                "If you have no EHASS account, ignore this message."
            )
    raise ValueError(f"unknown notification kind {kind!r}")


def text(kind: str, payload: dict[str, Any], *, public_url: str) -> str:
    greeting = f"Hello {payload['name']},\n\n"
    if kind in ACCOUNT_KINDS:
        return f"{greeting}{_account_text(kind, payload)}\n"
    as_doctor = payload.get("role") == "doctor"
    with_whom = payload["patient_name"] if as_doctor else payload["doctor_name"]
    match kind:
        case NotificationKind.BOOKED:
            body = f"Your appointment with {with_whom} on {_when(payload)} is booked."
        case NotificationKind.RESCHEDULED:
            body = (
                f"Your appointment with {with_whom} has moved from "
                f"{_when(payload, 'previous_at')} to {_when(payload)}."
            )
        case NotificationKind.CANCELLED:
            by = {"deactivation": "because an account was closed"}.get(
                payload.get("by", ""), f"by the {payload.get('by', 'practice')}"
            )
            body = f"Your appointment with {with_whom} on {_when(payload)} was cancelled {by}."
        case NotificationKind.REMINDER:
            body = f"This is a reminder of your appointment with {with_whom} on {_when(payload)}."
        case NotificationKind.WAITLIST_OFFER:
            body = (
                f"A time with {payload['doctor_name']} is free on {_when(payload)}. It is held "
                f"for you until {_when(payload, 'hold_expires_at')}; book it here:\n"
                f"{payload['link']}"
            )
        case _:
            raise ValueError(f"unknown notification kind {kind!r}")
    return f"{greeting}{body}\n\nManage your appointments: {public_url.rstrip('/')}/\n"


def _calendar(item: Outgoing, *, domain: str, organizer: str) -> tuple[bytes, str] | None:
    payload = item.payload
    if "appointment_id" not in payload or item.kind == NotificationKind.WAITLIST_OFFER:
        return None
    cancelled = item.kind == NotificationKind.CANCELLED
    method = "CANCEL" if cancelled else "REQUEST"
    event = ics.CalendarEvent(
        appointment_id=payload["appointment_id"],
        sequence=payload["sequence"],
        starts_at=datetime.fromisoformat(payload["scheduled_at"]),
        ends_at=datetime.fromisoformat(payload["ends_at"]),
        timezone=payload["timezone"],
        doctor_name=payload["doctor_name"],
        patient_name=payload["patient_name"],
        cancelled=cancelled,
    )
    document = ics.document(
        [event],
        domain=domain,
        stamp=item.created_at,
        method=method,
        organizer=organizer,
        attendee=payload["to"] if payload.get("role") == "patient" else None,
    )
    return document, method


def email(item: Outgoing, *, sender: str, domain: str, public_url: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = item.payload["to"]
    message["Subject"] = subject(item.kind, item.payload)
    message["Message-ID"] = item.message_id
    message["Date"] = format_datetime(item.created_at)
    message["Auto-Submitted"] = "auto-generated"
    if item.request_id:
        message["X-EHASS-Request-ID"] = item.request_id
    message.set_content(text(item.kind, item.payload, public_url=public_url))
    organizer = sender.rsplit("<", 1)[-1].rstrip(">").strip()
    if attachment := _calendar(item, domain=domain, organizer=organizer):
        document, method = attachment
        message.add_attachment(
            document,
            maintype="text",
            subtype="calendar",
            filename="appointment.ics",
            params={"method": method, "charset": "utf-8"},
        )
    return message
