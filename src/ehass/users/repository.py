from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from ehass.appointments.models import Appointment, Status
from ehass.core.pagination import possible_id
from ehass.core.search import icontains
from ehass.users.models import Patient, User


async def lock_user(session: AsyncSession, user_id: int) -> None:
    """Locks an account row. Every locking path takes the account before its doctor or
    patient row (MariaDB locks every row a locking join reads): one order, no deadlocks."""
    await session.execute(select(User.id).where(User.id == user_id).with_for_update())


async def lock_account(
    session: AsyncSession, user_id: int, *, skip_locked: bool = False
) -> bool | None:
    """Locks an account row and says whether it is active; None when there is no such
    account, or (with `skip_locked`) when another transaction holds it."""
    query = select(User.is_active).where(User.id == user_id)
    return await session.scalar(query.with_for_update(skip_locked=skip_locked))


async def get_user(session: AsyncSession, user_id: int, *, for_update: bool = False) -> User | None:
    if not possible_id(user_id):
        return None
    query = (
        select(User)
        .where(User.id == user_id)
        .options(joinedload(User.patient), joinedload(User.doctor))
    )
    if for_update:
        query = query.with_for_update(of=User)
    return (await session.execute(query)).scalar_one_or_none()


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    query = (
        select(User)
        .where(User.email == email)
        .options(joinedload(User.patient), joinedload(User.doctor))
    )
    return (await session.execute(query)).scalar_one_or_none()


async def email_taken(session: AsyncSession, email: str, *, other_than: int | None = None) -> bool:
    query = select(exists().where(User.email == email, User.id != (other_than or 0)))
    return bool(await session.scalar(query))


async def doctor_sees_patient(session: AsyncSession, *, doctor_id: int, patient_id: int) -> bool:
    # A cancelled booking gives no standing to read the patient's record.
    query = select(
        exists().where(
            Appointment.doctor_id == doctor_id,
            Appointment.patient_id == patient_id,
            Appointment.status != Status.CANCELLED,
        )
    )
    return bool(await session.scalar(query))


async def list_users(
    session: AsyncSession,
    *,
    role: str | None,
    is_active: bool | None,
    q: str | None,
    after_id: int | None,
    limit: int,
) -> list[User]:
    query = select(User).options(joinedload(User.patient), joinedload(User.doctor))
    if role is not None:
        query = query.where(User.role == role)
    if is_active is not None:
        query = query.where(User.is_active == is_active)
    if q:
        query = query.where(icontains(User.name, q) | icontains(User.email, q))
    if after_id is not None:
        query = query.where(User.id > after_id)
    query = query.order_by(User.id).limit(limit)
    return list((await session.execute(query)).scalars().unique())


async def get_patient(session: AsyncSession, patient_id: int) -> Patient | None:
    return await session.get(Patient, patient_id) if possible_id(patient_id) else None


async def patient_names(
    session: AsyncSession, patient_ids: set[int], *, doctor_id: int | None = None
) -> dict[int, str]:
    """Patient id -> name; with `doctor_id`, only patients with a booking at that doctor."""
    query = (
        select(Patient.id, User.name)
        .join(User, Patient.user_id == User.id)
        .where(Patient.id.in_(sorted(patient_ids)))
    )
    if doctor_id is not None:
        query = query.where(
            exists().where(
                Appointment.doctor_id == doctor_id,
                Appointment.patient_id == Patient.id,
                Appointment.status != Status.CANCELLED,
            )
        )
    return {row.id: row.name for row in await session.execute(query)}
