"""Encrypt the answers kept for Idempotency-Key replays (they quote appointment reasons).

Revision ID: c9ec796f2607
Revises: 6c44f6fd9fec
Create Date: 2026-11-24 09:32:31.656302+00:00
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ehass.config import get_settings
from ehass.runtime import build_keyring

revision: str = "c9ec796f2607"
down_revision: str | None = "6c44f6fd9fec"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


CONTEXT = "idempotency_records.response_body"


def upgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT id, response_body FROM idempotency_records WHERE response_body IS NOT NULL")
    ).all()
    with op.batch_alter_table("idempotency_records") as batch_op:
        batch_op.alter_column("response_body", type_=sa.Text(), existing_nullable=True)
    keyring = build_keyring(get_settings())
    for row_id, body in rows:
        text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
        bind.execute(
            sa.text("UPDATE idempotency_records SET response_body = :value WHERE id = :id"),
            {"id": row_id, "value": keyring.encrypt(text, context=CONTEXT)},
        )


def downgrade() -> None:
    bind = op.get_bind()
    keyring = build_keyring(get_settings())
    rows = bind.execute(
        sa.text("SELECT id, response_body FROM idempotency_records WHERE response_body IS NOT NULL")
    ).all()
    for row_id, sealed in rows:
        bind.execute(
            sa.text("UPDATE idempotency_records SET response_body = :value WHERE id = :id"),
            {"id": row_id, "value": keyring.decrypt(sealed, context=CONTEXT)},
        )
    with op.batch_alter_table("idempotency_records") as batch_op:
        batch_op.alter_column("response_body", type_=sa.JSON(), existing_nullable=True)
