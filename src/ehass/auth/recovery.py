"""Password reset and email verification: single-use links sent by email.

A link carries a random token (256 bits); only its SHA-256 is stored, one per user and
purpose, so a new link replaces the previous one. Using a link deletes it. Every way a link
can fail (unknown, used, replaced, expired, account deactivated) gives the same answer, so
the answer says nothing about the account behind it.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import timedelta
from functools import lru_cache

import anyio
import structlog
from limits import RateLimitItem, parse
from sqlalchemy.ext.asyncio import AsyncSession

from ehass import metrics
from ehass.audit import service as audit
from ehass.auth import repository
from ehass.auth import service as auth_service
from ehass.core.passwords import hash_password, password_problem
from ehass.core.principal import ClientInfo
from ehass.core.tokens import token_hash
from ehass.errors import DomainError, TooManyRequestsError, UnprocessableError
from ehass.notifications import service as notifications
from ehass.notifications.models import NotificationKind
from ehass.runtime import Runtime
from ehass.users import repository as user_repository
from ehass.users.models import User

log = structlog.get_logger("ehass.auth")

PASSWORD_RESET = "password_reset"  # noqa: S105 - a purpose name
VERIFY_EMAIL = "verify_email"

# A reset request takes at least this long whatever the outcome: an unknown address does
# less work (no lock, no link, no message), and the difference must not show.
RESET_REQUEST_SECONDS = 0.25


class InvalidLinkError(DomainError):
    status_code = 400
    slug = "invalid-link"
    title = "Link not valid"
    audit_as_denial = False


_INVALID_LINK = (
    "This link is not valid: it was already used, has expired, or a newer one was sent. "
    "Ask for a new one."
)


@lru_cache(maxsize=8)
def _limit(notation: str) -> RateLimitItem:
    return parse(notation)


def _email_key(email: str) -> str:
    # Counters live in Redis: keyed by a digest, they hold no address anyone could read.
    return hashlib.sha256(email.encode()).hexdigest()


async def _count_request(rt: Runtime, action: str, *, ip: str | None, email: str | None) -> None:
    """Counts the request against its address (and email); 429 past either limit. Every
    request counts, for unknown emails too, so a refusal tells nothing about an account."""
    if not rt.settings.rate_limit_enabled:
        return
    counters = [(_limit(rt.settings.recovery_per_address), "address", ip or "unknown")]
    if email is not None:
        counters.append((_limit(rt.settings.recovery_per_email), "email", _email_key(email)))
    for item, scope, key in counters:
        state = await rt.shared.hit(item, "recovery", action, scope, key)
        if not state.allowed:
            metrics.count_rate_limited()
            who = "this address" if scope == "address" else "this email address"
            raise TooManyRequestsError(
                f"Too many requests from {who}; try again later.", retry_after=state.retry_after
            )


async def _issue(
    session: AsyncSession, rt: Runtime, user: User, *, purpose: str, lifetime: timedelta
) -> str:
    token = secrets.token_urlsafe(32)
    now = rt.clock.now()
    await repository.replace_account_token(
        session,
        user_id=user.id,
        purpose=purpose,
        token_hash=token_hash(token),
        now=now,
        expires_at=now + lifetime,
    )
    return token


def _link(rt: Runtime, page: str, token: str) -> str:
    return f"{rt.settings.public_url.rstrip('/')}/{page}?token={token}"


async def _use(session: AsyncSession, rt: Runtime, *, token: str, purpose: str) -> User:
    """The active user a link belongs to; the link is used up by this call."""
    digest = token_hash(token)
    found = await repository.find_account_token(session, token_hash=digest, purpose=purpose)
    if found is None or found.expires_at <= rt.clock.now():
        raise InvalidLinkError(_INVALID_LINK)
    # The account before its link, the order a new request takes them in: no deadlock.
    user = await user_repository.get_user(session, found.user_id, for_update=True)
    if not await repository.claim_account_token(session, token_hash=digest, purpose=purpose):
        raise InvalidLinkError(_INVALID_LINK)  # another request used it a moment earlier
    if user is None or not user.is_active:
        raise InvalidLinkError(_INVALID_LINK)
    return user


async def request_password_reset(
    session: AsyncSession, rt: Runtime, *, email: str, client: ClientInfo
) -> None:
    """Sends a reset link when an active account uses `email`; the caller cannot tell."""
    email = email.strip().lower()
    await _count_request(rt, "password-reset", ip=client.ip, email=email)
    started = time.monotonic()
    user = await user_repository.get_user_by_email(session, email)
    if user is None:
        outcome = "unknown_email"
    elif not user.is_active:
        outcome = "inactive"
    else:
        outcome = "sent"
        await user_repository.lock_user(session, user.id)
        minutes = rt.settings.password_reset_minutes
        token = await _issue(
            session, rt, user, purpose=PASSWORD_RESET, lifetime=timedelta(minutes=minutes)
        )
        notifications.enqueue(
            session,
            rt,
            kind=NotificationKind.PASSWORD_RESET,
            user_id=user.id,
            payload={
                "to": user.email,
                "name": user.name,
                "link": _link(rt, "reset-password", token),
                "valid_minutes": minutes,
            },
        )
    audit.record(
        session,
        at=rt.clock.now(),
        action="auth.password_reset_requested",
        entity="user",
        entity_id=user.id if user else None,
        changes={"outcome": outcome},
    )
    log.info("auth.password_reset_requested", user_id=user.id if user else None)
    await anyio.sleep(max(0.0, RESET_REQUEST_SECONDS - (time.monotonic() - started)))


async def reset_password(
    session: AsyncSession, rt: Runtime, *, token: str, new_password: str, client: ClientInfo
) -> None:
    """Sets a new password through a reset link and ends every session of the account."""
    await _count_request(rt, "password-reset-confirm", ip=client.ip, email=None)
    if problem := password_problem(new_password):
        raise UnprocessableError(problem, loc=("body", "new_password"))
    user = await _use(session, rt, token=token, purpose=PASSWORD_RESET)
    now = rt.clock.now()
    changes = {"password": {"before": audit.REDACTED, "after": audit.REDACTED}}
    user.password_hash = await hash_password(new_password)
    if not user.email_verified:
        # The link reached this address, and an address change drops pending reset links:
        # the address is as proven as a verification link would prove it.
        user.email_verified = True
        changes["email_verified"] = {"before": False, "after": True}
    user.updated_at = now
    await session.flush()
    await auth_service.revoke_user_sessions(session, rt, user_id=user.id, reason="password_reset")
    audit.record(
        session,
        at=now,
        action="auth.password_reset",
        entity="user",
        entity_id=user.id,
        actor_id=user.id,
        actor_role=user.role,
        changes=changes,
    )
    log.info("auth.password_reset", user_id=user.id)


async def send_verification(session: AsyncSession, rt: Runtime, user: User) -> None:
    """Emails `user` a link that proves they own their address; replaces any earlier one."""
    hours = rt.settings.email_verification_hours
    token = await _issue(session, rt, user, purpose=VERIFY_EMAIL, lifetime=timedelta(hours=hours))
    notifications.enqueue(
        session,
        rt,
        kind=NotificationKind.VERIFY_EMAIL,
        user_id=user.id,
        payload={
            "to": user.email,
            "name": user.name,
            "link": _link(rt, "verify-email", token),
            "valid_hours": hours,
        },
    )


async def email_changed(session: AsyncSession, rt: Runtime, user: User) -> None:
    """A new address is unverified until its owner follows the link sent to it. A reset link
    already sent to the old address stops working: it would prove nothing about the new one."""
    user.email_verified = False
    await repository.drop_account_tokens(session, user_id=user.id, purpose=PASSWORD_RESET)
    await send_verification(session, rt, user)


async def verify_email(
    session: AsyncSession, rt: Runtime, *, token: str, client: ClientInfo
) -> None:
    await _count_request(rt, "verify-email", ip=client.ip, email=None)
    user = await _use(session, rt, token=token, purpose=VERIFY_EMAIL)
    now = rt.clock.now()
    before = user.email_verified  # already true when a password reset proved the address
    user.email_verified = True
    user.updated_at = now
    await session.flush()
    audit.record(
        session,
        at=now,
        action="auth.email_verified",
        entity="user",
        entity_id=user.id,
        actor_id=user.id,
        actor_role=user.role,
        changes={"email_verified": {"before": before, "after": True}},
    )
    log.info("auth.email_verified", user_id=user.id)


async def forget(session: AsyncSession, *, user_id: int) -> None:
    """Drops every pending link of an account being erased."""
    await repository.drop_account_tokens(session, user_id=user_id)
