"""Slot holds: find, hold, book.

A hold obeys the booking's guarantees: it is placed under the doctor's and the patient's
row locks (taken in the booking's order), checked against appointments and other holds, and
a unique index on active holds is the last guard. While it lives, nobody else can hold or
book that time and availability does not offer it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ehass.appointments.guards import (
    free_slot,
    lock_accounts,
    lock_people,
    patient_for,
)
from ehass.audit import service as audit
from ehass.core.pagination import possible_id
from ehass.core.principal import Principal
from ehass.doctors.models import Doctor
from ehass.errors import ConflictError, NotFoundError, UnprocessableError
from ehass.holds import repository
from ehass.holds.models import HoldStatus, SlotHold
from ehass.holds.schemas import HoldCreate
from ehass.runtime import Runtime

log = structlog.get_logger("ehass.holds")

# Enough to compare a few times; not enough to sit on a doctor's week.
MAX_LIVE_HOLDS_PER_PATIENT = 3


class HoldNotFoundError(NotFoundError):
    slug = "hold-not-found"
    title = "Hold not found"


class SlotHeldError(ConflictError):
    slug = "slot-held"
    title = "Slot held"


class TooManyHoldsError(ConflictError):
    slug = "too-many-holds"
    title = "Too many holds"


class HoldLapsedError(ConflictError):
    slug = "hold-lapsed"
    title = "Hold no longer valid"


def duration(rt: Runtime) -> timedelta:
    return timedelta(minutes=rt.settings.hold_minutes)


async def ensure_not_held(
    session: AsyncSession,
    *,
    doctor_id: int,
    start: datetime,
    end: datetime,
    patient_id: int,
    now: datetime,
) -> SlotHold | None:
    """Refuses a time someone else holds; returns the patient's own hold on it, if any.
    Call holding the doctor's lock."""
    hold = await repository.live_overlapping(
        session, doctor_id=doctor_id, start=start, end=end, now=now
    )
    if hold is not None and hold.patient_id != patient_id:
        raise SlotHeldError("Someone else is holding this time; try another.")
    return hold


async def hold_locked(
    session: AsyncSession,
    rt: Runtime,
    *,
    doctor: Doctor,
    patient_id: int,
    at: datetime,
    now: datetime,
    waitlist_entry_id: int | None = None,
) -> SlotHold:
    """Places a hold; call holding the doctor's and the patient's locks."""
    slot = await free_slot(session, doctor=doctor, patient_id=patient_id, at=at, now=now)
    await repository.expire_lapsed(session, doctor_id=doctor.id, now=now)
    own = await ensure_not_held(
        session, doctor_id=doctor.id, start=slot.start, end=slot.end, patient_id=patient_id, now=now
    )
    if own is not None:
        raise SlotHeldError(f"You already hold this time (hold {own.id}).")
    if await repository.live_count_of(session, patient_id=patient_id, now=now) >= (
        MAX_LIVE_HOLDS_PER_PATIENT
    ):
        raise TooManyHoldsError(
            f"At most {MAX_LIVE_HOLDS_PER_PATIENT} slots can be held at once; book or release one."
        )
    hold = SlotHold(
        doctor_id=doctor.id,
        patient_id=patient_id,
        scheduled_at=slot.start,
        ends_at=slot.end,
        expires_at=now + duration(rt),
        status=HoldStatus.ACTIVE,
        waitlist_entry_id=waitlist_entry_id,
        created_at=now,
        updated_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(hold)
            await session.flush()
    except IntegrityError as exc:
        # The unique index on active holds: another hold won the race.
        raise SlotHeldError("Someone else is holding this time; try another.") from exc
    audit.record(
        session,
        at=now,
        action="hold.create",
        entity="hold",
        entity_id=hold.id,
        changes=audit.snapshot(
            {
                "doctor_id": doctor.id,
                "patient_id": patient_id,
                "scheduled_at": hold.scheduled_at,
                "expires_at": hold.expires_at,
                "waitlist_entry_id": waitlist_entry_id,
            }
        ),
    )
    return hold


async def place(
    session: AsyncSession, rt: Runtime, principal: Principal, *, request: HoldCreate
) -> SlotHold:
    patient_id = patient_for(principal, request.patient_id, doing="hold slots")
    doctor = await lock_people(session, doctor_id=request.doctor_id, patient_id=patient_id)
    return await hold_locked(
        session,
        rt,
        doctor=doctor,
        patient_id=patient_id,
        at=request.scheduled_at,
        now=rt.clock.now(),
    )


async def _visible(
    session: AsyncSession, principal: Principal, hold_id: int, *, for_update: bool = False
) -> SlotHold:
    hold = (
        await repository.get(session, hold_id, for_update=for_update)
        if possible_id(hold_id)
        else None
    )
    if hold is None or not (principal.is_admin or principal.patient_id == hold.patient_id):
        raise HoldNotFoundError(f"No hold {hold_id}.")
    return hold


async def get(session: AsyncSession, principal: Principal, *, hold_id: int) -> SlotHold:
    return await _visible(session, principal, hold_id)


async def release(
    session: AsyncSession, rt: Runtime, principal: Principal, *, hold_id: int
) -> SlotHold:
    """Lets the slot go at once (the patient chose another). Releasing twice is harmless."""
    hold = await _visible(session, principal, hold_id)
    # The booking's order: both accounts, then the hold row, checked again under the lock.
    await lock_accounts(session, doctor_id=hold.doctor_id, patient_id=hold.patient_id)
    hold = await _visible(session, principal, hold_id, for_update=True)
    if hold.status != HoldStatus.ACTIVE:
        return hold
    now = rt.clock.now()
    hold.status, hold.updated_at = HoldStatus.RELEASED, now
    await session.flush()
    audit.record(
        session,
        at=now,
        action="hold.release",
        entity="hold",
        entity_id=hold.id,
        changes={"status": {"before": HoldStatus.ACTIVE, "after": HoldStatus.RELEASED}},
    )
    return hold


async def redeem(
    session: AsyncSession,
    *,
    hold_id: int,
    patient_id: int,
    doctor_id: int,
    at: datetime,
    now: datetime,
) -> SlotHold:
    """The hold a booking converts; call holding the doctor's lock, before booking."""
    hold = await repository.get(session, hold_id, for_update=True) if possible_id(hold_id) else None
    if hold is None or hold.patient_id != patient_id:
        raise UnprocessableError("No such hold for this patient.", loc=("body", "hold_id"))
    if hold.doctor_id != doctor_id or hold.scheduled_at != at:
        raise UnprocessableError("The hold is for another doctor or time.", loc=("body", "hold_id"))
    if hold.status != HoldStatus.ACTIVE or hold.expires_at <= now:
        raise HoldLapsedError("The hold has run out or was released; hold the slot again.")
    return hold


def mark_booked(hold: SlotHold, *, now: datetime) -> None:
    hold.status, hold.updated_at = HoldStatus.BOOKED, now
