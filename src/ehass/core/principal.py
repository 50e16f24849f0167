"""Who is asking, and from where: what every service needs to decide and to record."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    PATIENT = "patient"
    DOCTOR = "doctor"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller, taken from a verified access token."""

    user_id: int
    role: Role
    session_id: str
    patient_id: int | None = None
    doctor_id: int | None = None
    # Staff who must enrol a second factor before they may do anything else.
    mfa_pending: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


@dataclass(frozen=True, slots=True)
class ClientInfo:
    ip: str | None
    user_agent: str | None
    request_id: str | None
