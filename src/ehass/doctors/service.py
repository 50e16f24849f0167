from __future__ import annotations

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ehass.core.pagination import Page, after_id, encode_cursor
from ehass.doctors import repository
from ehass.errors import NotFoundError


class DoctorNotFoundError(NotFoundError):
    slug = "doctor-not-found"
    title = "Doctor not found"


async def list_doctors(
    reader: AsyncConnection | AsyncSession,
    *,
    specialty: str | None,
    q: str | None,
    limit: int,
    cursor: str | None,
) -> Page[Row]:
    last_id = after_id(cursor)
    rows = await repository.list_active(
        reader, specialty=specialty, q=q, after_id=last_id, limit=limit + 1
    )
    items = rows[:limit]
    return Page(items, encode_cursor([items[-1].id]) if len(rows) > limit else None)


async def get_doctor(reader: AsyncConnection | AsyncSession, *, doctor_id: int) -> Row:
    row = await repository.get_active(reader, doctor_id)
    if row is None:
        raise DoctorNotFoundError(f"No active doctor {doctor_id}.")
    return row
