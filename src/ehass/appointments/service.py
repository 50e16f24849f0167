"""Booking, moving, cancelling and listing appointments."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ehass import metrics
from ehass.appointments import repository, rules
from ehass.appointments.guards import (
    PatientBusyError,
    SlotUnavailableError,
    free_slot,
    lock_accounts,
    lock_people,
    patient_for,
)
from ehass.appointments.models import Appointment, IdempotencyRecord, Status
from ehass.appointments.schemas import AppointmentCreate, AppointmentRead, AppointmentUpdate
from ehass.audit import service as audit
from ehass.auth.service import require_verified_email
from ehass.core.pagination import Page, after_time, time_cursor
from ehass.core.principal import Principal, Role
from ehass.doctors.models import Doctor
from ehass.errors import (
    ConflictError,
    DomainError,
    NotFoundError,
    PermissionDeniedError,
    UnprocessableError,
)
from ehass.holds import service as holds
from ehass.holds.models import SlotHold
from ehass.notifications import service as notifications
from ehass.runtime import Runtime
from ehass.waitlist import service as waitlist

log = structlog.get_logger("ehass.appointments")


class AppointmentNotFoundError(NotFoundError):
    slug = "appointment-not-found"
    title = "Appointment not found"


class InvalidTransitionError(ConflictError):
    slug = "invalid-transition"
    title = "Not possible in this state"


class NoticePeriodError(ConflictError):
    slug = "within-notice"
    title = "Too late to change"


class IdempotencyInProgressError(ConflictError):
    slug = "idempotency-in-progress"
    title = "Request in progress"


@dataclass(frozen=True, slots=True)
class Replay:
    """The first answer given to an Idempotency-Key: a 201 Appointment or a problem body."""

    status_code: int
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Booking:
    """A new appointment, or the first response replayed for a repeated Idempotency-Key."""

    appointment: Appointment | None = None
    replay: Replay | None = None


def _request_hash(request: AppointmentCreate) -> str:
    canonical = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _key_digest(key: str) -> str:
    # Stored hashed: MySQL's default collations would match "Key-A" with "key-a".
    return hashlib.sha256(key.encode()).hexdigest()


def _problem_body(exc: DomainError) -> dict[str, Any]:
    """What the problem+json handler renders for `exc`, kept to be replayed."""
    body: dict[str, Any] = {
        "type": f"/problems/{exc.slug}",
        "title": exc.title,
        "status": exc.status_code,
        "detail": exc.detail,
    }
    if isinstance(exc, UnprocessableError):
        body["errors"] = exc.errors
    return body


async def _visible(
    session: AsyncSession, principal: Principal, appointment_id: int, *, for_update: bool = False
) -> Appointment:
    appointment = await repository.get(session, appointment_id, for_update=for_update)
    if appointment is None or not _is_participant(principal, appointment):
        raise AppointmentNotFoundError(f"No appointment {appointment_id}.")
    return appointment


def _is_participant(principal: Principal, appointment: Appointment) -> bool:
    return (
        principal.is_admin
        or (principal.role is Role.PATIENT and principal.patient_id == appointment.patient_id)
        or (principal.role is Role.DOCTOR and principal.doctor_id == appointment.doctor_id)
    )


async def _claim_slot(
    session: AsyncSession,
    *,
    doctor: Doctor,
    patient_id: int,
    at: datetime,
    now: datetime,
    moving: Appointment | None = None,
) -> tuple[datetime, datetime, SlotHold | None]:
    """Checks `at` is a free slot start for both people and held by nobody else; returns
    the slot (start, end) and the patient's own hold on it, if they have one.

    Call holding `lock_people`'s locks (the doctor's account, then the patient's).
    """
    try:
        slot = await free_slot(
            session,
            doctor=doctor,
            patient_id=patient_id,
            at=at,
            now=now,
            excluding=moving.id if moving else None,
        )
    except (SlotUnavailableError, PatientBusyError):
        metrics.count_booking_conflict()
        raise
    own_hold = await holds.ensure_not_held(
        session, doctor_id=doctor.id, start=slot.start, end=slot.end, patient_id=patient_id, now=now
    )
    return slot.start, slot.end, own_hold


async def _participants(
    session: AsyncSession, appointment: Appointment, doctor: Doctor | None = None
) -> notifications.Participants:
    if doctor is None:
        doctor = await session.get(Doctor, appointment.doctor_id)
        assert doctor is not None  # a foreign key
    doctor_user, patient_user = await repository.participant_users(
        session, doctor_user_id=doctor.user_id, patient_id=appointment.patient_id
    )
    return notifications.Participants(
        doctor=doctor, doctor_user=doctor_user, patient_user=patient_user
    )


async def _flush_guarded(session: AsyncSession) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        # The unique indexes are the last guard when two writers pass the checks at once.
        metrics.count_booking_conflict()
        raise SlotUnavailableError("Another appointment holds this time.") from exc


async def _book_locked(
    session: AsyncSession,
    rt: Runtime,
    *,
    doctor: Doctor,
    request: AppointmentCreate,
    patient_id: int,
    now: datetime,
) -> Appointment:
    if request.hold_id is not None:
        await holds.redeem(
            session,
            hold_id=request.hold_id,
            patient_id=patient_id,
            doctor_id=doctor.id,
            at=request.scheduled_at,
            now=now,
        )
    start, end, own_hold = await _claim_slot(
        session, doctor=doctor, patient_id=patient_id, at=request.scheduled_at, now=now
    )
    # Every refusal comes before this INSERT, the first write: a refused booking leaves
    # nothing behind but what the idempotency record keeps of it.
    appointment = Appointment(
        patient_id=patient_id,
        doctor_id=doctor.id,
        scheduled_at=start,
        ends_at=end,
        status=Status.SCHEDULED,
        reason=request.reason,
        created_at=now,
        updated_at=now,
    )
    session.add(appointment)
    await _flush_guarded(session)
    if own_hold is not None:
        # Booking a time you hold converts the hold, with or without its id.
        holds.mark_booked(own_hold, now=now)
        await waitlist.booked_from_offer(session, own_hold, now=now)
    audit.record(
        session,
        at=now,
        action="appointment.create",
        entity="appointment",
        entity_id=appointment.id,
        changes=audit.snapshot(_fields(appointment)),
    )
    await notifications.appointment_booked(
        session, rt, appointment, await _participants(session, appointment, doctor)
    )
    log.info("appointment.booked", appointment_id=appointment.id, doctor_id=doctor.id)
    return appointment


def _fields(appointment: Appointment) -> dict[str, Any]:
    """What the audit trail records of an appointment (the reason only as "changed")."""
    return {
        "patient_id": appointment.patient_id,
        "doctor_id": appointment.doctor_id,
        "scheduled_at": appointment.scheduled_at,
        "ends_at": appointment.ends_at,
        "status": appointment.status,
        "reason": appointment.reason,
    }


def _replay(record: IdempotencyRecord, request_hash: str) -> Replay:
    if record.request_hash != request_hash:
        raise UnprocessableError(
            "This Idempotency-Key was used with a different request.",
            loc=("header", "Idempotency-Key"),
        )
    if record.status_code is None or record.response_body is None:
        raise IdempotencyInProgressError(
            "A request with this Idempotency-Key is still being processed; retry shortly."
        )
    return Replay(status_code=record.status_code, body=record.response_body)


def _is_current(record: IdempotencyRecord, rt: Runtime, now: datetime) -> bool:
    return record.created_at > now - timedelta(hours=rt.settings.idempotency_hours)


async def _keep_answer(
    session: AsyncSession,
    *,
    user_id: int,
    digest: str,
    request_hash: str,
    now: datetime,
    status_code: int,
    body: dict[str, Any],
    expired: IdempotencyRecord | None,
) -> Replay | None:
    """Stores this request's final answer under its key, in the booking's transaction;
    None when it is kept, or the answer to replay when a concurrent request with the same
    key got there first (its record's unique index refused ours: this attempt is undone).
    """
    if expired is not None:
        # The rare path: an answer past its 24 hours still holds the key. The worker's
        # periodic purge removes the rest.
        await repository.delete_idempotency(session, record_id=expired.id)
    session.add(
        IdempotencyRecord(
            user_id=user_id,
            key=digest,
            request_hash=request_hash,
            created_at=now,
            status_code=status_code,
            response_body=body,
        )
    )
    try:
        await session.flush()
    except IntegrityError:
        # A request the account locks did not serialise with ours (an administrator's,
        # for other people) committed the key meanwhile: the first answer is the answer.
        await _start_afresh(session)
        winner = await repository.find_idempotency(session, user_id=user_id, key=digest, fresh=True)
        if winner is None:
            raise IdempotencyInProgressError(
                "A request with this Idempotency-Key is still being processed; retry shortly."
            ) from None
        return _replay(winner, request_hash)
    return None


async def _start_afresh(session: AsyncSession) -> None:
    """After a failed flush: the ORM has rolled the whole transaction back (the database
    would have undone only the statement); the session must be told before it goes on."""
    await session.rollback()
    audit.discard(session)


async def _book_keyed(
    session: AsyncSession,
    rt: Runtime,
    *,
    doctor: Doctor,
    request: AppointmentCreate,
    patient_id: int,
    now: datetime,
    keep: dict[str, Any],
) -> Booking:
    """Books, then keeps the answer, a refusal included, in the same transaction."""
    try:
        appointment = await _book_locked(
            session, rt, doctor=doctor, request=request, patient_id=patient_id, now=now
        )
    except DomainError as exc:
        if not session.is_active:
            # The appointment INSERT lost on its unique index (the checks passed, a
            # concurrent booking committed first): nothing else was written yet.
            await _start_afresh(session)
        replay = await _keep_answer(
            session, **keep, now=now, status_code=exc.status_code, body=_problem_body(exc)
        )
        if replay is not None:
            return Booking(replay=replay)
        # The contract replays the first response, whatever it was: keep the refusal too.
        exc.keep_changes = True
        raise
    body = AppointmentRead.model_validate(appointment).model_dump(mode="json")
    replay = await _keep_answer(session, **keep, now=now, status_code=201, body=body)
    if replay is not None:
        return Booking(replay=replay)
    metrics.count_booking()
    return Booking(appointment=appointment)


async def book(
    session: AsyncSession,
    rt: Runtime,
    principal: Principal,
    *,
    request: AppointmentCreate,
    idempotency_key: str | None = None,
) -> Booking:
    await require_verified_email(session, rt, principal)
    patient_id = patient_for(principal, request.patient_id, doing="book appointments")
    now = rt.clock.now()
    keep: dict[str, Any] | None = None
    if idempotency_key is not None:
        digest = _key_digest(idempotency_key)
        request_hash = _request_hash(request)
        # A repeat of a finished request is answered without waiting for any lock.
        previous = await repository.find_idempotency(session, user_id=principal.user_id, key=digest)
        if previous is not None and _is_current(previous, rt, now):
            return Booking(replay=_replay(previous, request_hash))
        keep = {
            "user_id": principal.user_id,
            "digest": digest,
            "request_hash": request_hash,
            "expired": previous,
        }

    # A concurrent request with the same key and the same people waits here, and then
    # loses on the key's unique index when it stores its answer (see _keep_answer).
    doctor = await lock_people(session, doctor_id=request.doctor_id, patient_id=patient_id)
    if keep is None:
        appointment = await _book_locked(
            session, rt, doctor=doctor, request=request, patient_id=patient_id, now=now
        )
        metrics.count_booking()
        return Booking(appointment=appointment)
    return await _book_keyed(
        session, rt, doctor=doctor, request=request, patient_id=patient_id, now=now, keep=keep
    )


async def purge_expired_keys(session: AsyncSession, rt: Runtime, *, limit: int = 500) -> int:
    """Deletes answers kept past their hours (the worker's periodic pass): requests no
    longer purge, and replace an expired key only when they reuse it."""
    before = rt.clock.now() - timedelta(hours=rt.settings.idempotency_hours)
    return await repository.purge_idempotency(session, before=before, limit=limit)


async def get(
    session: AsyncSession, rt: Runtime, principal: Principal, *, appointment_id: int
) -> Appointment:
    appointment = await _visible(session, principal, appointment_id)
    if principal.patient_id != appointment.patient_id:
        # A doctor or an administrator opened a patient's appointment: on the record.
        audit.record(
            session,
            at=rt.clock.now(),
            action="appointment.read",
            entity="appointment",
            entity_id=appointment.id,
        )
    return appointment


async def update(
    session: AsyncSession,
    rt: Runtime,
    principal: Principal,
    *,
    appointment_id: int,
    request: AppointmentUpdate,
) -> Appointment:
    sent = request.model_fields_set
    # An outcome is checked under a row lock so that a cancel committed meanwhile is not
    # overwritten; a move takes its own locks, in the booking's order (doctor first).
    lock = "status" in sent and "scheduled_at" not in sent
    appointment = await _visible(session, principal, appointment_id, for_update=lock)
    for field in sent:
        if getattr(request, field) is None and field != "reason":
            raise UnprocessableError(f"{field} cannot be null.", loc=("body", field))
    is_patient = principal.role is Role.PATIENT
    is_doctor = principal.role is Role.DOCTOR
    if sent & {"scheduled_at", "reason"} and is_doctor:
        raise PermissionDeniedError("Doctors record outcomes; only the patient may move or edit.")
    if "status" in sent and is_patient:
        raise PermissionDeniedError("Only the doctor or an administrator records the outcome.")

    now = rt.clock.now()
    before = _fields(appointment)
    if request.scheduled_at is not None:
        appointment = await _move(session, rt, principal, appointment, request.scheduled_at, now)
    if "reason" in sent:
        appointment.reason = request.reason
    if request.status is not None:
        if not rules.can_record_outcome(appointment.status, appointment.scheduled_at, now=now):
            raise InvalidTransitionError(
                "Only a scheduled appointment that has started can be completed or a no-show."
            )
        appointment.status = request.status
    appointment.updated_at = now
    await _flush_guarded(session)
    if changes := audit.changes_between(before, _fields(appointment)):
        audit.record(
            session,
            at=now,
            action="appointment.update",
            entity="appointment",
            entity_id=appointment.id,
            changes=changes,
        )
    return appointment


async def _move(
    session: AsyncSession,
    rt: Runtime,
    principal: Principal,
    appointment: Appointment,
    at: datetime,
    now: datetime,
) -> Appointment:
    doctor = await lock_people(
        session, doctor_id=appointment.doctor_id, patient_id=appointment.patient_id
    )
    # Re-read under the locks: a concurrent cancel or move may have changed it.
    locked = await repository.get(session, appointment.id, for_update=True)
    assert locked is not None
    if locked.status != Status.SCHEDULED:
        raise InvalidTransitionError(f"A {locked.status} appointment cannot be moved.")
    if principal.role is Role.PATIENT and rules.within_notice(
        locked.scheduled_at, now=now, notice=rt.cancellation_notice
    ):
        raise NoticePeriodError(
            f"Appointments starting within {rt.settings.cancellation_notice_hours} hours "
            "cannot be moved by the patient; contact the practice."
        )
    start, end, own_hold = await _claim_slot(
        session,
        doctor=doctor,
        patient_id=locked.patient_id,
        at=at,
        now=now,
        moving=locked,
    )
    if own_hold is not None:
        holds.mark_booked(own_hold, now=now)
        await waitlist.booked_from_offer(session, own_hold, now=now)
    previous_at = locked.scheduled_at
    locked.scheduled_at, locked.ends_at = start, end
    locked.sequence += 1
    await notifications.appointment_moved(
        session, rt, locked, await _participants(session, locked, doctor), previous_at=previous_at
    )
    await _flush_guarded(session)
    await waitlist.offer_freed_slot(session, rt, doctor=doctor, at=previous_at)
    return locked


async def cancel(
    session: AsyncSession, rt: Runtime, principal: Principal, *, appointment_id: int
) -> Appointment:
    # Read unlocked to learn whose accounts to lock, then locked and checked again: the
    # booking's order (doctor's account, patient's, then the row). Locking the row first
    # deadlocked with a booking for the same patient once the outbox row's foreign key
    # check asked for the patient's account.
    appointment = await _visible(session, principal, appointment_id)
    people = await lock_accounts(
        session, doctor_id=appointment.doctor_id, patient_id=appointment.patient_id
    )
    # The freed slot is offered under the doctor's lock, when the doctor still practises.
    doctor = people.doctor if people.doctor_active else None
    appointment = await _visible(session, principal, appointment_id, for_update=True)
    if appointment.status == Status.CANCELLED:
        return appointment
    if appointment.status != Status.SCHEDULED:
        raise InvalidTransitionError(f"A {appointment.status} appointment cannot be cancelled.")
    now = rt.clock.now()
    if principal.role is Role.PATIENT and rules.within_notice(
        appointment.scheduled_at, now=now, notice=rt.cancellation_notice
    ):
        raise NoticePeriodError(
            f"Appointments starting within {rt.settings.cancellation_notice_hours} hours "
            "cannot be cancelled by the patient; contact the practice."
        )
    appointment.status = Status.CANCELLED
    appointment.updated_at = now
    appointment.sequence += 1
    await session.flush()
    await notifications.appointment_cancelled(
        session, rt, appointment, await _participants(session, appointment), by=principal.role
    )
    if doctor is not None:
        await waitlist.offer_freed_slot(session, rt, doctor=doctor, at=appointment.scheduled_at)
    metrics.count_cancellation()
    audit.record(
        session,
        at=now,
        action="appointment.cancel",
        entity="appointment",
        entity_id=appointment.id,
        changes={"status": {"before": Status.SCHEDULED, "after": Status.CANCELLED}},
    )
    log.info("appointment.cancelled", appointment_id=appointment.id, by_role=principal.role)
    return appointment


async def list_appointments(
    session: AsyncSession,
    principal: Principal,
    *,
    doctor_id: int | None,
    patient_id: int | None,
    status: Status | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    cursor: str | None,
) -> Page[Appointment]:
    # Whatever filters they send, patients and doctors only ever see their own.
    if principal.role is Role.PATIENT:
        if patient_id is not None and patient_id != principal.patient_id:
            return Page([], None)
        patient_id = principal.patient_id
    elif principal.role is Role.DOCTOR:
        if doctor_id is not None and doctor_id != principal.doctor_id:
            return Page([], None)
        doctor_id = principal.doctor_id
    rows = await repository.list_appointments(
        session,
        doctor_id=doctor_id,
        patient_id=patient_id,
        status=status,
        start=start,
        end=end,
        after=after_time(cursor),
        limit=limit + 1,
    )
    items = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = time_cursor(last.scheduled_at, last.id)
    return Page(items, next_cursor)


async def cancel_future_of(
    session: AsyncSession, rt: Runtime, *, patient_id: int | None, doctor_id: int | None
) -> None:
    """Cancels a deactivated person's upcoming appointments, freeing the slots."""
    now = rt.clock.now()
    cancelled = await repository.cancel_future(
        session, now=now, patient_id=patient_id, doctor_id=doctor_id
    )
    for appointment in cancelled:
        audit.record(
            session,
            at=now,
            action="appointment.cancel",
            entity="appointment",
            entity_id=appointment.id,
            changes={
                "status": {"before": Status.SCHEDULED, "after": Status.CANCELLED},
                "cause": {"after": "deactivation"},
            },
        )
        people = await _participants(session, appointment)
        # The closed account is told nothing; the other side learns why.
        closed = people.patient_user if patient_id is not None else people.doctor_user
        await notifications.appointment_cancelled(
            session, rt, appointment, people, by="deactivation", skip_user_id=closed.id
        )
