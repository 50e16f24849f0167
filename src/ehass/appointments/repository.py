from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ehass.appointments.models import Appointment, IdempotencyRecord, Status
from ehass.doctors.models import Doctor
from ehass.users.models import Patient, User


async def get(
    session: AsyncSession, appointment_id: int, *, for_update: bool = False
) -> Appointment | None:
    query = select(Appointment).where(Appointment.id == appointment_id)
    if for_update:
        # populate_existing: a locked read must not be answered from the identity map.
        query = query.with_for_update().execution_options(populate_existing=True)
    return (await session.execute(query)).scalar_one_or_none()


async def account_ids(
    session: AsyncSession, *, doctor_id: int, patient_id: int
) -> tuple[int | None, int | None]:
    """The account ids of a doctor and a patient, in one round trip; None for an unknown one.
    Read without locks: an account id is set when the profile is created and never changes."""
    doctor_user = select(Doctor.user_id).where(Doctor.id == doctor_id).scalar_subquery()
    patient_user = select(Patient.user_id).where(Patient.id == patient_id).scalar_subquery()
    row = (await session.execute(select(doctor_user, patient_user))).one()
    return row[0], row[1]


async def doctor_accounts_of_patient(
    session: AsyncSession, *, user_id: int, now: datetime
) -> list[int]:
    """The account ids, ascending, of the doctors a patient's account has upcoming scheduled
    appointments with. Read without locks."""
    query = (
        select(Doctor.user_id)
        .join(Appointment, Appointment.doctor_id == Doctor.id)
        .join(Patient, Patient.id == Appointment.patient_id)
        .where(
            Patient.user_id == user_id,
            Appointment.status == Status.SCHEDULED,
            Appointment.scheduled_at > now,
        )
        .distinct()
        .order_by(Doctor.user_id)
    )
    return list((await session.scalars(query)).all())


async def patient_account_id(session: AsyncSession, patient_id: int) -> int | None:
    return await session.scalar(select(Patient.user_id).where(Patient.id == patient_id))


async def has_overlap(
    session: AsyncSession,
    *,
    start: datetime,
    end: datetime,
    doctor_id: int | None = None,
    patient_id: int | None = None,
    excluding: int | None = None,
) -> bool:
    conditions = [
        Appointment.status == Status.SCHEDULED,
        Appointment.scheduled_at < end,
        Appointment.ends_at > start,
    ]
    if doctor_id is not None:
        conditions.append(Appointment.doctor_id == doctor_id)
    if patient_id is not None:
        conditions.append(Appointment.patient_id == patient_id)
    if excluding is not None:
        conditions.append(Appointment.id != excluding)
    return bool(await session.scalar(select(exists().where(*conditions))))


async def list_appointments(
    session: AsyncSession,
    *,
    doctor_id: int | None,
    patient_id: int | None,
    status: str | None,
    start: datetime | None,
    end: datetime | None,
    after: tuple[datetime, int] | None,
    limit: int,
) -> list[Appointment]:
    query = select(Appointment)
    if doctor_id is not None:
        query = query.where(Appointment.doctor_id == doctor_id)
    if patient_id is not None:
        query = query.where(Appointment.patient_id == patient_id)
    if status is not None:
        query = query.where(Appointment.status == status)
    if start is not None:
        query = query.where(Appointment.scheduled_at >= start)
    if end is not None:
        query = query.where(Appointment.scheduled_at < end)
    if after is not None:
        at, last_id = after
        query = query.where(
            or_(
                Appointment.scheduled_at > at,
                (Appointment.scheduled_at == at) & (Appointment.id > last_id),
            )
        )
    query = query.order_by(Appointment.scheduled_at, Appointment.id).limit(limit)
    return list((await session.execute(query)).scalars())


async def cancel_future(
    session: AsyncSession,
    *,
    now: datetime,
    patient_id: int | None,
    doctor_id: int | None,
) -> list[Appointment]:
    """Cancels the upcoming scheduled appointments of a patient or doctor; returns them."""
    owners = []
    if patient_id is not None:
        owners.append(Appointment.patient_id == patient_id)
    if doctor_id is not None:
        owners.append(Appointment.doctor_id == doctor_id)
    if not owners:
        return []
    upcoming = (
        Appointment.status == Status.SCHEDULED,
        Appointment.scheduled_at > now,
        or_(*owners),
    )
    rows = list(
        (await session.scalars(select(Appointment).where(*upcoming).with_for_update())).all()
    )
    for appointment in rows:
        appointment.status = Status.CANCELLED
        appointment.updated_at = now
        appointment.sequence += 1
    await session.flush()
    return rows


async def participant_users(
    session: AsyncSession, *, doctor_user_id: int, patient_id: int
) -> tuple[User, User]:
    """The accounts of an appointment's doctor and patient: (doctor's, patient's)."""
    patient_user_id = select(Patient.user_id).where(Patient.id == patient_id).scalar_subquery()
    users = {
        user.id: user
        for user in (
            await session.scalars(
                select(User).where(or_(User.id == doctor_user_id, User.id == patient_user_id))
            )
        ).all()
    }
    patient_user = next(user for uid, user in users.items() if uid != doctor_user_id)
    return users[doctor_user_id], patient_user


async def find_idempotency(
    session: AsyncSession, *, user_id: int, key: str, fresh: bool = False
) -> IdempotencyRecord | None:
    query = select(IdempotencyRecord).where(
        IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == key
    )
    if fresh:
        # Another transaction wrote it: the identity map's copy (if any) is out of date.
        query = query.execution_options(populate_existing=True)
    return (await session.execute(query)).scalar_one_or_none()


async def delete_idempotency(session: AsyncSession, *, record_id: int) -> None:
    await session.execute(
        delete(IdempotencyRecord)
        .where(IdempotencyRecord.id == record_id)
        # "evaluate": the record also leaves the session, so a new one may take its key.
        .execution_options(synchronize_session="evaluate")
    )


async def purge_idempotency(session: AsyncSession, *, before: datetime, limit: int) -> int:
    """Deletes up to `limit` answers created at or before `before`; returns how many."""
    expired = (
        select(IdempotencyRecord.id)
        .where(IdempotencyRecord.created_at <= before)
        .order_by(IdempotencyRecord.id)
        .limit(limit)
    )
    ids = list((await session.scalars(expired)).all())
    if ids:
        await session.execute(
            delete(IdempotencyRecord)
            .where(IdempotencyRecord.id.in_(ids))
            .execution_options(synchronize_session=False)
        )
    return len(ids)


async def of_person(
    session: AsyncSession, *, patient_id: int | None, doctor_id: int | None
) -> list[Appointment]:
    """Every appointment the person booked or attends, in time order (the data export)."""
    owners = []
    if patient_id is not None:
        owners.append(Appointment.patient_id == patient_id)
    if doctor_id is not None:
        owners.append(Appointment.doctor_id == doctor_id)
    if not owners:
        return []
    query = select(Appointment).where(or_(*owners)).order_by(Appointment.scheduled_at)
    return list((await session.scalars(query)).all())
