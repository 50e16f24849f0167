from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Computed,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ehass.core.base import Base, Encrypted, EncryptedJSON, IntIdMixin, UTCDateTime


class Status(StrEnum):
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    NO_SHOW = "no_show"


class Appointment(IntIdMixin, Base):
    __tablename__ = "appointments"
    __table_args__ = (
        # The last guard against double booking. MySQL has no partial indexes, so these
        # generated columns hold the owner's id only while the appointment is scheduled;
        # NULLs never collide in a unique index, so cancelled rows free the slot.
        UniqueConstraint("doctor_slot", "scheduled_at", name="uq_appointments_doctor_slot"),
        UniqueConstraint("patient_slot", "scheduled_at", name="uq_appointments_patient_slot"),
        Index("ix_appointments_doctor_time", "doctor_id", "scheduled_at"),
        Index("ix_appointments_patient_time", "patient_id", "scheduled_at"),
        Index("ix_appointments_time", "scheduled_at"),
    )

    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    doctor_id: Mapped[int] = mapped_column(ForeignKey("doctors.id"))
    scheduled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default=Status.SCHEDULED)
    # Health data: encrypted at rest (AES-GCM, see core/crypto.py).
    reason: Mapped[str | None] = mapped_column(Encrypted("appointments.reason"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The iCalendar SEQUENCE: raised on every move or cancellation, so calendar apps
    # replace the event they hold instead of adding a second one.
    sequence: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    doctor_slot: Mapped[int | None] = mapped_column(
        Integer, Computed("CASE WHEN status = 'scheduled' THEN doctor_id END", persisted=True)
    )
    patient_slot: Mapped[int | None] = mapped_column(
        Integer, Computed("CASE WHEN status = 'scheduled' THEN patient_id END", persisted=True)
    )


class IdempotencyRecord(IntIdMixin, Base):
    """The first response to a POST /appointments carrying an Idempotency-Key."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("user_id", "key"),)

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    # The first answer quotes the appointment's reason: encrypted like the reason itself.
    response_body: Mapped[dict[str, Any] | None] = mapped_column(
        EncryptedJSON("idempotency_records.response_body")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
