"""Accounts: registration, profiles, deactivation. Object-level rules live here."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ehass.appointments import service as appointment_service
from ehass.auth import service as auth_service
from ehass.core.pagination import Page, decode_cursor, encode_cursor
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


async def register(session: AsyncSession, rt: Runtime, *, request: RegisterRequest) -> User:
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
        created_at=now,
        updated_at=now,
        patient=None,
        doctor=None,
    )
    await _insert(session, user)
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


async def get(session: AsyncSession, principal: Principal, *, user_id: int) -> User:
    return await _visible_user(session, principal, user_id)


async def update(
    session: AsyncSession, rt: Runtime, principal: Principal, *, user_id: int, request: UserUpdate
) -> User:
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

    now = rt.clock.now()
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
    return user


async def _deactivate(session: AsyncSession, rt: Runtime, user: User) -> None:
    user.is_active = False
    user.updated_at = rt.clock.now()
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
    after_id = decode_cursor(cursor, types=(int,))[0] if cursor else None
    rows = await repository.list_users(
        session, role=role, is_active=is_active, q=q, after_id=after_id, limit=limit + 1
    )
    items = rows[:limit]
    next_cursor = encode_cursor([items[-1].id]) if len(rows) > limit else None
    return Page(items, next_cursor)
