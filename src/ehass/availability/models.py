from __future__ import annotations

from datetime import date, time
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    ForeignKey,
    Integer,
    SmallInteger,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ehass.core.base import Base, IntIdMixin


class WeeklyWindow(IntIdMixin, Base):
    """A recurring working window, in the doctor's wall-clock time."""

    __tablename__ = "weekly_windows"

    doctor_id: Mapped[int] = mapped_column(ForeignKey("doctors.id"), index=True)
    weekday: Mapped[int] = mapped_column(SmallInteger)  # 0 = Monday, as date.weekday()
    start_time: Mapped[time] = mapped_column(Time)
    end_time: Mapped[time] = mapped_column(Time)


class AvailabilityOverride(IntIdMixin, Base):
    """One local date whose windows replace the weekly ones; an empty list is a day off."""

    __tablename__ = "availability_overrides"
    __table_args__ = (UniqueConstraint("doctor_id", "on_date"),)

    doctor_id: Mapped[int] = mapped_column(ForeignKey("doctors.id"))
    on_date: Mapped[date] = mapped_column(Date)
    # [{"start": "HH:MM", "end": "HH:MM"}, ...]: read whole, never queried inside.
    windows: Mapped[list[dict[str, Any]]] = mapped_column(JSON)


class ScheduleVersion(Base):
    """Raised by every commit that changes a doctor's free time (availability/versions.py).

    No foreign key: the row is bookkeeping for caches, and is written last in a transaction,
    after everything it counts. A doctor without a row is never served from a cache.
    """

    __tablename__ = "schedule_versions"

    doctor_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
