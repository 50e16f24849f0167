"""The declarative base every model shares, and the column types the backends agree on."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import DateTime, Integer, MetaData, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from ehass.core import crypto

# Deterministic constraint names, so Alembic migrations are identical on SQLite and MariaDB.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, whole seconds on every backend.

    SQLite and MySQL DATETIME columns carry no offset; storing naive UTC and attaching
    UTC on the way out keeps comparisons and ordering identical on both backends.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None, microsecond=0)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class IntIdMixin:
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True, sort_order=-10)


class Encrypted(TypeDecorator[str]):
    """Text encrypted at rest with the configured keyring (see core/crypto.py).

    `context` names the column; it is bound into each ciphertext so values cannot be moved
    between columns. Encrypted columns can be stored and read, never searched or compared.
    """

    impl = Text
    cache_ok = True

    def __init__(self, context: str) -> None:
        super().__init__()
        self.context = context

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else crypto.keyring().encrypt(value, context=self.context)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else crypto.keyring().decrypt(value, context=self.context)


class EncryptedDate(TypeDecorator[date]):
    """A date encrypted at rest, as its ISO form."""

    impl = Text
    cache_ok = True

    def __init__(self, context: str) -> None:
        super().__init__()
        self.context = context

    def process_bind_param(self, value: date | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return crypto.keyring().encrypt(value.isoformat(), context=self.context)

    def process_result_value(self, value: str | None, dialect: Dialect) -> date | None:
        if value is None:
            return None
        return date.fromisoformat(crypto.keyring().decrypt(value, context=self.context))


class EncryptedJSON(TypeDecorator[Any]):
    """A JSON document encrypted at rest (it may quote health data, e.g. a stored answer)."""

    impl = Text
    cache_ok = True

    def __init__(self, context: str) -> None:
        super().__init__()
        self.context = context

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        plain = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        return crypto.keyring().encrypt(plain, context=self.context)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return json.loads(crypto.keyring().decrypt(value, context=self.context))
