from __future__ import annotations

from pydantic import Field

from ehass.core.schemas import Page, ResponseModel, UtcDateTime
from ehass.notifications.models import DeliveryStatus, NotificationKind


class NotificationRead(ResponseModel):
    """A message in the outbox. What it says (names, times, address) is not shown here."""

    id: int
    kind: NotificationKind
    status: DeliveryStatus
    user_id: int = Field(description="The recipient")
    appointment_id: int | None
    message_id: str = Field(description="The email's Message-ID, the same on every resend")
    attempts: int
    due_at: UtcDateTime
    sent_at: UtcDateTime | None
    last_error: str | None
    request_id: str | None = Field(description="The request that caused the message")
    created_at: UtcDateTime


class NotificationList(Page[NotificationRead]):
    pass
