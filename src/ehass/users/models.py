from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, ForeignKey, String, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ehass.core.base import Base, EncryptedDate, IntIdMixin, UTCDateTime
from ehass.core.principal import Role

if TYPE_CHECKING:
    from ehass.doctors.models import Doctor

__all__ = ["Patient", "Role", "User"]


class User(IntIdMixin, Base):
    __tablename__ = "users"

    # Stored lower-cased, so the unique index makes email uniqueness case-insensitive.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # True once the owner followed a link sent to `email`; a new address starts unverified.
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    patient: Mapped[Patient | None] = relationship(back_populates="user", lazy="raise")
    doctor: Mapped[Doctor | None] = relationship(back_populates="user", lazy="raise")


class Patient(IntIdMixin, Base):
    __tablename__ = "patients"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    # Health data: encrypted at rest (AES-GCM, see core/crypto.py).
    date_of_birth: Mapped[date] = mapped_column(EncryptedDate("patients.date_of_birth"))

    user: Mapped[User] = relationship(back_populates="patient", lazy="raise")
