from __future__ import annotations

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ehass.core.pagination import possible_id
from ehass.core.search import icontains
from ehass.doctors.models import Doctor
from ehass.users.models import User
from ehass.users.repository import lock_account

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


async def doctor_row(session: AsyncSession, doctor_id: int) -> Doctor | None:
    """The Doctor row as committed now (not the identity map's copy): read after its
    account's lock, it is the version every writer of it has finished with."""
    query = select(Doctor).where(Doctor.id == doctor_id)
    return await session.scalar(query.execution_options(populate_existing=True))


async def get_active_doctor(
    session: AsyncSession, doctor_id: int, *, for_update: bool = False
) -> Doctor | None:
    """The Doctor row when its account is active; `for_update` locks the account row, which
    serialises everything that hands out or frees the doctor's time.

    The doctors row itself is not locked: every writer of it (users.service's update,
    availability's settings) locks the account first, so the account lock alone orders them.
    """
    if not possible_id(doctor_id):
        return None
    if for_update:
        user_id = await session.scalar(select(Doctor.user_id).where(Doctor.id == doctor_id))
        if user_id is None or not await lock_account(session, user_id):
            return None
        return await doctor_row(session, doctor_id)
    query = (
        select(Doctor)
        .join(User, Doctor.user_id == User.id)
        .where(Doctor.id == doctor_id, User.is_active.is_(True))
    )
    return (await session.execute(query)).scalar_one_or_none()
