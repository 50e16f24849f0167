"""Queueing messages in the transactional outbox, and the administrators' view of it.

Every function here only adds or changes rows in the caller's transaction: a message exists
exactly when the change that caused it commits. Delivery is the worker's (worker.py).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from ehass.admin.service import require_admin
from ehass.appointments.models import Appointment
from ehass.audit import service as audit
from ehass.core import context
from ehass.core.pagination import Page, after_id, encode_cursor, possible_id
from ehass.core.principal import Principal
from ehass.doctors.models import Doctor
from ehass.errors import NotFoundError
from ehass.notifications import repository
from ehass.notifications.models import DeliveryStatus, Notification, NotificationKind
from ehass.runtime import Runtime
from ehass.users.models import User

log = structlog.get_logger("ehass.notifications")


class NotificationNotFoundError(NotFoundError):
    slug = "notification-not-found"
    title = "Notification not found"


@dataclass(frozen=True, slots=True)
class Participants:
    doctor: Doctor
    doctor_user: User
    patient_user: User


def _payload(
    appointment: Appointment, people: Participants, recipient: User, role: str
) -> dict[str, Any]:
    return {
        "to": recipient.email,
        "name": recipient.name,
        "role": role,
        "appointment_id": appointment.id,
        "sequence": appointment.sequence,
        "scheduled_at": appointment.scheduled_at.isoformat(),
        "ends_at": appointment.ends_at.isoformat(),
        "timezone": people.doctor.timezone,
        "doctor_name": people.doctor_user.name,
        "patient_name": people.patient_user.name,
    }


def enqueue(
    session: AsyncSession,
    rt: Runtime,
    *,
    kind: NotificationKind,
    user_id: int,
    payload: dict[str, Any],
    appointment_id: int | None = None,
    due_at: datetime | None = None,
) -> Notification:
    now = rt.clock.now()
    notification = Notification(
        kind=kind,
        status=DeliveryStatus.PENDING,
        user_id=user_id,
        appointment_id=appointment_id,
        message_id=f"<{secrets.token_hex(16)}@{rt.settings.mail_domain}>",
        payload=payload,
        due_at=due_at or now,
        attempts=0,
        request_id=context.current().client.request_id,
        created_at=now,
    )
    session.add(notification)
    return notification


def _to_both(
    session: AsyncSession,
    rt: Runtime,
    kind: NotificationKind,
    appointment: Appointment,
    people: Participants,
    *,
    extra: dict[str, Any] | None = None,
    skip_user_id: int | None = None,
) -> None:
    for recipient, role in ((people.patient_user, "patient"), (people.doctor_user, "doctor")):
        if recipient.id == skip_user_id or not recipient.is_active:
            continue
        enqueue(
            session,
            rt,
            kind=kind,
            user_id=recipient.id,
            appointment_id=appointment.id,
            payload=_payload(appointment, people, recipient, role) | (extra or {}),
        )


def _schedule_reminders(
    session: AsyncSession, rt: Runtime, appointment: Appointment, people: Participants
) -> None:
    now = rt.clock.now()
    for hours in sorted(set(rt.settings.reminder_offsets_hours), reverse=True):
        due_at = appointment.scheduled_at - timedelta(hours=hours)
        if due_at <= now:
            continue  # booked later than the reminder would go: the confirmation serves
        enqueue(
            session,
            rt,
            kind=NotificationKind.REMINDER,
            user_id=people.patient_user.id,
            appointment_id=appointment.id,
            payload=_payload(appointment, people, people.patient_user, "patient"),
            due_at=due_at,
        )


async def appointment_booked(
    session: AsyncSession, rt: Runtime, appointment: Appointment, people: Participants
) -> None:
    _to_both(session, rt, NotificationKind.BOOKED, appointment, people)
    _schedule_reminders(session, rt, appointment, people)


async def appointment_moved(
    session: AsyncSession,
    rt: Runtime,
    appointment: Appointment,
    people: Participants,
    *,
    previous_at: datetime,
) -> None:
    # The old reminders would name the old time: they never go out (the worker also checks).
    await repository.cancel_pending(
        session, appointment_id=appointment.id, kind=NotificationKind.REMINDER
    )
    _to_both(
        session,
        rt,
        NotificationKind.RESCHEDULED,
        appointment,
        people,
        extra={"previous_at": previous_at.isoformat()},
    )
    _schedule_reminders(session, rt, appointment, people)


async def appointment_cancelled(
    session: AsyncSession,
    rt: Runtime,
    appointment: Appointment,
    people: Participants,
    *,
    by: str,
    skip_user_id: int | None = None,
) -> None:
    await repository.cancel_pending(
        session, appointment_id=appointment.id, kind=NotificationKind.REMINDER
    )
    _to_both(
        session,
        rt,
        NotificationKind.CANCELLED,
        appointment,
        people,
        extra={"by": by},
        skip_user_id=skip_user_id,
    )


async def forget_recipient(session: AsyncSession, *, user_id: int) -> None:
    await repository.forget_recipient(session, user_id=user_id)


# --- administrators -------------------------------------------------------------------


async def list_notifications(
    session: AsyncSession,
    principal: Principal,
    *,
    status: DeliveryStatus | None,
    kind: NotificationKind | None,
    user_id: int | None,
    limit: int,
    cursor: str | None,
) -> Page[Notification]:
    require_admin(principal)
    rows = await repository.list_notifications(
        session,
        status=status,
        kind=kind,
        user_id=user_id,
        after_id=after_id(cursor),
        limit=limit + 1,
    )
    items = list(rows[:limit])
    next_cursor = encode_cursor([items[-1].id]) if len(rows) > limit else None
    return Page(items, next_cursor)


async def resend(
    session: AsyncSession, rt: Runtime, principal: Principal, *, notification_id: int
) -> Notification:
    """Queues a message again, now, with its Message-ID unchanged (a dead letter after the
    mail server is fixed, or a message a patient says never arrived)."""
    require_admin(principal)
    notification = (
        await repository.get(session, notification_id) if possible_id(notification_id) else None
    )
    if notification is None:
        raise NotificationNotFoundError(f"No notification {notification_id}.")
    now = rt.clock.now()
    before = notification.status
    notification.status = DeliveryStatus.PENDING
    notification.due_at = now
    notification.lease_until = None
    notification.attempts = 0
    notification.last_error = None
    await session.flush()
    audit.record(
        session,
        at=now,
        action="notification.resend",
        entity="notification",
        entity_id=notification.id,
        changes={"status": {"before": before, "after": DeliveryStatus.PENDING}},
    )
    return notification
