"""Password reset and email verification: single-use emailed links, and users.email_verified.

Existing accounts are marked verified. They registered before any address was checked, so
none could have verified it; marking them unverified would lock every one of them out of
booking the moment an operator turns on EHASS_REQUIRE_VERIFIED_EMAIL, with no link in
their inbox to get back in. New accounts, and changed addresses, start unverified.

Revision ID: 4b41c8e0d1ca
Revises: 7f1c2e9a4d30
Create Date: 2026-11-24 12:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "4b41c8e0d1ca"
down_revision: str | None = "7f1c2e9a4d30"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("email_verified", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    users = sa.table("users", sa.column("email_verified", sa.Boolean()))
    op.execute(users.update().values(email_verified=True))
    op.create_table(
        "account_tokens",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_account_tokens_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", "purpose", name=op.f("pk_account_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_account_tokens_token_hash")),
    )


def downgrade() -> None:
    op.drop_table("account_tokens")
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("email_verified")
