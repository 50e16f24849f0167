"""Schedule versions: a counter per doctor, raised by every commit that changes the doctor's
free time, so cached slots are looked up under the version they were computed for.

Revision ID: 8e5a2f71c4d9
Revises: 4b41c8e0d1ca
Create Date: 2026-11-24 14:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8e5a2f71c4d9"
down_revision: str | None = "4b41c8e0d1ca"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "schedule_versions",
        sa.Column("doctor_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("doctor_id", name=op.f("pk_schedule_versions")),
    )
    op.execute("INSERT INTO schedule_versions (doctor_id, version) SELECT id, 0 FROM doctors")


def downgrade() -> None:
    op.drop_table("schedule_versions")
