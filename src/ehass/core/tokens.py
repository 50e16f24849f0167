"""JWT access tokens (HS256 pinned) and opaque refresh tokens, stored only as hashes."""

from __future__ import annotations

import hashlib
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime

import jwt

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "sid", "role"]
LEEWAY_SECONDS = 30  # clock skew between app instances
# Tokens whose signature was checked, per process. A client sends the same token on every
# request of its ~15 minutes, so a few thousand cover every active client of a process.
VERIFIED_TOKENS = 4096


class InvalidToken(Exception):
    pass


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: int
    session_id: str
    role: str
    patient_id: int | None
    doctor_id: int | None
    expires_at: datetime
    mfa_pending: bool = False


@dataclass(frozen=True, slots=True)
class _Verified:
    claims: AccessClaims
    issued_at: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class TokenSigner:
    secret: str
    issuer: str
    audience: str
    max_verified: int = VERIFIED_TOKENS
    # Only tokens that passed the signature check get in, so bad tokens cannot crowd out
    # good ones; the times are checked again on every use.
    _verified: OrderedDict[str, _Verified] = field(
        default_factory=OrderedDict, compare=False, repr=False
    )

    def issue(self, claims: AccessClaims, *, now: datetime) -> str:
        payload = {
            "sub": str(claims.user_id),
            "sid": claims.session_id,
            "role": claims.role,
            "pid": claims.patient_id,
            "did": claims.doctor_id,
            "mfa": "enroll" if claims.mfa_pending else None,
            "iat": int(now.timestamp()),
            "exp": int(claims.expires_at.timestamp()),
            "iss": self.issuer,
            "aud": self.audience,
        }
        return jwt.encode(payload, self.secret, algorithm=ALGORITHM)

    def verify(self, token: str, *, now: datetime) -> AccessClaims:
        """Signature, algorithm, issuer, audience and presence of every claim; then the
        times against `now` (the service clock, not the system's, so tests can move it).

        The signature of a token seen before is not checked again (the token string is the
        key, so a changed byte is a different token); its times are, on every call."""
        verified = self._verified.get(token)
        if verified is None:
            verified = self._decode(token)
            self._verified[token] = verified
            if len(self._verified) > self.max_verified:
                self._verified.popitem(last=False)
        else:
            self._verified.move_to_end(token)
        if verified.expires_at <= now.timestamp():
            self._verified.pop(token, None)  # it never becomes valid again
            raise InvalidToken("token expired")
        if verified.issued_at > now.timestamp() + LEEWAY_SECONDS:
            raise InvalidToken("token not yet valid")
        return verified.claims

    def _decode(self, token: str) -> _Verified:
        try:
            payload = jwt.decode(
                token,
                self.secret,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": REQUIRED_CLAIMS, "verify_exp": False, "verify_iat": False},
            )
            issued_at, expires_at = int(payload["iat"]), int(payload["exp"])
            claims = AccessClaims(
                user_id=int(payload["sub"]),
                session_id=str(payload["sid"]),
                role=str(payload["role"]),
                patient_id=_optional_int(payload.get("pid")),
                doctor_id=_optional_int(payload.get("did")),
                expires_at=datetime.fromtimestamp(expires_at, UTC),
                mfa_pending=payload.get("mfa") == "enroll",
            )
            return _Verified(claims, issued_at, expires_at)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            raise InvalidToken(str(exc)) from exc


def _optional_int(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError("bad id claim")
    return value


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def new_session_id() -> str:
    return secrets.token_hex(16)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
