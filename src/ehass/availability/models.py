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
    """The doctor's hours version: raised by every commit that changes what all of the
    doctor's days are built from (hours, overrides, zone, slot length), or by a bulk
    statement that names no doctor (availability/versions.py).

    No foreign key: the row is bookkeeping for caches, and is written last in a transaction,
    after everything it counts. A doctor without a row is never served from a cache.
    """

    __tablename__ = "schedule_versions"

    doctor_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger, default=0)


class ScheduleDayVersion(Base):
    """One local day's version: raised by every commit that changes an appointment or a
    hold whose time overlaps a slot of that day (availability/versions.py). A day without
    a row is at version 0; rows are only ever raised, never deleted.
    """

    __tablename__ = "schedule_day_versions"

    doctor_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    local_date: Mapped[date] = mapped_column(Date, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
