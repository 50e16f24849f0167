from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ehass.waitlist.models import WaitlistEntry, WaitlistStatus


async def get(
    session: AsyncSession, entry_id: int, *, for_update: bool = False
) -> WaitlistEntry | None:
    query = select(WaitlistEntry).where(WaitlistEntry.id == entry_id)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    return await session.scalar(query)


async def waiting_line(
    session: AsyncSession, *, doctor_id: int, on: date | None = None, limit: int = 50
) -> Sequence[WaitlistEntry]:
    """Who waits for this doctor, first come first; only those whose range holds `on`."""
    query = select(WaitlistEntry).where(
        WaitlistEntry.doctor_id == doctor_id, WaitlistEntry.status == WaitlistStatus.WAITING
    )
    if on is not None:
        query = query.where(WaitlistEntry.from_date <= on, WaitlistEntry.to_date >= on)
    return (await session.scalars(query.order_by(WaitlistEntry.id).limit(limit))).all()


async def doctors_with_waiting(session: AsyncSession, *, today: date, limit: int) -> list[int]:
    rows = await session.scalars(
        select(WaitlistEntry.doctor_id)
        .where(WaitlistEntry.status == WaitlistStatus.WAITING, WaitlistEntry.to_date >= today)
        .group_by(WaitlistEntry.doctor_id)
        .order_by(WaitlistEntry.doctor_id)
        .limit(limit)
    )
    return list(rows.all())


async def of_patient(
    session: AsyncSession, *, patient_id: int, statuses: Sequence[WaitlistStatus]
) -> Sequence[WaitlistEntry]:
    return (
        await session.scalars(
            select(WaitlistEntry)
            .where(WaitlistEntry.patient_id == patient_id, WaitlistEntry.status.in_(statuses))
            .order_by(WaitlistEntry.id)
        )
    ).all()


async def already_waiting(session: AsyncSession, *, patient_id: int, doctor_id: int) -> bool:
    found = await session.scalar(
        select(WaitlistEntry.id)
        .where(
            WaitlistEntry.patient_id == patient_id,
            WaitlistEntry.doctor_id == doctor_id,
            WaitlistEntry.status.in_([WaitlistStatus.WAITING, WaitlistStatus.OFFERED]),
        )
        .limit(1)
    )
    return found is not None
