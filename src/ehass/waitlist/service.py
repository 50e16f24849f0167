"""The waitlist: patients waiting for a doctor's freed time, offered it in turn.

An offer is a slot hold (holds/) tied to the entry plus a message with a link. Everything
that hands out a slot runs under the doctor's row lock, so two workers or a worker and a
cancellation never offer one slot twice; the line is the entry id order. A hold that runs
out puts its entry back in line, and the slot goes to the next patient who has not been
offered it yet.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from ehass.appointments import repository as appointments
from ehass.appointments.guards import (
    PatientBusyError,
    SlotUnavailableError,
    lock_people,
    patient_for,
    try_lock_patient,
)
from ehass.audit import service as audit
from ehass.availability.service import free_slots_between
from ehass.core.pagination import Page, possible_id
from ehass.core.principal import Principal
from ehass.doctors.models import Doctor
from ehass.doctors.repository import get_active_doctor
from ehass.errors import ConflictError, NotFoundError, UnprocessableError
from ehass.holds import repository as holds_repository
from ehass.holds import service as holds
from ehass.holds.models import SlotHold
from ehass.notifications import service as notifications
from ehass.notifications.models import NotificationKind
from ehass.runtime import Runtime
from ehass.waitlist import repository
from ehass.waitlist.models import WaitlistEntry, WaitlistStatus
from ehass.waitlist.schemas import WaitlistCreate

log = structlog.get_logger("ehass.waitlist")

MAX_RANGE_DAYS = 62


class WaitlistEntryNotFoundError(NotFoundError):
    slug = "waitlist-entry-not-found"
    title = "Waitlist entry not found"


class AlreadyWaitingError(ConflictError):
    slug = "already-waiting"
    title = "Already on this waitlist"


def _local_today(doctor: Doctor, now: datetime) -> date:
    return now.astimezone(ZoneInfo(doctor.timezone)).date()


async def join(
    session: AsyncSession, rt: Runtime, principal: Principal, *, request: WaitlistCreate
) -> WaitlistEntry:
    patient_id = patient_for(principal, request.patient_id, doing="join waitlists")
    doctor = await lock_people(session, doctor_id=request.doctor_id, patient_id=patient_id)
    now = rt.clock.now()
    if request.to_date < request.from_date:
        raise UnprocessableError(
            "`to_date` must not be before `from_date`.", loc=("body", "to_date")
        )
    if request.to_date < _local_today(doctor, now):
        raise UnprocessableError("That range is in the past.", loc=("body", "to_date"))
    if (request.to_date - request.from_date).days >= MAX_RANGE_DAYS:
        raise UnprocessableError(
            f"A waitlist range may span at most {MAX_RANGE_DAYS} days.", loc=("body", "to_date")
        )
    if await repository.already_waiting(session, patient_id=patient_id, doctor_id=doctor.id):
        raise AlreadyWaitingError("You are already on this doctor's waitlist; leave it first.")
    entry = WaitlistEntry(
        patient_id=patient_id,
        doctor_id=doctor.id,
        from_date=request.from_date,
        to_date=request.to_date,
        status=WaitlistStatus.WAITING,
        created_at=now,
        updated_at=now,
    )
    session.add(entry)
    await session.flush()
    audit.record(
        session,
        at=now,
        action="waitlist.create",
        entity="waitlist",
        entity_id=entry.id,
        changes=audit.snapshot(
            {
                "doctor_id": doctor.id,
                "patient_id": patient_id,
                "from_date": request.from_date.isoformat(),
                "to_date": request.to_date.isoformat(),
            }
        ),
    )
    return entry


async def list_mine(session: AsyncSession, principal: Principal) -> Page[WaitlistEntry]:
    if principal.patient_id is None:
        return Page([], None)
    entries = await repository.of_patient(
        session,
        patient_id=principal.patient_id,
        statuses=[WaitlistStatus.WAITING, WaitlistStatus.OFFERED],
    )
    return Page(list(entries), None)


async def leave(session: AsyncSession, rt: Runtime, principal: Principal, *, entry_id: int) -> None:
    entry = await repository.get(session, entry_id) if possible_id(entry_id) else None
    if entry is None or not (principal.is_admin or principal.patient_id == entry.patient_id):
        raise WaitlistEntryNotFoundError(f"No waitlist entry {entry_id}.")
    await get_active_doctor(session, entry.doctor_id, for_update=True)
    entry = await repository.get(session, entry_id, for_update=True)
    assert entry is not None
    if entry.status in (WaitlistStatus.LEFT, WaitlistStatus.BOOKED):
        return
    now = rt.clock.now()
    before = entry.status
    entry.status, entry.updated_at = WaitlistStatus.LEFT, now
    await session.flush()
    audit.record(
        session,
        at=now,
        action="waitlist.delete",
        entity="waitlist",
        entity_id=entry.id,
        changes={"status": {"before": before, "after": WaitlistStatus.LEFT}},
    )


# --- offers: all under the doctor's row lock --------------------------------------------


async def _offer(
    session: AsyncSession,
    rt: Runtime,
    *,
    doctor: Doctor,
    entry: WaitlistEntry,
    at: datetime,
    now: datetime,
) -> SlotHold | None:
    if await holds_repository.offered_before(
        session, waitlist_entry_id=entry.id, doctor_id=doctor.id, at=at
    ):
        return None  # they let this very slot go once already: the next in line gets it
    if not await try_lock_patient(session, entry.patient_id):
        return None  # inactive, or busy elsewhere: see try_lock_patient
    try:
        hold = await holds.hold_locked(
            session,
            rt,
            doctor=doctor,
            patient_id=entry.patient_id,
            at=at,
            now=now,
            waitlist_entry_id=entry.id,
        )
    except (PatientBusyError, holds.TooManyHoldsError, holds.SlotHeldError):
        return None
    entry.status, entry.updated_at = WaitlistStatus.OFFERED, now
    doctor_user, patient_user = await appointments.participant_users(
        session, doctor_user_id=doctor.user_id, patient_id=entry.patient_id
    )
    notifications.enqueue(
        session,
        rt,
        kind=NotificationKind.WAITLIST_OFFER,
        user_id=patient_user.id,
        payload={
            "to": patient_user.email,
            "name": patient_user.name,
            "role": "patient",
            "doctor_name": doctor_user.name,
            "timezone": doctor.timezone,
            "scheduled_at": hold.scheduled_at.isoformat(),
            "hold_id": hold.id,
            "hold_expires_at": hold.expires_at.isoformat(),
            # The doctor's booking page, which offers the held time to its holder.
            "link": f"{rt.settings.public_url.rstrip('/')}/doctors/{doctor.id}?hold_id={hold.id}",
        },
    )
    log.info("waitlist.offered", entry_id=entry.id, hold_id=hold.id)
    return hold


async def offer_freed_slot(
    session: AsyncSession, rt: Runtime, *, doctor: Doctor, at: datetime
) -> SlotHold | None:
    """A slot at `at` just came free (a cancellation or a move): the first patient in line
    whose range holds that day gets it. Call holding the doctor's lock."""
    now = rt.clock.now()
    if at <= now:
        return None
    day = at.astimezone(ZoneInfo(doctor.timezone)).date()
    for entry in await repository.waiting_line(session, doctor_id=doctor.id, on=day):
        try:
            hold = await _offer(session, rt, doctor=doctor, entry=entry, at=at, now=now)
        except (SlotUnavailableError, UnprocessableError):
            return None  # no longer a free slot at all
        if hold is not None:
            return hold
    return None


