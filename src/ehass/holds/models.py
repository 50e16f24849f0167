from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Computed, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ehass.core.base import Base, IntIdMixin, UTCDateTime


class HoldStatus(StrEnum):
    ACTIVE = "active"
    BOOKED = "booked"
    RELEASED = "released"
    EXPIRED = "expired"


class SlotHold(IntIdMixin, Base):
    """A free slot set aside for one patient for a few minutes (find, hold, book).

    Only `active` holds count, and only until `expires_at`; one that has run out is
    marked `expired` by whoever next takes the doctor's lock, or by the worker.
    """

    __tablename__ = "slot_holds"
    __table_args__ = (
        # Like appointments: at most one active hold per doctor and start, whatever races.
        UniqueConstraint("active_doctor", "scheduled_at", name="uq_slot_holds_active_doctor"),
        Index("ix_slot_holds_doctor_time", "doctor_id", "scheduled_at"),
        Index("ix_slot_holds_status_expires", "status", "expires_at"),
    )

    doctor_id: Mapped[int] = mapped_column(ForeignKey("doctors.id"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    scheduled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default=HoldStatus.ACTIVE)
    # Set when the hold is a waitlist offer.
    waitlist_entry_id: Mapped[int | None] = mapped_column(
        ForeignKey("waitlist_entries.id"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    active_doctor: Mapped[int | None] = mapped_column(
        Integer, Computed("CASE WHEN status = 'active' THEN doctor_id END", persisted=True)
    )
