"""Slot holds (find, hold, book) and the waitlist.

`slot_holds.active_doctor` is generated like `appointments.doctor_slot`: the doctor's id
while the hold is active, NULL otherwise, so a unique index allows one active hold per
doctor and start (MySQL has no partial indexes).

Revision ID: 7f1c2e9a4d30
Revises: 5d0a61c3e7b2
Create Date: 2026-11-24 11:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7f1c2e9a4d30"
down_revision: str | None = "5d0a61c3e7b2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "waitlist_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("doctor_id", sa.Integer(), nullable=False),
        sa.Column("from_date", sa.Date(), nullable=False),
        sa.Column("to_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["doctor_id"], ["doctors.id"], name=op.f("fk_waitlist_entries_doctor_id_doctors")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_waitlist_entries_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waitlist_entries")),
    )
    op.create_index("ix_waitlist_entries_line", "waitlist_entries", ["doctor_id", "status", "id"])
    op.create_index(op.f("ix_waitlist_entries_patient_id"), "waitlist_entries", ["patient_id"])
    op.create_table(
        "slot_holds",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("doctor_id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(), nullable=False),
        sa.Column("ends_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("waitlist_entry_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column(
            "active_doctor",
            sa.Integer(),
            sa.Computed("CASE WHEN status = 'active' THEN doctor_id END", persisted=True),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["doctor_id"], ["doctors.id"], name=op.f("fk_slot_holds_doctor_id_doctors")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_slot_holds_patient_id_patients")
        ),
        sa.ForeignKeyConstraint(
            ["waitlist_entry_id"],
            ["waitlist_entries.id"],
            name=op.f("fk_slot_holds_waitlist_entry_id_waitlist_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slot_holds")),
        sa.UniqueConstraint("active_doctor", "scheduled_at", name="uq_slot_holds_active_doctor"),
    )
    op.create_index("ix_slot_holds_doctor_time", "slot_holds", ["doctor_id", "scheduled_at"])
    op.create_index("ix_slot_holds_status_expires", "slot_holds", ["status", "expires_at"])
    op.create_index(op.f("ix_slot_holds_patient_id"), "slot_holds", ["patient_id"])
    op.create_index(op.f("ix_slot_holds_waitlist_entry_id"), "slot_holds", ["waitlist_entry_id"])


def downgrade() -> None:
    op.drop_table("slot_holds")
    op.drop_table("waitlist_entries")
