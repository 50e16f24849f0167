from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ehass.core.base import Base, EncryptedJSON, IntIdMixin, UTCDateTime


class NotificationKind(StrEnum):
    BOOKED = "appointment.booked"
    RESCHEDULED = "appointment.rescheduled"
    CANCELLED = "appointment.cancelled"
    REMINDER = "appointment.reminder"
    WAITLIST_OFFER = "waitlist.offer"
    # Carry a single-use link (auth/recovery.py); the delivery log redacts it.
    PASSWORD_RESET = "auth.password_reset"  # noqa: S105 - a kind name
    VERIFY_EMAIL = "auth.verify_email"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    # No SMTP server is configured: the message went to the log.
    LOGGED = "logged"
    # Given up after `notification_max_attempts` failures: the dead-letter state.
    DEAD = "dead"
    # Never to be sent: a reminder for an appointment that moved or was cancelled.
    CANCELLED = "cancelled"


class Notification(IntIdMixin, Base):
    """One outgoing message: the transactional outbox.

    Written in the same transaction as the change that causes it, delivered afterwards by
    a worker (`ehass worker`, or the one inside `ehass serve` on SQLite).
    """

    __tablename__ = "notifications"
    __table_args__ = (
        # The worker's claim: pending rows in due order.
        Index("ix_notifications_status_due", "status", "due_at"),
        Index("ix_notifications_appointment", "appointment_id", "kind"),
    )

    kind: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    # Stable across resends, so a message sent twice after a crash is recognisably one.
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    # What the message says, fixed when it was caused (recipient, times, names): it quotes
    # personal data, so it is encrypted at rest like the other health-adjacent columns.
    payload: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON("notifications.payload"))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # A worker that claims the row owns it until then; a crashed worker's claim lapses.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    request_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WorkerHeartbeat(Base):
    """The last sign of life of each worker, shown by GET /admin/health."""

    __tablename__ = "worker_heartbeats"

    worker_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    embedded: Mapped[bool] = mapped_column(default=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
