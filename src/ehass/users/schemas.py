from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AfterValidator, EmailStr, Field, StringConstraints, model_validator

from ehass.core.principal import Role
from ehass.core.schemas import IsoDate, Page, RequestModel, ResponseModel, UtcDateTime
from ehass.users.models import User

Name = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
Specialty = Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]
# Policy (length, common passwords) is checked by the service so the message is precise;
# the bounds here only keep absurd payloads out.
Password = Annotated[str, Field(min_length=1, max_length=1024)]


def _valid_timezone(name: str) -> str:
    if name not in _timezones():
        raise ValueError("not an IANA time zone name, e.g. Europe/Berlin")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("not an IANA time zone name, e.g. Europe/Berlin") from exc
    return name


_TZ_CACHE: set[str] = set()


def _timezones() -> set[str]:
    if not _TZ_CACHE:
        _TZ_CACHE.update(available_timezones())
    return _TZ_CACHE


TimeZoneName = Annotated[
    str, AfterValidator(_valid_timezone), Field(max_length=64, examples=["Europe/Berlin"])
]


def _plausible_date(value: date) -> date:
    # "Not in the future" needs the service clock: users.service checks it.
    if value.year < 1900:
        raise ValueError("date of birth must be after 1900")
    return value


DateOfBirth = Annotated[IsoDate, AfterValidator(_plausible_date)]


class RegisterRequest(RequestModel):
    email: EmailStr
    password: Password
    name: Name
    role: Literal["patient", "doctor"]
    date_of_birth: DateOfBirth | None = None
    specialty: Specialty | None = None
    timezone: TimeZoneName | None = None

    @model_validator(mode="after")
    def _role_fields(self) -> Self:
        if self.role == "patient":
            if self.date_of_birth is None:
                raise ValueError("patients must give date_of_birth")
            if self.specialty is not None or self.timezone is not None:
                raise ValueError("specialty and timezone are for doctors only")
        else:
            if self.specialty is None:
                raise ValueError("doctors must give specialty")
            if self.date_of_birth is not None:
                raise ValueError("date_of_birth is for patients only")
        return self

    model_config = RequestModel.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "email": "ada@example.org",
                    "password": "a long unusual passphrase",
                    "name": "Ada Lovelace",
                    "role": "patient",
                    "date_of_birth": "1990-04-01",
                }
            ]
        }
    }


class UserUpdate(RequestModel):
    """Only the fields sent change. `role` is accepted here only to be refused clearly."""

    name: Name | None = None
    email: EmailStr | None = None
    date_of_birth: DateOfBirth | None = None
    specialty: Specialty | None = None
    timezone: TimeZoneName | None = None
    password: Password | None = None
    current_password: Password | None = None
    is_active: bool | None = None
    role: Any = Field(default=None, description="Never changes: 422 from an admin, else 403.")

    @model_validator(mode="after")
    def _no_nulls(self) -> Self:
        for name in self.model_fields_set - {"role", "current_password"}:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class UserRead(ResponseModel):
    id: int
    email: str
    name: str
    role: Role
    is_active: bool
    email_verified: bool = Field(
        description="Whether the owner followed the link sent to this address"
    )
    created_at: UtcDateTime
    patient_id: int | None = None
    date_of_birth: date | None = None
    doctor_id: int | None = None
    specialty: str | None = None
    timezone: str | None = None

    @classmethod
    def of(cls, user: User) -> UserRead:
        """From a User whose `patient` and `doctor` relationships are loaded."""
        patient, doctor = user.patient, user.doctor
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            role=Role(user.role),
            is_active=user.is_active,
            email_verified=user.email_verified,
            created_at=user.created_at,
            patient_id=patient.id if patient else None,
            date_of_birth=patient.date_of_birth if patient else None,
            doctor_id=doctor.id if doctor else None,
            specialty=doctor.specialty if doctor else None,
            timezone=doctor.timezone if doctor else None,
        )


class UserList(Page[UserRead]):
    pass
