from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ehass.holds.models import HoldStatus, SlotHold
from ehass.waitlist.models import WaitlistEntry, WaitlistStatus


def _live(now: datetime):  # type: ignore[no-untyped-def]
    return (SlotHold.status == HoldStatus.ACTIVE, SlotHold.expires_at > now)


async def get(session: AsyncSession, hold_id: int, *, for_update: bool = False) -> SlotHold | None:
    query = select(SlotHold).where(SlotHold.id == hold_id)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    return await session.scalar(query)


async def expire_lapsed(session: AsyncSession, *, doctor_id: int, now: datetime) -> list[int]:
    """Marks the doctor's run-out holds expired, freeing their unique index entries, and
    puts the waitlist entries whose offers they were back in line. Call holding the
    doctor's lock; returns the ids of the holds it expired."""
    rows = (
        await session.execute(
            select(SlotHold.id, SlotHold.waitlist_entry_id).where(
                SlotHold.doctor_id == doctor_id,
                SlotHold.status == HoldStatus.ACTIVE,
                SlotHold.expires_at <= now,
            )
        )
    ).all()
    if not rows:
        return []
    hold_ids = [row.id for row in rows]
    await session.execute(
        update(SlotHold)
        .where(SlotHold.id.in_(hold_ids))
        .values(status=HoldStatus.EXPIRED, updated_at=now)
        .execution_options(
            synchronize_session="fetch",
            # No schedule version rises: a cached day already frees a hold's slot at its
            # expiry (the answer keeps each hold's end), so marking it changes no answer.
            schedule_spans=(),
        )
    )
    if entry_ids := [row.waitlist_entry_id for row in rows if row.waitlist_entry_id]:
        await session.execute(
            update(WaitlistEntry)
            .where(WaitlistEntry.id.in_(entry_ids), WaitlistEntry.status == WaitlistStatus.OFFERED)
            .values(status=WaitlistStatus.WAITING, updated_at=now)
            .execution_options(synchronize_session="fetch")
        )
    return hold_ids


async def live_overlapping(
    session: AsyncSession, *, doctor_id: int, start: datetime, end: datetime, now: datetime
) -> SlotHold | None:
    return await session.scalar(
        select(SlotHold)
        .where(
            *_live(now),
            SlotHold.doctor_id == doctor_id,
            SlotHold.scheduled_at < end,
            SlotHold.ends_at > start,
        )
        .limit(1)
    )


async def live_intervals(
    session: AsyncSession, *, doctor_id: int, start: datetime, end: datetime, now: datetime
) -> list[tuple[datetime, datetime]]:
    rows = await session.execute(
        select(SlotHold.scheduled_at, SlotHold.ends_at).where(
            *_live(now),
            SlotHold.doctor_id == doctor_id,
            SlotHold.scheduled_at < end,
            SlotHold.ends_at > start,
        )
    )
    return [(row.scheduled_at, row.ends_at) for row in rows]


async def live_of_doctor(
    session: AsyncSession, *, doctor_id: int, now: datetime
) -> list[tuple[datetime, datetime, datetime]]:
    """(start, end, expires) of every hold of the doctor that is live at `now`."""
    rows = await session.execute(
        select(SlotHold.scheduled_at, SlotHold.ends_at, SlotHold.expires_at).where(
            *_live(now), SlotHold.doctor_id == doctor_id
        )
    )
    return [(row.scheduled_at, row.ends_at, row.expires_at) for row in rows]


async def live_count_of(session: AsyncSession, *, patient_id: int, now: datetime) -> int:
    return (
        await session.scalar(
            select(func.count()).where(*_live(now), SlotHold.patient_id == patient_id)
        )
        or 0
    )


async def lapsed(session: AsyncSession, *, now: datetime, limit: int) -> Sequence[SlotHold]:
    """Run-out holds still marked active, oldest first (the worker's sweep)."""
    return (
        await session.scalars(
            select(SlotHold)
            .where(SlotHold.status == HoldStatus.ACTIVE, SlotHold.expires_at <= now)
            .order_by(SlotHold.expires_at, SlotHold.id)
            .limit(limit)
        )
    ).all()


async def offered_before(
    session: AsyncSession, *, waitlist_entry_id: int, doctor_id: int, at: datetime
) -> bool:
    held = await session.scalar(
        select(SlotHold.id)
        .where(
            SlotHold.waitlist_entry_id == waitlist_entry_id,
            SlotHold.doctor_id == doctor_id,
            SlotHold.scheduled_at == at,
        )
        .limit(1)
    )
    return held is not None


async def of_patient(session: AsyncSession, *, patient_id: int) -> Sequence[SlotHold]:
    return (
        await session.scalars(
            select(SlotHold).where(SlotHold.patient_id == patient_id).order_by(SlotHold.id)
        )
    ).all()
