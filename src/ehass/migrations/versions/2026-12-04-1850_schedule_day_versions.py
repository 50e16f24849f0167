"""Schedule day versions: a counter per doctor and local date, raised by every commit that
changes an appointment or hold on that day, so one booking invalidates one cached day
instead of all of the doctor's.

Revision ID: b445dedb1d87
Revises: 8e5a2f71c4d9
Create Date: 2026-12-04 18:50:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b445dedb1d87"
down_revision: str | None = "8e5a2f71c4d9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # No rows to fill: a day without one is at version 0, and the cache keys of the code
    # before this one are not read by the code after it.
    op.create_table(
        "schedule_day_versions",
        sa.Column("doctor_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("doctor_id", "local_date", name=op.f("pk_schedule_day_versions")),
    )


def downgrade() -> None:
    op.drop_table("schedule_day_versions")
