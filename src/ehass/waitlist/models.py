from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Date, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from ehass.core.base import Base, IntIdMixin, UTCDateTime


class WaitlistStatus(StrEnum):
    WAITING = "waiting"
    # Holding a slot offered to them; back to waiting if the hold runs out.
    OFFERED = "offered"
    BOOKED = "booked"
    LEFT = "left"


class WaitlistEntry(IntIdMixin, Base):
    """A patient waiting for any free slot with a doctor between two dates (the doctor's
    local dates, both included). First come, first offered: the line is the id order."""

    __tablename__ = "waitlist_entries"
    __table_args__ = (Index("ix_waitlist_entries_line", "doctor_id", "status", "id"),)

    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    doctor_id: Mapped[int] = mapped_column(ForeignKey("doctors.id"))
    from_date: Mapped[date] = mapped_column(Date)
    to_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default=WaitlistStatus.WAITING)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
