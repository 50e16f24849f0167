"""Multi-factor authentication with TOTP (RFC 6238) and single-use recovery codes."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

import pyotp
import segno
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ehass.audit import service as audit
from ehass.auth import session_cache
from ehass.auth.models import MfaFactor, RecoveryCode
from ehass.core.passwords import verify_password
from ehass.core.principal import Principal
from ehass.core.tokens import token_hash
from ehass.errors import ConflictError, PermissionDeniedError, UnprocessableError
from ehass.runtime import Runtime
from ehass.users.repository import get_user

ISSUER = "EHASS"
RECOVERY_CODES = 10
STEP_SECONDS = 30


class MfaAlreadyEnabledError(ConflictError):
    slug = "mfa-already-enabled"
    title = "MFA already enabled"


@dataclass(frozen=True, slots=True)
class Enrolment:
    secret: str
    otpauth_uri: str
    qr_svg: str


def _step(at: datetime) -> int:
    return int(at.timestamp()) // STEP_SECONDS


async def confirmed_factor(session: AsyncSession, user_id: int) -> MfaFactor | None:
    factor = await session.get(MfaFactor, user_id)
    return factor if factor is not None and factor.confirmed_at is not None else None


async def enroll(session: AsyncSession, rt: Runtime, principal: Principal) -> Enrolment:
    factor = await session.get(MfaFactor, principal.user_id)
    if factor is not None and factor.confirmed_at is not None:
        raise MfaAlreadyEnabledError("Multi-factor authentication is already enabled.")
    secret = pyotp.random_base32()
    if factor is None:
        session.add(MfaFactor(user_id=principal.user_id, secret=secret, created_at=rt.clock.now()))
    else:  # an unconfirmed enrolment is simply replaced
        factor.secret, factor.created_at = secret, rt.clock.now()
    await session.flush()
    user = await get_user(session, principal.user_id)
    assert user is not None  # the principal's own account
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)
    qr = segno.make(uri, error="m").svg_data_uri(scale=4)
    return Enrolment(secret=secret, otpauth_uri=uri, qr_svg=qr)


def _accept_code(factor: MfaFactor, code: str, now: datetime) -> bool:
    """True for a current code (one step of clock drift allowed) not accepted before."""
    totp = pyotp.TOTP(factor.secret)
    for drift in (0, -1, 1):
        step = _step(now) + drift
        if step <= (factor.last_used_step or -1):
            continue
        if secrets.compare_digest(totp.at(step * STEP_SECONDS).encode(), code.encode()):
            factor.last_used_step = step
            return True
    return False


async def confirm(
    session: AsyncSession, rt: Runtime, principal: Principal, *, code: str
) -> list[str]:
    factor = await session.get(MfaFactor, principal.user_id)
    if factor is None:
        raise UnprocessableError("Start with POST /auth/mfa/enroll.", loc=("body", "code"))
    if factor.confirmed_at is not None:
        raise MfaAlreadyEnabledError("Multi-factor authentication is already enabled.")
    now = rt.clock.now()
    if not _accept_code(factor, code, now):
        raise UnprocessableError(
            "That code is not valid; check the device's clock.", loc=("body", "code")
        )
    factor.confirmed_at = now
    codes = [secrets.token_hex(8) for _ in range(RECOVERY_CODES)]
    session.add_all(RecoveryCode(user_id=principal.user_id, code_hash=token_hash(c)) for c in codes)
    await session.flush()
    await session_cache.account_changed(session, rt, user_id=principal.user_id)
    audit.record(session, at=now, action="mfa.enable", entity="user", entity_id=principal.user_id)
    return codes


async def disable(
    session: AsyncSession, rt: Runtime, principal: Principal, *, password: str
) -> None:
    user = await get_user(session, principal.user_id)
    if user is None or not await verify_password(user.password_hash, password):
        raise PermissionDeniedError("The password is wrong.")
    factor = await session.get(MfaFactor, principal.user_id)
    if factor is not None:
        await session.delete(factor)
    await session.execute(
        update(RecoveryCode)
        .where(RecoveryCode.user_id == principal.user_id, RecoveryCode.used_at.is_(None))
        .values(used_at=rt.clock.now())
    )
    await session.flush()
    await session_cache.account_changed(session, rt, user_id=principal.user_id)
    audit.record(
        session, at=rt.clock.now(), action="mfa.disable", entity="user", entity_id=principal.user_id
    )


async def check_second_factor(
    session: AsyncSession, factor: MfaFactor, *, code: str, now: datetime
) -> bool:
    """A TOTP code, or one of the unused recovery codes (which it then uses up)."""
    code = code.strip().replace(" ", "")
    if code.isdigit() and len(code) == 6:
        return _accept_code(factor, code, now)
    result = await session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == factor.user_id,
            RecoveryCode.code_hash == token_hash(code.lower()),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


async def remaining_recovery_codes(session: AsyncSession, user_id: int) -> int:
    rows = await session.execute(
        select(RecoveryCode.id).where(
            RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)
        )
    )
    return len(rows.all())
