from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import and_, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from ehass.appointments.models import Appointment, Status
from ehass.availability.models import (
    AvailabilityOverride,
    ScheduleDayVersion,
    ScheduleVersion,
    WeeklyWindow,
)
from ehass.core.pagination import possible_id
from ehass.doctors.models import Doctor
from ehass.users.models import User


@dataclass(frozen=True, slots=True)
class DoctorVersions:
    """An active doctor's schedule rules with the versions the slot cache is keyed by."""

    id: int
    timezone: str
    slot_minutes: int
    hours_version: int | None  # None: no row yet, so nothing may be served from a cache
    day_versions: dict[date, int]  # the days with a row; any other day is at 0


async def doctor_versions(
    session: AsyncSession, doctor_id: int, *, first: date, last: date
) -> DoctorVersions | None:
    """The doctor when active, its hours version and the versions of its days in
    [first, last], in one statement (one row per day that has a version row)."""
    if not possible_id(doctor_id):
        return None
    days = ScheduleDayVersion
    query = (
        select(
            Doctor.id,
            Doctor.timezone,
            Doctor.slot_minutes,
            ScheduleVersion.version.label("hours_version"),
            days.local_date,
            days.version.label("day_version"),
        )
        .join(User, Doctor.user_id == User.id)
        .outerjoin(ScheduleVersion, ScheduleVersion.doctor_id == Doctor.id)
        .outerjoin(
            days,
            and_(days.doctor_id == Doctor.id, days.local_date >= first, days.local_date <= last),
        )
        .where(Doctor.id == doctor_id, User.is_active.is_(True))
    )
    rows = (await session.execute(query)).all()
    if not rows:
        return None
    top = rows[0]
    return DoctorVersions(
        id=top.id,
        timezone=top.timezone,
        slot_minutes=top.slot_minutes,
        hours_version=top.hours_version,
        day_versions={
            row.local_date: row.day_version for row in rows if row.local_date is not None
        },
    )


async def weekly_windows(session: AsyncSession, doctor_id: int) -> list[WeeklyWindow]:
    query = (
        select(WeeklyWindow)
        .where(WeeklyWindow.doctor_id == doctor_id)
        .order_by(WeeklyWindow.weekday, WeeklyWindow.start_time)
    )
    return list((await session.execute(query)).scalars())


async def overrides_between(
    session: AsyncSession, doctor_id: int, first: date, last: date | None = None
) -> list[AvailabilityOverride]:
    query = select(AvailabilityOverride).where(
        AvailabilityOverride.doctor_id == doctor_id, AvailabilityOverride.on_date >= first
    )
    if last is not None:
        query = query.where(AvailabilityOverride.on_date <= last)
    return list((await session.execute(query.order_by(AvailabilityOverride.on_date))).scalars())


async def replace(
    session: AsyncSession,
    doctor_id: int,
    *,
    weekly: list[WeeklyWindow],
    overrides: list[AvailabilityOverride],
) -> None:
    own = {"schedule_of": doctor_id}  # availability/versions.py
    await session.execute(
        delete(WeeklyWindow).where(WeeklyWindow.doctor_id == doctor_id).execution_options(**own)
    )
    await session.execute(
        delete(AvailabilityOverride)
        .where(AvailabilityOverride.doctor_id == doctor_id)
        .execution_options(**own)
    )
    session.add_all([*weekly, *overrides])
    await session.flush()


async def busy_intervals(
    session: AsyncSession, doctor_id: int, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """Scheduled appointments of the doctor that overlap [start, end)."""
    query = select(Appointment.scheduled_at, Appointment.ends_at).where(
        Appointment.doctor_id == doctor_id,
        Appointment.status == Status.SCHEDULED,
        Appointment.scheduled_at < end,
        Appointment.ends_at > start,
    )
    return [(row.scheduled_at, row.ends_at) for row in await session.execute(query)]


async def scheduled_from(
    session: AsyncSession, doctor_id: int, start: datetime
) -> list[Appointment]:
    query = (
        select(Appointment)
        .where(
            Appointment.doctor_id == doctor_id,
            Appointment.status == Status.SCHEDULED,
            Appointment.scheduled_at >= start,
        )
        .order_by(Appointment.scheduled_at)
    )
    return list((await session.execute(query)).scalars())
