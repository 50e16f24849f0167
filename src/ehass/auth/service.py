"""Logins, sessions and tokens: who may call, and for how long."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from limits import RateLimitItemPerMinute
from sqlalchemy.ext.asyncio import AsyncSession

from ehass import metrics
from ehass.audit import service as audit
from ehass.auth import mfa, repository, session_cache
from ehass.auth.models import RefreshToken, UserSession
from ehass.auth.schemas import TokenPair
from ehass.core.passwords import hash_password, needs_rehash, verify_password
from ehass.core.principal import ClientInfo, Principal, Role
from ehass.core.tokens import (
    AccessClaims,
    InvalidToken,
    new_refresh_token,
    new_session_id,
    token_hash,
)
from ehass.errors import (
    NotAuthenticatedError,
    NotFoundError,
    PermissionDeniedError,
    TooManyRequestsError,
)
from ehass.runtime import Runtime
from ehass.users.models import User
from ehass.users.repository import get_user_by_email

log = structlog.get_logger("ehass.auth")


class InvalidCredentialsError(NotAuthenticatedError):
    slug = "invalid-credentials"
    title = "Invalid credentials"
    keep_changes = True  # the audit entry of the failure must be committed
    audit_as_denial = False


class MfaRequiredError(NotAuthenticatedError):
    slug = "mfa-required"
    title = "Second factor required"
    audit_as_denial = False


class EmailNotVerifiedError(PermissionDeniedError):
    slug = "email-not-verified"
    title = "Email not verified"


class SessionEndedError(NotAuthenticatedError):
    slug = "session-ended"
    title = "Session ended"
    keep_changes = True  # the revocation that ends it must be committed
    audit_as_denial = False


def _failure_limits(rt: Runtime) -> tuple[RateLimitItemPerMinute, RateLimitItemPerMinute]:
    window = rt.settings.login_failure_window_minutes
    return (
        RateLimitItemPerMinute(rt.settings.login_failures_per_account, window),
        RateLimitItemPerMinute(rt.settings.login_failures_per_address, window),
    )


async def _refuse_if_locked(rt: Runtime, email: str, ip: str) -> None:
    per_account, per_address = _failure_limits(rt)
    for item, keys, who in (
        (per_account, ("login-failures", "account", email), "this account"),
        (per_address, ("login-failures", "address", ip), "this address"),
    ):
        state = await rt.shared.limit_state(item, *keys)
        if not state.allowed:
            metrics.count_rate_limited()
            raise TooManyRequestsError(
                f"Too many failed logins for {who}; try again later.",
                retry_after=state.retry_after,
            )


async def _count_failure(rt: Runtime, email: str, ip: str) -> None:
    per_account, per_address = _failure_limits(rt)
    await rt.shared.hit(per_account, "login-failures", "account", email)
    await rt.shared.hit(per_address, "login-failures", "address", ip)


def _issue_access(
    rt: Runtime, user: User, user_session: UserSession, now: datetime, *, mfa_pending: bool
) -> tuple[str, int]:
    expires_at = min(
        now + timedelta(minutes=rt.settings.access_token_minutes), user_session.expires_at
    )
    claims = AccessClaims(
        user_id=user.id,
        session_id=user_session.id,
        role=user.role,
        patient_id=user.patient.id if user.patient else None,
        doctor_id=user.doctor.id if user.doctor else None,
        expires_at=expires_at,
        mfa_pending=mfa_pending,
    )
    return rt.signer.issue(claims, now=now), int((expires_at - now).total_seconds())


def _add_refresh_token(session: AsyncSession, session_id: str, now: datetime) -> str:
    token = new_refresh_token()
    session.add(RefreshToken(session_id=session_id, token_hash=token_hash(token), created_at=now))
    return token


async def _mfa_pending(session: AsyncSession, rt: Runtime, user: User) -> bool:
    """Staff without a second factor, when the setting makes one mandatory for them."""
    if not rt.settings.mfa_required_for_staff or user.role == Role.PATIENT:
        return False
    return await mfa.confirmed_factor(session, user.id) is None


async def login(
    session: AsyncSession,
    rt: Runtime,
    *,
    email: str,
    password: str,
    client: ClientInfo,
    otp: str | None = None,
) -> TokenPair:
    user, user_session = await start_session(
        session, rt, email=email, password=password, client=client, otp=otp
    )
    now = user_session.created_at
    refresh = _add_refresh_token(session, user_session.id, now)
    access, expires_in = _issue_access(
        rt, user, user_session, now, mfa_pending=await _mfa_pending(session, rt, user)
    )
    return TokenPair(access_token=access, refresh_token=refresh, expires_in=expires_in)


async def start_session(
    session: AsyncSession,
    rt: Runtime,
    *,
    email: str,
    password: str,
    client: ClientInfo,
    otp: str | None = None,
) -> tuple[User, UserSession]:
    """Checks the credentials and opens a session: the API hands out tokens naming it, the
    web pages a cookie naming it. Either way revoking the session ends it."""
    email = email.strip().lower()
    ip = client.ip or "unknown"
    limited = rt.settings.rate_limit_enabled
    if limited:
        await _refuse_if_locked(rt, email, ip)
    user = await get_user_by_email(session, email)
    # Verified even for unknown emails, so the answer takes as long either way.
    valid = await verify_password(user.password_hash if user else None, password)
    reason = _failure_reason(user, valid)
    factor = (
        await mfa.confirmed_factor(session, user.id) if user and valid and user.is_active else None
    )
    if factor is not None:
        if not otp:
            raise MfaRequiredError("Enter the code from your authenticator app (field `otp`).")
        if not await mfa.check_second_factor(session, factor, code=otp, now=rt.clock.now()):
            valid, reason = False, "wrong_otp"
    if user is None or not valid or not user.is_active:
        if limited:
            await _count_failure(rt, email, ip)
        audit.record(
            session,
            at=rt.clock.now(),
            action="auth.login_failed",
            entity="user",
            entity_id=user.id if user else None,
            actor_id=user.id if user else None,
            actor_role=user.role if user else None,
            changes={"reason": reason},
        )
        metrics.count_login_failure()
        log.info("auth.login_failed", user_id=user.id if user else None)
        raise InvalidCredentialsError("Invalid email or password.")

    now = rt.clock.now()
    if needs_rehash(user.password_hash):
        user.password_hash = await hash_password(password)
    user_session = UserSession(
        id=new_session_id(),
        user_id=user.id,
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(hours=rt.settings.session_absolute_hours),
        ip=client.ip,
        user_agent=(client.user_agent or "")[:255] or None,
    )
    session.add(user_session)
    await session.flush()
    audit.record(
        session,
        at=now,
        action="auth.login",
        entity="session",
        entity_id=user_session.id,
        actor_id=user.id,
        actor_role=user.role,
    )
    log.info("auth.login", user_id=user.id, session_id=user_session.id)
    return user, user_session


async def refresh(session: AsyncSession, rt: Runtime, *, refresh_token: str) -> TokenPair:
    now = rt.clock.now()
    found = await repository.find_refresh(session, token_hash(refresh_token))
    if found is None:
        raise InvalidCredentialsError("The refresh token is not valid.")
    token, user_session, user = found
    if user_session.revoked_at is not None or user_session.expires_at <= now:
        raise SessionEndedError("The session has ended; log in again.")
    idle_limit = user_session.last_seen_at + timedelta(minutes=rt.settings.session_idle_minutes)
    actor = {"actor_id": user.id, "actor_role": user.role}
    if idle_limit <= now:
        await _revoke(session, rt, session_id=user_session.id, reason="idle", now=now)
        audit.record(
            session,
            at=now,
            action="auth.session_expired",
            entity="session",
            entity_id=user_session.id,
            changes={"reason": "idle"},
            **actor,
        )
        raise SessionEndedError("The session was idle too long; log in again.")
    if not await repository.claim_refresh(session, token.id, now=now):
        # A refresh token presented twice was stolen or leaked: end the whole session.
        await _revoke(session, rt, session_id=user_session.id, reason="refresh_reuse", now=now)
        audit.record(
            session,
            at=now,
            action="auth.refresh_reuse",
            entity="session",
            entity_id=user_session.id,
            **actor,
        )
        log.warning("auth.refresh_reuse", user_id=user.id, session_id=user_session.id)
        raise SessionEndedError("This refresh token was already used; the session is revoked.")
    if not user.is_active:
        await _revoke(session, rt, session_id=user_session.id, reason="deactivated", now=now)
        raise SessionEndedError("The account is deactivated.")

    user_session.last_seen_at = now
    new_token = _add_refresh_token(session, user_session.id, now)
    audit.record(
        session,
        at=now,
        action="auth.refresh",
        entity="session",
        entity_id=user_session.id,
        **actor,
    )
    access, expires_in = _issue_access(
        rt, user, user_session, now, mfa_pending=await _mfa_pending(session, rt, user)
    )
    return TokenPair(access_token=access, refresh_token=new_token, expires_in=expires_in)


def _failure_reason(user: User | None, password_ok: bool) -> str:
    if user is None:
        return "unknown_email"
    return "wrong_password" if not password_ok else "inactive"


async def _revoke(
    session: AsyncSession,
    rt: Runtime,
    *,
    now: datetime,
    reason: str,
    session_id: str | None = None,
    user_id: int | None = None,
    keep_session_id: str | None = None,
) -> int:
    revoked = await repository.revoke_sessions(
        session,
        session_id=session_id,
        user_id=user_id,
        keep_session_id=keep_session_id,
        now=now,
        reason=reason,
    )
    await session_cache.mark_revoked(rt, revoked, now)
    for sid, _expires_at in revoked:
        audit.record(
            session,
            at=now,
            action="session.revoke",
            entity="session",
            entity_id=sid,
            changes={"revoked_reason": {"after": reason}},
        )
    return len(revoked)


async def logout(session: AsyncSession, rt: Runtime, principal: Principal) -> None:
    await _revoke(session, rt, session_id=principal.session_id, reason="logout", now=rt.clock.now())


async def revoke_user_sessions(
    session: AsyncSession,
    rt: Runtime,
    *,
    user_id: int,
    reason: str,
    keep_session_id: str | None = None,
) -> int:
    return await _revoke(
        session,
        rt,
        user_id=user_id,
        keep_session_id=keep_session_id,
        reason=reason,
        now=rt.clock.now(),
    )


async def current_session(session: AsyncSession, principal: Principal) -> UserSession:
    user_session = await session.get(UserSession, principal.session_id)
    if user_session is None:
        raise NotFoundError("Session not found.")
    return user_session


class TokenMismatchError(NotAuthenticatedError):
    """A validly signed token whose claims are not its session's account: only someone who
    holds the signing secret can make one."""

    slug = "token-mismatch"
    title = "Token does not match its session"


async def authenticate(session: AsyncSession, rt: Runtime, *, token: str) -> Principal:
    """The caller behind a bearer token; 401 for a bad, expired or revoked one.

    Who the caller is comes from the session's account, never from the token alone: a
    token whose user, role, patient or doctor differs from its session's account is
    refused. The account comes from the shared session cache; `session` is used only on a
    miss, and an AsyncSession opens no connection before its first statement.
    """
    now = rt.clock.now()
    try:
        claims = rt.signer.verify(token, now=now)
    except InvalidToken as exc:
        raise NotAuthenticatedError("The access token is invalid or expired.") from exc
    account = await session_cache.load(session, rt, session_id=claims.session_id, now=now)
    if account is None or not account.usable(now):
        raise NotAuthenticatedError("The session has ended; log in again.")
    if (claims.user_id, claims.role, claims.patient_id, claims.doctor_id) != (
        account.user_id,
        account.role,
        account.patient_id,
        account.doctor_id,
    ):
        log.warning("auth.token_mismatch", session_id=claims.session_id, user_id=account.user_id)
        raise TokenMismatchError("The access token does not match its session; log in again.")
    return Principal(
        user_id=account.user_id,
        role=account.role,
        session_id=claims.session_id,
        patient_id=account.patient_id,
        doctor_id=account.doctor_id,
        # A token issued before enrolment stays limited until it is refreshed; one issued
        # before the factor was removed is limited at once.
        mfa_pending=claims.mfa_pending or account.mfa_pending(rt),
    )


class SessionNotFoundError(NotFoundError):
    slug = "session-not-found"
    title = "Session not found"


async def list_sessions(
    session: AsyncSession, rt: Runtime, principal: Principal
) -> list[UserSession]:
    return await repository.live_sessions(session, user_id=principal.user_id, now=rt.clock.now())


async def revoke_session(
    session: AsyncSession, rt: Runtime, principal: Principal, *, session_id: str
) -> None:
    """Ends one of the caller's own sessions (a lost phone, a shared computer)."""
    target = await session.get(UserSession, session_id)
    if target is None or target.user_id != principal.user_id:
        raise SessionNotFoundError(f"No session {session_id}.")
    await _revoke(session, rt, session_id=session_id, reason="revoked_by_user", now=rt.clock.now())


