"""Checks and refusals shared by everything that hands out a doctor's time: bookings,
holds and waitlist entries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from ehass.appointments import repository
from ehass.availability.service import slot_for
from ehass.availability.slots import Slot
from ehass.core.pagination import possible_id
from ehass.core.principal import Principal, Role
from ehass.doctors.models import Doctor
from ehass.doctors.repository import doctor_row
from ehass.errors import ConflictError, PermissionDeniedError, UnprocessableError
from ehass.users.repository import lock_account


class SlotUnavailableError(ConflictError):
    slug = "slot-unavailable"
    title = "Slot unavailable"


class PatientBusyError(ConflictError):
    slug = "patient-busy"
    title = "Overlapping appointment"


def patient_for(principal: Principal, patient_id: int | None, *, doing: str) -> int:
    """The patient a request acts for: a patient only for themselves, an administrator for
    the patient named in the body; nobody else. `doing` completes "Patients ... only for
    themselves", e.g. "book"."""
    if principal.role is Role.PATIENT:
        assert principal.patient_id is not None
        if patient_id is not None and patient_id != principal.patient_id:
            raise PermissionDeniedError(f"Patients {doing} only for themselves.")
        return principal.patient_id
    if principal.is_admin:
        if patient_id is None:
            raise UnprocessableError(
                "An administrator must say which patient (patient_id).", loc=("body", "patient_id")
            )
        return patient_id
    raise PermissionDeniedError(f"Only patients and administrators {doing}.")


@dataclass(frozen=True, slots=True)
class LockedPeople:
    """The two accounts an appointment or a hold concerns, locked in the one order."""

    doctor: Doctor | None  # None: no such doctor
    doctor_active: bool
    patient_active: bool


async def lock_accounts(session: AsyncSession, *, doctor_id: int, patient_id: int) -> LockedPeople:
    """Locks the doctor's account row, then the patient's (users rows, FOR UPDATE).

    This is the one lock order of every path that hands out or frees time (book, move,
    cancel, holds, waitlist offers, the worker's passes, deactivation): the doctor's
    account, then the patient's, and only then appointment, hold or waitlist rows. Two such
    paths then never wait on each other in opposite orders. A lock taken later by a foreign
    key check (an outbox row's user_id) is then one this transaction already holds.

    The doctors and patients rows are not locked: every writer of them locks the account
    first, so the account lock alone orders them. Unknown or inactive people are reported,
    not refused: a cancel must still work for a deactivated doctor.
    """
    doctor_user_id, patient_user_id = (
        await repository.account_ids(session, doctor_id=doctor_id, patient_id=patient_id)
        if possible_id(doctor_id) and possible_id(patient_id)
        else (None, None)
    )
    doctor_active = doctor_user_id is not None and bool(await lock_account(session, doctor_user_id))
    patient_active = patient_user_id is not None and bool(
        await lock_account(session, patient_user_id)
    )
    doctor = await doctor_row(session, doctor_id) if doctor_user_id is not None else None
    return LockedPeople(doctor=doctor, doctor_active=doctor_active, patient_active=patient_active)


async def lock_doctors_before_closing(
    session: AsyncSession, *, user_id: int, now: datetime
) -> None:
    """Locks, ascending, the accounts of the doctors a patient's account has upcoming
    appointments with; call it before locking that account to close it.

    Closing a patient cancels those appointments, and each cancellation's outbox row for
    the doctor asks, through its foreign key, for the doctor's account. Taken only then,
    after the patient's, that is the reverse of the one lock order (doctor, then patient):
    a doctor's cancellation holding their account and waiting for the patient's closed a
    deadlock. A booking made between this read and the patient's lock can still add a
    doctor who is not locked here; the window is that short read, and the database then
    names one of the two a deadlock victim (503, safe to retry).
    """
    for doctor_user_id in await repository.doctor_accounts_of_patient(
        session, user_id=user_id, now=now
    ):
        await lock_account(session, doctor_user_id)


async def lock_people(session: AsyncSession, *, doctor_id: int, patient_id: int) -> Doctor:
    """`lock_accounts`, refusing an unknown or inactive doctor or patient: what a path
    that hands out time needs before it looks at the slot."""
    people = await lock_accounts(session, doctor_id=doctor_id, patient_id=patient_id)
    if people.doctor is None or not people.doctor_active:
        raise UnprocessableError("Unknown or inactive doctor.", loc=("body", "doctor_id"))
    if not people.patient_active:
        raise UnprocessableError("Unknown or inactive patient.", loc=("body", "patient_id"))
    return people.doctor


async def free_slot(
    session: AsyncSession,
    *,
    doctor: Doctor,
    patient_id: int,
    at: datetime,
    now: datetime,
    excluding: int | None = None,
) -> Slot:
    """The doctor's slot starting at `at`, when it lies ahead and neither person has an
    appointment then (`excluding` the one being moved); else the refusal. The one claim
    check of bookings, moves and holds; call it under `lock_people`'s locks."""
    if at < now:
        raise UnprocessableError("That time is in the past.", loc=("body", "scheduled_at"))
    slot = await slot_for(session, doctor, at)
    if slot is None:
        raise UnprocessableError(
            "That time is not the start of one of the doctor's slots.",
            loc=("body", "scheduled_at"),
        )
    if await repository.has_overlap(
        session, start=slot.start, end=slot.end, doctor_id=doctor.id, excluding=excluding
    ):
        raise SlotUnavailableError("Another appointment holds this time.")
    if await repository.has_overlap(
        session, start=slot.start, end=slot.end, patient_id=patient_id, excluding=excluding
    ):
        raise PatientBusyError("The patient already has an appointment at this time.")
    return slot


async def try_lock_patient(session: AsyncSession, patient_id: int) -> bool:
    """Locks a further patient's account when no one else holds it; False when someone
    does, or the patient is unknown or inactive.

    For a waitlist offer, made while holding another patient's account (a cancellation's)
    or other waiting patients' (the worker's pass): waiting there could close a cycle with
    a transaction that holds this patient and waits for ours, so the offer passes this
    patient by instead, and the worker's next pass offers them the time it finds.
    """
    user_id = await repository.patient_account_id(session, patient_id)
    return user_id is not None and bool(await lock_account(session, user_id, skip_locked=True))
