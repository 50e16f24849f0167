from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from ehass.appointments.models import Appointment, Status
from ehass.calendars.ics import CalendarEvent
from ehass.calendars.models import CalendarFeed
from ehass.doctors.models import Doctor
from ehass.users.models import Patient, User

FEED_LIMIT = 500


def _events_query():  # type: ignore[no-untyped-def]
    doctor_user = aliased(User)
    patient_user = aliased(User)
    return (
        select(
            Appointment.id,
            Appointment.sequence,
            Appointment.scheduled_at,
            Appointment.ends_at,
            Appointment.status,
            Doctor.timezone,
            doctor_user.name,
            patient_user.name,
        )
        .join(Doctor, Doctor.id == Appointment.doctor_id)
        .join(doctor_user, doctor_user.id == Doctor.user_id)
        .join(Patient, Patient.id == Appointment.patient_id)
        .join(patient_user, patient_user.id == Patient.user_id)
    )


def _event(row: Sequence[object]) -> CalendarEvent:
    appointment_id, sequence, starts_at, ends_at, status, zone, doctor, patient = row
    return CalendarEvent(
        appointment_id=appointment_id,  # type: ignore[arg-type]
        sequence=sequence,  # type: ignore[arg-type]
        starts_at=starts_at,  # type: ignore[arg-type]
        ends_at=ends_at,  # type: ignore[arg-type]
        timezone=zone,  # type: ignore[arg-type]
        doctor_name=doctor,  # type: ignore[arg-type]
        patient_name=patient,  # type: ignore[arg-type]
        cancelled=status == Status.CANCELLED,
    )


async def event_of(session: AsyncSession, appointment_id: int) -> CalendarEvent | None:
    row = (await session.execute(_events_query().where(Appointment.id == appointment_id))).first()
    return None if row is None else _event(row)


async def upcoming_events(
    session: AsyncSession,
    *,
    since: datetime,
    patient_id: int | None = None,
    doctor_id: int | None = None,
) -> list[CalendarEvent]:
    query = _events_query().where(
        Appointment.status == Status.SCHEDULED, Appointment.scheduled_at >= since
    )
    if patient_id is not None:
        query = query.where(Appointment.patient_id == patient_id)
    elif doctor_id is not None:
        query = query.where(Appointment.doctor_id == doctor_id)
    else:
        return []
    rows = await session.execute(query.order_by(Appointment.scheduled_at).limit(FEED_LIMIT))
    return [_event(row) for row in rows]


async def feed_owner(
    session: AsyncSession, token_hash: str
) -> tuple[int, int | None, int | None] | None:
    """(user id, patient id, doctor id) of the active account this feed token belongs to."""
    row = (
        await session.execute(
            select(User.id, Patient.id, Doctor.id)
            .join(CalendarFeed, CalendarFeed.user_id == User.id)
            .outerjoin(Patient, Patient.user_id == User.id)
            .outerjoin(Doctor, Doctor.user_id == User.id)
            .where(CalendarFeed.token_hash == token_hash, User.is_active.is_(True))
        )
    ).first()
    return None if row is None else (row[0], row[1], row[2])


async def replace_feed(
    session: AsyncSession, *, user_id: int, token_hash: str, now: datetime
) -> None:
    await remove_feed(session, user_id=user_id)
    session.add(CalendarFeed(user_id=user_id, token_hash=token_hash, created_at=now))
    await session.flush()


async def remove_feed(session: AsyncSession, *, user_id: int) -> bool:
    result = await session.execute(delete(CalendarFeed).where(CalendarFeed.user_id == user_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def has_feed(session: AsyncSession, *, user_id: int) -> bool:
    return await session.get(CalendarFeed, user_id) is not None
