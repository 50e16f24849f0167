"""What authentication needs of a session, kept where every instance reads it first.

A token names its session (`sid`); the cache answers which account that session belongs to
(its id, role, patient/doctor id, whether it is active and has a second factor) and until
when. Entries are written through: whatever revokes a session or changes its account
writes the new state in the same step, so every instance sees it on its next request. The
database is read only on a miss, in one statement.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from ehass.auth import repository
from ehass.core.principal import Role
from ehass.runtime import Runtime

log = structlog.get_logger("ehass.auth")

# An entry's life bounds what the cache holds, not how current it is: every change is
# written through. It only matters when a write to Redis failed (then this is how long an
# instance may still believe the old state) or was rolled back after it was written.
ENTRY_SECONDS = 300
# A revocation mark outlives the session by a minute: a token never outlives its session.
REVOKED_GRACE_SECONDS = 60


@dataclass(frozen=True, slots=True)
class SessionAccount:
    user_id: int
    role: Role
    patient_id: int | None
    doctor_id: int | None
    is_active: bool
    has_factor: bool
    expires_at: datetime

    def encode(self) -> bytes:
        return json.dumps(
            [
                self.user_id,
                str(self.role),
                self.patient_id,
                self.doctor_id,
                self.is_active,
                self.has_factor,
                int(self.expires_at.timestamp()),
            ],
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, raw: bytes) -> SessionAccount | None:
        """None for anything this version did not write: the caller treats it as a miss."""
        try:
            user_id, role, patient_id, doctor_id, active, factor, expires = json.loads(raw)
            return cls(
                user_id=int(user_id),
                role=Role(role),
                patient_id=None if patient_id is None else int(patient_id),
                doctor_id=None if doctor_id is None else int(doctor_id),
                is_active=bool(active),
                has_factor=bool(factor),
                expires_at=datetime.fromtimestamp(int(expires), UTC),
            )
        except (ValueError, TypeError):
            return None

    @classmethod
    def of(cls, row: Row[Any]) -> SessionAccount:
        return cls(
            user_id=row.user_id,
            role=Role(row.role),
            patient_id=row.patient_id,
            doctor_id=row.doctor_id,
            is_active=row.is_active,
            has_factor=row.factor_confirmed_at is not None,
            expires_at=row.expires_at,
        )

    def usable(self, now: datetime) -> bool:
        return self.is_active and self.expires_at > now

    def mfa_pending(self, rt: Runtime) -> bool:
        """Staff without a second factor, when the setting makes one mandatory for them."""
        return (
            rt.settings.mfa_required_for_staff and self.role != Role.PATIENT and not self.has_factor
        )


def _entry_ttl(account: SessionAccount, now: datetime) -> int:
    return max(1, min(ENTRY_SECONDS, int((account.expires_at - now).total_seconds())))


def revoked_ttl(expires_at: datetime, now: datetime) -> int:
    return int((expires_at - now).total_seconds()) + REVOKED_GRACE_SECONDS


async def load(
    session: AsyncSession, rt: Runtime, *, session_id: str, now: datetime
) -> SessionAccount | None:
    """The session's account, or None when the session is revoked, over or unknown."""
    revoked, raw = await rt.shared.session_account(session_id)
    if revoked:
        return None
    account = SessionAccount.decode(raw) if raw is not None else None
    if account is not None:
        return account
    row = await repository.session_account(session, session_id)
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        # Tokens of an ended session live at most an access token's life longer.
        ttl = rt.settings.access_token_minutes * 60 + REVOKED_GRACE_SECONDS
        await rt.shared.revoke_session_accounts({session_id: ttl})
        return None
    account = SessionAccount.of(row)
    await rt.shared.put_session_accounts(
        {session_id: (account.encode(), _entry_ttl(account, now))}, replace=False
    )
    return account


async def mark_revoked(
    rt: Runtime, sessions: Iterable[tuple[str, datetime]], now: datetime
) -> None:
    """Every instance refuses these sessions from now on."""
    await rt.shared.revoke_session_accounts(
        {session_id: revoked_ttl(expires_at, now) for session_id, expires_at in sessions}
    )


async def account_changed(session: AsyncSession, rt: Runtime, *, user_id: int) -> None:
    """Writes the account as this transaction now sees it to each of its live sessions.

    Call it after the change is flushed, wherever a role, an active flag or a second factor
    changes without the sessions being revoked: the next request on any instance then sees
    the new account, and a token issued before the change no longer matches it.
    """
    now = rt.clock.now()
    rows = await repository.live_session_accounts(session, user_id=user_id, now=now)
    accounts = {row.id: SessionAccount.of(row) for row in rows}
    await rt.shared.put_session_accounts(
        {sid: (account.encode(), _entry_ttl(account, now)) for sid, account in accounts.items()},
        replace=True,
    )
    log.info("auth.account_changed", user_id=user_id, sessions=len(accounts))
