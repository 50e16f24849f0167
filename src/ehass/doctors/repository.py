from __future__ import annotations

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ehass.core.pagination import possible_id
from ehass.core.search import icontains
from ehass.doctors.models import Doctor
from ehass.users.models import User
from ehass.users.repository import lock_user

_COLUMNS = (Doctor.id, Doctor.user_id, User.name, Doctor.specialty, Doctor.timezone)


async def list_active(
    reader: AsyncConnection | AsyncSession,
    *,
    specialty: str | None,
    q: str | None,
    after_id: int | None,
    limit: int,
) -> list[Row]:
    query = select(*_COLUMNS).join(User, Doctor.user_id == User.id).where(User.is_active.is_(True))
    if specialty:
        query = query.where(func.lower(Doctor.specialty) == specialty.strip().lower())
    if q:
        query = query.where(icontains(User.name, q))
    if after_id is not None:
        query = query.where(Doctor.id > after_id)
    return list(await reader.execute(query.order_by(Doctor.id).limit(limit)))


async def get_active(reader: AsyncConnection | AsyncSession, doctor_id: int) -> Row | None:
    if not possible_id(doctor_id):
        return None
    query = (
        select(*_COLUMNS)
        .join(User, Doctor.user_id == User.id)
        .where(Doctor.id == doctor_id, User.is_active.is_(True))
    )
    return (await reader.execute(query)).first()


async def get_active_doctor(
    session: AsyncSession, doctor_id: int, *, for_update: bool = False
) -> Doctor | None:
    """The Doctor row when its account is active; `for_update` serialises bookings for it."""
    if not possible_id(doctor_id):
        return None
    if for_update:
        user_id = await session.scalar(select(Doctor.user_id).where(Doctor.id == doctor_id))
        if user_id is None:
            return None
        await lock_user(session, user_id)
    query = (
        select(Doctor)
        .join(User, Doctor.user_id == User.id)
        .where(Doctor.id == doctor_id, User.is_active.is_(True))
    )
    if for_update:
        query = query.with_for_update(of=Doctor)
    return (await session.execute(query)).scalar_one_or_none()