async def require_verified_email(session: AsyncSession, rt: Runtime, principal: Principal) -> None:
    """With EHASS_REQUIRE_VERIFIED_EMAIL on, only a caller whose address is verified may book:
    confirmations and reminders must reach the person who made the booking."""
    if not rt.settings.require_verified_email:
        return
    user = await session.get(User, principal.user_id)
    if user is None or not user.email_verified:
        raise EmailNotVerifiedError(
            "Booking needs a verified email address: follow the link emailed to you when you "
            "registered or changed your address. A password reset also verifies it."
        )


class BrowserSessionEndedError(NotAuthenticatedError):
    """A cookie naming a session that is over: the browser is sent to sign in again."""

    slug = "session-ended"
    title = "Session ended"
    audit_as_denial = False


# A browser session is touched at most this often: not every page view needs a write.
TOUCH_INTERVAL = timedelta(seconds=60)


async def authenticate_session(session: AsyncSession, rt: Runtime, *, session_id: str) -> Principal:
    """The caller behind a browser session cookie; 401 for an ended, idle or unknown one.

    The same rows and rules as tokens: a session revoked by logout, a password change or a
    deactivation ends the browser's sign-in too.
    """
    now = rt.clock.now()
    found = await repository.find_session(session, session_id)
    if found is None:
        raise BrowserSessionEndedError("Sign in first.")
    user_session, user = found
    if user_session.revoked_at is not None or user_session.expires_at <= now:
        raise BrowserSessionEndedError("The session has ended; sign in again.")
    if not user.is_active:
        await _revoke(session, rt, session_id=user_session.id, reason="deactivated", now=now)
        raise SessionEndedError("The account is deactivated.")
    if user_session.last_seen_at + timedelta(minutes=rt.settings.session_idle_minutes) <= now:
        await _revoke(session, rt, session_id=user_session.id, reason="idle", now=now)
        audit.record(
            session,
            at=now,
            action="auth.session_expired",
            entity="session",
            entity_id=user_session.id,
            actor_id=user.id,
            actor_role=user.role,
            changes={"reason": "idle"},
        )
        raise SessionEndedError("The session was idle too long; sign in again.")
    if now - user_session.last_seen_at >= TOUCH_INTERVAL:
        user_session.last_seen_at = now
    return Principal(
        user_id=user.id,
        role=Role(user.role),
        session_id=user_session.id,
        patient_id=user.patient.id if user.patient else None,
        doctor_id=user.doctor.id if user.doctor else None,
        mfa_pending=await _mfa_pending(session, rt, user),
    )
