from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from ehass.core.base import Base, UTCDateTime


class CalendarFeed(Base):
    """A user's private subscription address. Only the token's SHA-256 is kept: the
    address is shown once, when it is made, and works until rotated or revoked."""

    __tablename__ = "calendar_feeds"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
