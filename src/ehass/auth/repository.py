from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from ehass.auth.models import AccountToken, MfaFactor, RefreshToken, UserSession
from ehass.doctors.models import Doctor
from ehass.users.models import Patient, User


async def find_refresh(
    session: AsyncSession, token_hash: str
) -> Row[tuple[RefreshToken, UserSession, User]] | None:
    query = (
        select(RefreshToken, UserSession, User)
        .join(UserSession, RefreshToken.session_id == UserSession.id)
        .join(User, UserSession.user_id == User.id)
        .where(RefreshToken.token_hash == token_hash)
        .options(joinedload(User.patient), joinedload(User.doctor))
    )
    return (await session.execute(query)).first()


async def claim_refresh(session: AsyncSession, token_id: int, *, now: datetime) -> bool:
    """Marks the token used; False when another request used it first."""
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == token_id, RefreshToken.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def _session_accounts() -> Select[Any]:
    """Each session with what authentication needs of its account, in one statement."""
    return (
        select(
            UserSession.id,
            UserSession.user_id,
            UserSession.revoked_at,
            UserSession.expires_at,
            User.role,
            User.is_active,
            Patient.id.label("patient_id"),
            Doctor.id.label("doctor_id"),
            MfaFactor.confirmed_at.label("factor_confirmed_at"),
        )
        .join(User, UserSession.user_id == User.id)
        .outerjoin(Patient, Patient.user_id == User.id)
        .outerjoin(Doctor, Doctor.user_id == User.id)
        .outerjoin(MfaFactor, MfaFactor.user_id == User.id)
    )


async def session_account(session: AsyncSession, session_id: str) -> Row[Any] | None:
    query = _session_accounts().where(UserSession.id == session_id)
    return (await session.execute(query)).first()


async def live_session_accounts(
    session: AsyncSession, *, user_id: int, now: datetime
) -> list[Row[Any]]:
    query = _session_accounts().where(
        UserSession.user_id == user_id,
        UserSession.revoked_at.is_(None),
        UserSession.expires_at > now,
    )
    return list((await session.execute(query)).all())


async def revoke_sessions(
    session: AsyncSession,
    *,
    user_id: int | None = None,
    session_id: str | None = None,
    keep_session_id: str | None = None,
    now: datetime,
    reason: str,
) -> list[tuple[str, datetime]]:
    """Revokes live sessions; returns (id, expires_at) of each one it revoked."""
    query = select(UserSession.id, UserSession.expires_at).where(
        UserSession.revoked_at.is_(None), UserSession.expires_at > now
    )
    if user_id is not None:
        query = query.where(UserSession.user_id == user_id)
    if session_id is not None:
        query = query.where(UserSession.id == session_id)
    if keep_session_id is not None:
        query = query.where(UserSession.id != keep_session_id)
    live = [(row.id, row.expires_at) for row in await session.execute(query)]
    if live:
        await session.execute(
            update(UserSession)
            .where(UserSession.id.in_([sid for sid, _ in live]))
            .values(revoked_at=now, revoked_reason=reason)
            .execution_options(synchronize_session=False)
        )
    return live


async def live_sessions(session: AsyncSession, *, user_id: int, now: datetime) -> list[UserSession]:
    query = (
        select(UserSession)
        .where(
            UserSession.user_id == user_id,
            UserSession.revoked_at.is_(None),
            UserSession.expires_at > now,
        )
        .order_by(UserSession.created_at.desc())
    )
    return list((await session.execute(query)).scalars())


async def all_sessions(session: AsyncSession, *, user_id: int) -> list[UserSession]:
    """Every session the user ever had, revoked ones too (the data export)."""
    query = select(UserSession).where(UserSession.user_id == user_id)
    return list((await session.scalars(query.order_by(UserSession.created_at))).all())


async def replace_account_token(
    session: AsyncSession,
    *,
    user_id: int,
    purpose: str,
    token_hash: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    """Stores a user's new link for `purpose`; the previous one stops working. The caller
    holds the user's row lock, so two requests never race for the one row."""
    await drop_account_tokens(session, user_id=user_id, purpose=purpose)
    session.add(
        AccountToken(
            user_id=user_id,
            purpose=purpose,
            token_hash=token_hash,
            created_at=now,
            expires_at=expires_at,
        )
    )
    await session.flush()


async def find_account_token(
    session: AsyncSession, *, token_hash: str, purpose: str
) -> Row[tuple[int, datetime]] | None:
    """(user_id, expires_at) of a link. Plain columns, not an entity: a row replaced later in
    the same transaction must not linger in the session's identity map."""
    query = select(AccountToken.user_id, AccountToken.expires_at).where(
        AccountToken.token_hash == token_hash, AccountToken.purpose == purpose
    )
    return (await session.execute(query)).first()


async def claim_account_token(session: AsyncSession, *, token_hash: str, purpose: str) -> bool:
    """Deletes the link's row; False when another request used it first."""
    result = await session.execute(
        delete(AccountToken)
        .where(AccountToken.token_hash == token_hash, AccountToken.purpose == purpose)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


async def drop_account_tokens(
    session: AsyncSession, *, user_id: int, purpose: str | None = None
) -> None:
    query = delete(AccountToken).where(AccountToken.user_id == user_id)
    if purpose is not None:
        query = query.where(AccountToken.purpose == purpose)
    await session.execute(query.execution_options(synchronize_session=False))


async def find_session(
    session: AsyncSession, session_id: str
) -> Row[tuple[UserSession, User]] | None:
    query = (
        select(UserSession, User)
        .join(User, UserSession.user_id == User.id)
        .where(UserSession.id == session_id)
        .options(joinedload(User.patient), joinedload(User.doctor))
    )
    return (await session.execute(query)).first()
