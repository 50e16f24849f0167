from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ehass.core.base import Base, IntIdMixin

if TYPE_CHECKING:
    from ehass.users.models import User

DEFAULT_SLOT_MINUTES = 30


class Doctor(IntIdMixin, Base):
    __tablename__ = "doctors"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    specialty: Mapped[str] = mapped_column(String(100), index=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    slot_minutes: Mapped[int] = mapped_column(Integer, default=DEFAULT_SLOT_MINUTES)

    user: Mapped[User] = relationship(back_populates="doctor", lazy="raise")
