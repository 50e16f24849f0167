from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from ehass.appointments.models import Appointment, Status
from ehass.availability.models import AvailabilityOverride, ScheduleVersion, WeeklyWindow
from ehass.core.pagination import possible_id
from ehass.doctors.models import Doctor
from ehass.users.models import User


async def active_doctor_version(
    session: AsyncSession, doctor_id: int
) -> tuple[Doctor, int | None] | None:
    """The doctor when active, with its schedule version (None when it has no row yet)."""
    if not possible_id(doctor_id):
        return None
    query = (
        select(Doctor, ScheduleVersion.version)
        .join(User, Doctor.user_id == User.id)
        .outerjoin(ScheduleVersion, ScheduleVersion.doctor_id == Doctor.id)
        .where(Doctor.id == doctor_id, User.is_active.is_(True))
    )
    row = (await session.execute(query)).first()
    return None if row is None else (row[0], row[1])


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
