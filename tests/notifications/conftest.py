"""Calendar attachments; the SMTP server and worker fixtures live in tests/mail.py."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

from tests.mail import Inbox, SmtpServer

__all__ = ["Inbox", "SmtpServer", "calendar_of"]


def calendar_of(message: EmailMessage) -> tuple[str, Any]:
    """The `.ics` attachment's METHOD parameter and the parsed VCALENDAR."""
    from icalendar import Calendar

    for part in message.iter_attachments():
        if part.get_content_type() == "text/calendar":
            return part.get_param("method"), Calendar.from_ical(part.get_content())
    raise AssertionError("the message has no text/calendar attachment")
