"""Encrypt health data at rest: patients' dates of birth and appointment reasons.

The columns are TEXT from the first revision on (the schema had not been released, and
SQLite cannot change a column's type in a table with generated columns without a
rebuild); this revision encrypts in place whatever plaintext values are there, with the
keyring of the current settings.

Revision ID: 6c44f6fd9fec
Revises: f665fbb6ef7e
Create Date: 2026-11-24 09:09:22.068062+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

from ehass.config import get_settings
from ehass.core.crypto import Keyring
from ehass.runtime import build_keyring

revision: str = "6c44f6fd9fec"
down_revision: str | None = "f665fbb6ef7e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# (table, column, encryption context)
COLUMNS = [
    ("patients", "date_of_birth", "patients.date_of_birth"),
    ("appointments", "reason", "appointments.reason"),
]


def _rows(bind: Connection, table: str, column: str) -> list[tuple[int, object]]:
    query = sa.text(f"SELECT id, {column} FROM {table} WHERE {column} IS NOT NULL")  # noqa: S608
    return [(row[0], row[1]) for row in bind.execute(query)]


def _write(bind: Connection, table: str, column: str, values: list[tuple[int, object]]) -> None:
    statement = sa.text(f"UPDATE {table} SET {column} = :value WHERE id = :id")  # noqa: S608
    for row_id, value in values:
        bind.execute(statement, {"id": row_id, "value": value})


def _keyring() -> Keyring:
    return build_keyring(get_settings())


def upgrade() -> None:
    bind = op.get_bind()
    keyring = _keyring()
    for table, column, context in COLUMNS:
        plain = [(i, v) for i, v in _rows(bind, table, column) if not str(v).startswith("v1.")]
        _write(
            bind, table, column, [(i, keyring.encrypt(str(v), context=context)) for i, v in plain]
        )


def downgrade() -> None:
    bind = op.get_bind()
    keyring = _keyring()
    for table, column, context in COLUMNS:
        sealed = _rows(bind, table, column)
        _write(
            bind, table, column, [(i, keyring.decrypt(str(v), context=context)) for i, v in sealed]
        )