async def fill(session: AsyncSession, rt: Runtime, *, doctor: Doctor) -> int:
    """Offers each waiting patient, in line order, the earliest free slot in their range
    that they were not offered before. New hours, holds run out, deactivations: whatever
    freed the time, the worker's pass finds it. Call holding the doctor's lock."""
    now = rt.clock.now()
    zone = ZoneInfo(doctor.timezone)
    offered = 0
    for entry in await repository.waiting_line(session, doctor_id=doctor.id):
        start = max(now, datetime.combine(entry.from_date, time(0), zone).astimezone(UTC))
        end = datetime.combine(entry.to_date + timedelta(days=1), time(0), zone).astimezone(UTC)
        if end <= start:
            continue
        for slot in await free_slots_between(session, doctor, start=start, end=end, now=now):
            try:
                if await _offer(session, rt, doctor=doctor, entry=entry, at=slot.start, now=now):
                    offered += 1
                    break
            except (SlotUnavailableError, UnprocessableError):
                continue
    return offered


async def lapsed_holds(
    session: AsyncSession, rt: Runtime, *, limit: int = 50
) -> list[tuple[int, int]]:
    """(hold id, doctor id) of run-out holds still marked active."""
    lapsed = await holds_repository.lapsed(session, now=rt.clock.now(), limit=limit)
    return [(hold.id, hold.doctor_id) for hold in lapsed]


async def settle_lapsed_holds(session: AsyncSession, rt: Runtime, *, doctor_id: int) -> bool:
    """Lets a doctor's run-out holds go; a waitlist offer's entry goes back in line (and
    the next `fill` offers the slot to whoever is next). Takes the doctor's lock."""
    if await get_active_doctor(session, doctor_id, for_update=True) is None:
        return False
    expired = await holds_repository.expire_lapsed(session, doctor_id=doctor_id, now=rt.clock.now())
    return bool(expired)


async def booked_from_offer(session: AsyncSession, hold: SlotHold, *, now: datetime) -> None:
    if hold.waitlist_entry_id is None:
        return
    entry = await repository.get(session, hold.waitlist_entry_id, for_update=True)
    if entry is not None and entry.status in (WaitlistStatus.OFFERED, WaitlistStatus.WAITING):
        entry.status, entry.updated_at = WaitlistStatus.BOOKED, now


async def doctors_to_fill(session: AsyncSession, rt: Runtime, *, limit: int = 20) -> list[int]:
    today = rt.clock.now().date() - timedelta(days=1)  # any zone's today is at most a day off
    return await repository.doctors_with_waiting(session, today=today, limit=limit)
