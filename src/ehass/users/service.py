"""Accounts: registration, profiles, deactivation. Object-level rules live here."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ehass.appointments import service as appointment_service
from ehass.appointments.guards import lock_doctors_before_closing
from ehass.audit import service as audit
from ehass.auth import recovery
from ehass.auth import service as auth_service
from ehass.core.pagination import Page, after_id, encode_cursor, possible_id
from ehass.core.passwords import hash_password, password_problem, verify_password
from ehass.core.principal import Principal, Role
from ehass.doctors.models import Doctor
from ehass.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    UnprocessableError,
)
from ehass.runtime import Runtime
from ehass.users import repository
from ehass.users.models import Patient, User
from ehass.users.schemas import RegisterRequest, UserUpdate


class EmailTakenError(ConflictError):
    slug = "email-taken"
    title = "Email already registered"


class UserNotFoundError(NotFoundError):
    slug = "user-not-found"
    title = "User not found"


def _fields(user: User) -> dict[str, Any]:
    """What the audit trail compares before and after a change (personal values redacted)."""
    fields: dict[str, Any] = {
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "is_active": user.is_active,
        "email_verified": user.email_verified,
    }
    if user.patient is not None:
        fields |= {"patient_id": user.patient.id, "date_of_birth": user.patient.date_of_birth}
    if user.doctor is not None:
        fields |= {
            "doctor_id": user.doctor.id,
            "specialty": user.doctor.specialty,
            "timezone": user.doctor.timezone,
        }
    return fields


def _audit_created(session: AsyncSession, rt: Runtime, user: User) -> None:
    now = rt.clock.now()
    audit.record(
        session,
        at=now,
        action="user.create",
        entity="user",
        entity_id=user.id,
        changes=audit.snapshot(_fields(user)),
    )
    if user.patient is not None:
        audit.record(
            session,
            at=now,
            action="patient.create",
            entity="patient",
            entity_id=user.patient.id,
            changes=audit.snapshot(
                {"user_id": user.id, "date_of_birth": user.patient.date_of_birth}
            ),
        )
    if user.doctor is not None:
        audit.record(
            session,
            at=now,
            action="doctor.create",
            entity="doctor",
            entity_id=user.doctor.id,
            changes=audit.snapshot(
                {
                    "user_id": user.id,
                    "specialty": user.doctor.specialty,
                    "timezone": user.doctor.timezone,
                }
            ),
        )


def _check_birth(born: date | None, rt: Runtime) -> None:
    if born is not None and born > rt.clock.now().date():
        raise UnprocessableError(
            "date of birth cannot be in the future", loc=("body", "date_of_birth")
        )


def _check_password(password: str, field: str = "password") -> None:
    if problem := password_problem(password):
        raise UnprocessableError(problem, loc=("body", field))


async def _insert(session: AsyncSession, user: User) -> None:
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:
        # Two registrations racing for one email: the unique index decides.
        raise EmailTakenError("An account with this email already exists.") from exc


async def register(
    session: AsyncSession, rt: Runtime, *, request: RegisterRequest, email_verified: bool = False
) -> User:
    """A new account; unless `email_verified` (accounts an operator vouches for, like the
    demo data), a link to verify its address is emailed to it."""
    _check_birth(request.date_of_birth, rt)
    _check_password(request.password)
    email = request.email.lower()
    if await repository.email_taken(session, email):
        raise EmailTakenError("An account with this email already exists.")
    now = rt.clock.now()
    user = User(
        email=email,
        name=request.name,
        password_hash=await hash_password(request.password),
        role=request.role,
        is_active=True,
        email_verified=email_verified,
        created_at=now,
        updated_at=now,
        patient=None,
        doctor=None,
    )
    if request.role == Role.PATIENT:
        assert request.date_of_birth is not None  # the schema requires it for patients
        user.patient = Patient(date_of_birth=request.date_of_birth)
    else:
        assert request.specialty is not None
        user.doctor = Doctor(specialty=request.specialty, timezone=request.timezone or "UTC")
    await _insert(session, user)
    if not email_verified:
        await recovery.send_verification(session, rt, user)
    _audit_created(session, rt, user)
    return user


async def create_admin(
    session: AsyncSession, rt: Runtime, *, email: str, name: str, password: str
) -> User:
    _check_password(password)
    email = email.lower()
    if await repository.email_taken(session, email):
        raise EmailTakenError("An account with this email already exists.")
    now = rt.clock.now()
    user = User(
        email=email,
        name=name,
        password_hash=await hash_password(password),
        role=Role.ADMIN,
        is_active=True,
        # Created from the command line by an operator, who vouches for the address.
        email_verified=True,
        created_at=now,
        updated_at=now,
        patient=None,
        doctor=None,
    )
    await _insert(session, user)
    _audit_created(session, rt, user)
    return user


async def _can_see(session: AsyncSession, principal: Principal, user: User) -> bool:
    if principal.is_admin or principal.user_id == user.id:
        return True
    if principal.role is Role.DOCTOR and principal.doctor_id and user.patient is not None:
        return await repository.doctor_sees_patient(
            session, doctor_id=principal.doctor_id, patient_id=user.patient.id
        )
    return False


async def _visible_user(
    session: AsyncSession, principal: Principal, user_id: int, *, for_update: bool = False
) -> User:
    user = await repository.get_user(session, user_id, for_update=for_update)
    if user is None or not await _can_see(session, principal, user):
        raise UserNotFoundError(f"No user {user_id}.")
    return user


async def _manageable_user(session: AsyncSession, principal: Principal, user_id: int) -> User:
    """A user the principal may change: 404 when they may not see it, 403 when only see it."""
    user = await _visible_user(session, principal, user_id, for_update=True)
    if not (principal.is_admin or principal.user_id == user.id):
        raise PermissionDeniedError("Only the user or an administrator may change this account.")
    return user


async def get(session: AsyncSession, rt: Runtime, principal: Principal, *, user_id: int) -> User:
    user = await _visible_user(session, principal, user_id)
    if user.patient is not None and principal.user_id != user.id:
        # Someone else opened a patient's record: HIPAA wants that read on the record.
        audit.record(
            session,
            at=rt.clock.now(),
            action="patient.read",
            entity="patient",
            entity_id=user.patient.id,
        )
    return user


async def update(
    session: AsyncSession, rt: Runtime, principal: Principal, *, user_id: int, request: UserUpdate
) -> User:
    if request.is_active is False and principal.is_admin and possible_id(user_id):
        await lock_doctors_before_closing(session, user_id=user_id, now=rt.clock.now())
    user = await _manageable_user(session, principal, user_id)
    sent = request.model_fields_set
    if "role" in sent:
        if not principal.is_admin:
            raise PermissionDeniedError("The role of an account cannot be changed.")
        raise UnprocessableError("The role of an account cannot be changed.", loc=("body", "role"))
    if "is_active" in sent and not principal.is_admin:
        raise PermissionDeniedError("Only an administrator may activate or deactivate accounts.")
    if "date_of_birth" in sent and user.patient is None:
        raise UnprocessableError(
            "Only patients have a date of birth.", loc=("body", "date_of_birth")
        )
    for field in ("specialty", "timezone"):
        if field in sent and user.doctor is None:
            raise UnprocessableError(f"Only doctors have a {field}.", loc=("body", field))

    _check_birth(request.date_of_birth, rt)
    now = rt.clock.now()
    before = _fields(user)
    email_changed = False
    if "password" in sent:
        assert request.password is not None
        # An administrator resetting someone else's password needs no current one.
        resetting_other = principal.is_admin and principal.user_id != user.id
        if not resetting_other and (
            request.current_password is None
            or not await verify_password(user.password_hash, request.current_password)
        ):
            raise PermissionDeniedError("current_password is missing or wrong.")
        _check_password(request.password)
        user.password_hash = await hash_password(request.password)
        keep = principal.session_id if principal.user_id == user.id else None
        await auth_service.revoke_user_sessions(
            session, rt, user_id=user.id, reason="password_changed", keep_session_id=keep
        )
    if "email" in sent and request.email is not None:
        email = request.email.lower()
        if email != user.email and await repository.email_taken(session, email, other_than=user.id):
            raise EmailTakenError("An account with this email already exists.")
        email_changed = email != user.email
        user.email = email
    if "name" in sent and request.name is not None:
        user.name = request.name
    if user.patient is not None and request.date_of_birth is not None:
        user.patient.date_of_birth = request.date_of_birth
    if user.doctor is not None:
        if request.specialty is not None:
            user.doctor.specialty = request.specialty
        if request.timezone is not None:
            user.doctor.timezone = request.timezone
    if request.is_active is not None and request.is_active != user.is_active:
        if request.is_active:
            user.is_active = True
        else:
            await _deactivate(session, rt, user)
    user.updated_at = now
    try:
        await session.flush()
    except IntegrityError as exc:
        raise EmailTakenError("An account with this email already exists.") from exc
    if email_changed:
        # After the flush: a race for the address is decided above, as EmailTakenError.
        await recovery.email_changed(session, rt, user)
    changes = audit.changes_between(before, _fields(user))
    if "password" in sent:
        changes["password"] = {"before": audit.REDACTED, "after": audit.REDACTED}
    if changes:
        audit.record(
            session, at=now, action="user.update", entity="user", entity_id=user.id, changes=changes
        )
    return user


async def _deactivate(session: AsyncSession, rt: Runtime, user: User) -> None:
    user.is_active = False
    user.updated_at = rt.clock.now()
    audit.record(
        session,
        at=user.updated_at,
        action="user.deactivate",
        entity="user",
        entity_id=user.id,
        changes={"is_active": {"before": True, "after": False}},
    )
    await auth_service.revoke_user_sessions(session, rt, user_id=user.id, reason="deactivated")
    await appointment_service.cancel_future_of(
        session,
        rt,
        patient_id=user.patient.id if user.patient else None,
        doctor_id=user.doctor.id if user.doctor else None,
    )


async def deactivate(
    session: AsyncSession, rt: Runtime, principal: Principal, *, user_id: int
) -> None:
    if (principal.is_admin or principal.user_id == user_id) and possible_id(user_id):
        await lock_doctors_before_closing(session, user_id=user_id, now=rt.clock.now())
    user = await _manageable_user(session, principal, user_id)
    if user.is_active:
        await _deactivate(session, rt, user)
        await session.flush()


async def list_users(
    session: AsyncSession,
    principal: Principal,
    *,
    role: Role | None,
    is_active: bool | None,
    q: str | None,
    limit: int,
    cursor: str | None,
) -> Page[User]:
    if not principal.is_admin:
        raise PermissionDeniedError("Only administrators may list users.")
    last_id = after_id(cursor)
    rows = await repository.list_users(
        session, role=role, is_active=is_active, q=q, after_id=last_id, limit=limit + 1
    )
    items = rows[:limit]
    next_cursor = encode_cursor([items[-1].id]) if len(rows) > limit else None
    return Page(items, next_cursor)


async def patient_names(
    session: AsyncSession, principal: Principal, *, patient_ids: set[int]
) -> dict[int, str]:
    """Names for a schedule: an administrator's of anyone, a doctor's of their own patients
    (a cancelled booking gives no standing, as for reading the record)."""
    if not patient_ids:
        return {}
    if principal.is_admin:
        return await repository.patient_names(session, patient_ids)
    if principal.role is Role.DOCTOR and principal.doctor_id is not None:
        return await repository.patient_names(session, patient_ids, doctor_id=principal.doctor_id)
    raise PermissionDeniedError("Only doctors and administrators see patients' names.")
