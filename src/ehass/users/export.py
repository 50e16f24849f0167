"""What EHASS holds about a person (GDPR access and portability) and erasing who they are."""

from __future__ import annotations

import secrets
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ehass.appointments import repository as appointment_repository
from ehass.appointments.schemas import AppointmentRead
from ehass.audit import service as audit
from ehass.audit.schemas import AuditEntryRead
from ehass.auth import recovery
from ehass.auth import repository as auth_repository
from ehass.auth.models import MfaFactor
from ehass.availability import repository as availability_repository
from ehass.calendars import repository as calendar_repository
from ehass.calendars import service as calendars
from ehass.core.passwords import hash_password
from ehass.core.principal import Principal
from ehass.errors import ConflictError, PermissionDeniedError
from ehass.holds import repository as hold_repository
from ehass.holds.schemas import HoldRead
from ehass.notifications import repository as notification_repository
from ehass.notifications import service as notifications
from ehass.notifications.schemas import NotificationRead
from ehass.runtime import Runtime
from ehass.users import repository
from ehass.users.models import User
from ehass.users.schemas import UserRead
from ehass.users.service import UserNotFoundError
from ehass.waitlist import repository as waitlist_repository
from ehass.waitlist.models import WaitlistStatus
from ehass.waitlist.schemas import WaitlistEntryRead

ERASED_DATE_OF_BIRTH = date(1900, 1, 1)


class StillActiveError(ConflictError):
    slug = "still-active"
    title = "Account still active"


async def export(
    session: AsyncSession, rt: Runtime, principal: Principal, *, user_id: int
) -> dict[str, Any]:
    """Everything held about the person: the account, bookings, holds and waitlist places,
    the messages sent to them, sessions and the audit entries about them or made by them.
    Only the person or an administrator."""
    user = await repository.get_user(session, user_id)
    if user is None or not (principal.is_admin or principal.user_id == user_id):
        raise UserNotFoundError(f"No user {user_id}.")
    patient_id = user.patient.id if user.patient is not None else None
    doctor_id = user.doctor.id if user.doctor is not None else None
    appointments = await appointment_repository.of_person(
        session, patient_id=patient_id, doctor_id=doctor_id
    )
    sessions = await auth_repository.all_sessions(session, user_id=user.id)
    entries = await audit.entries_about(session, user_id=user.id)
    messages = await notification_repository.of_recipient(session, user_id=user.id)
    data: dict[str, Any] = {
        "generated_at": rt.clock.now(),
        "user": UserRead.of(user).model_dump(mode="json"),
        "mfa_enabled": await session.get(MfaFactor, user.id) is not None,
        "calendar_feed": await calendar_repository.has_feed(session, user_id=user.id),
        "appointments": [
            AppointmentRead.model_validate(a).model_dump(mode="json") for a in appointments
        ],
        "notifications": [
            NotificationRead.model_validate(m).model_dump(mode="json") for m in messages
        ],
        "sessions": [
            {
                "session_id": s.id,
                "created_at": s.created_at,
                "last_seen_at": s.last_seen_at,
                "expires_at": s.expires_at,
                "revoked_at": s.revoked_at,
                "ip": s.ip,
                "user_agent": s.user_agent,
            }
            for s in sessions
        ],
        "audit_entries": [
            AuditEntryRead.model_validate(e).model_dump(mode="json") for e in entries
        ],
    }
    if patient_id is not None:
        holds = await hold_repository.of_patient(session, patient_id=patient_id)
        waiting = await waitlist_repository.of_patient(
            session, patient_id=patient_id, statuses=list(WaitlistStatus)
        )
        data["holds"] = [HoldRead.model_validate(h).model_dump(mode="json") for h in holds]
        data["waitlist"] = [
            WaitlistEntryRead.model_validate(w).model_dump(mode="json") for w in waiting
        ]
    if doctor_id is not None:
        weekly = await availability_repository.weekly_windows(session, doctor_id)
        overrides = await availability_repository.overrides_between(session, doctor_id, date.min)
        data["availability"] = {
            "weekly": [
                {"weekday": w.weekday, "start": w.start_time, "end": w.end_time} for w in weekly
            ],
            "overrides": [{"date": o.on_date, "windows": o.windows} for o in overrides],
        }
    audit.record(session, at=rt.clock.now(), action="user.export", entity="user", entity_id=user.id)
    return data


async def erase(session: AsyncSession, rt: Runtime, principal: Principal, *, user_id: int) -> User:
    """Pseudonymises a deactivated person: name, email and date of birth are replaced, the
    password and second factor made unusable. Appointments and the audit trail stay, as
    medical-record retention requires; the chain never held these values, so it stays valid."""
    if not principal.is_admin:
        raise PermissionDeniedError("Administrators only.")
    user = await repository.get_user(session, user_id, for_update=True)
    if user is None:
        raise UserNotFoundError(f"No user {user_id}.")
    if user.is_active:
        raise StillActiveError("Deactivate the account (DELETE /users/{id}) before erasing it.")
    if user.email.endswith("@erased.invalid"):
        return user
    user.name = f"Erased user {user.id}"
    user.email = f"erased-{user.id}@erased.invalid"
    user.password_hash = await hash_password(secrets.token_urlsafe(32))
    if user.patient is not None:
        user.patient.date_of_birth = ERASED_DATE_OF_BIRTH
    factor = await session.get(MfaFactor, user.id)
    if factor is not None:
        await session.delete(factor)
    await notifications.forget_recipient(session, user_id=user.id)
    await calendars.forget(session, user_id=user.id)
    await recovery.forget(session, user_id=user.id)
    user.updated_at = rt.clock.now()
    await session.flush()
    audit.record(
        session,
        at=user.updated_at,
        action="user.erase",
        entity="user",
        entity_id=user.id,
        changes={
            field: {"before": audit.PERSONAL_DATA, "after": audit.PERSONAL_DATA}
            for field in ("name", "email", *(["date_of_birth"] if user.patient else []))
        },
    )
    return user
