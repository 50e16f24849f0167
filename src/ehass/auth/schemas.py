from __future__ import annotations

from typing import Annotated, Literal

from pydantic import EmailStr, Field

from ehass.core.schemas import RequestModel, ResponseModel, UtcDateTime


class LoginRequest(RequestModel):
    email: Annotated[str, Field(min_length=1, max_length=254)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]
    otp: Annotated[
        str | None,
        Field(
            default=None,
            max_length=32,
            description="The authenticator code (or a recovery code) when MFA is enabled.",
        ),
    ] = None


class RefreshRequest(RequestModel):
    refresh_token: Annotated[str, Field(min_length=1, max_length=256)]


class TokenPair(ResponseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - a scheme name
    expires_in: int = Field(description="Seconds until the access token expires.")


class SessionRead(ResponseModel):
    session_id: str
    user_id: int
    role: str
    created_at: UtcDateTime
    expires_at: UtcDateTime


class SessionSummary(ResponseModel):
    session_id: str
    created_at: UtcDateTime
    last_seen_at: UtcDateTime
    expires_at: UtcDateTime
    ip: str | None
    user_agent: str | None
    current: bool


class SessionList(ResponseModel):
    items: list[SessionSummary]


class MfaEnrolment(ResponseModel):
    secret: str = Field(description="Base32 secret, for entering by hand")
    otpauth_uri: str
    qr_svg: str = Field(description="The otpauth URI as a QR code, an SVG data URI")


class MfaCode(RequestModel):
    code: Annotated[str, Field(min_length=6, max_length=32)]


class MfaRecoveryCodes(ResponseModel):
    recovery_codes: list[str] = Field(description="Shown once; each works once instead of a code")


class MfaDisable(RequestModel):
    password: Annotated[str, Field(min_length=1, max_length=1024)]


LinkToken = Annotated[
    str, Field(min_length=1, max_length=128, description="The `token` parameter of the link")
]


class PasswordResetRequest(RequestModel):
    email: EmailStr


class PasswordResetAccepted(ResponseModel):
    """The same answer whether or not an account uses the address."""

    detail: str


class PasswordResetConfirm(RequestModel):
    token: LinkToken
    new_password: Annotated[str, Field(min_length=1, max_length=1024)]


class EmailVerification(RequestModel):
    token: LinkToken
