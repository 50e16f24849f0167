"""Audit without a global lock: requests append to `audit_pending`, a sealer chains them,
and the chain carries an RFC 9162 Merkle tree whose roots are signed into checkpoints.

Revision ID: a7c3e9d15b20
Revises: b445dedb1d87
Create Date: 2026-12-04 19:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ehass.audit.merkle import Frontier

revision: str = "a7c3e9d15b20"
down_revision: str | None = "b445dedb1d87"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_pending",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor_role", sa.String(length=16), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.String(length=64), nullable=True),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("user_agent", sa.String(length=255), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("changes", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_pending")),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tree_size", sa.Integer(), nullable=False),
        sa.Column("root_hash", sa.String(length=64), nullable=False),
        sa.Column("signed_at", sa.DateTime(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
    )
    op.create_index(
        op.f("ix_audit_checkpoints_tree_size"), "audit_checkpoints", ["tree_size"], unique=False
    )
    with op.batch_alter_table("audit_chain_head", schema=None) as batch_op:
        batch_op.add_column(sa.Column("frontier", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("sealing", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    _build_tree_of_existing_entries()
    with op.batch_alter_table("audit_chain_head", schema=None) as batch_op:
        batch_op.alter_column("frontier", existing_type=sa.JSON(), nullable=False)
    for statement in _TRIGGERS[op.get_context().dialect.name]:
        op.execute(statement)


def _build_tree_of_existing_entries() -> None:
    """The tree covers the chain from its first entry, so one made before this revision
    gets the entries it already has: read once here, never again."""
    connection = op.get_bind()
    frontier = Frontier()
    after = 0
    while True:
        rows = connection.execute(
            sa.text("SELECT id, hash FROM audit_log WHERE id > :after ORDER BY id LIMIT 1000"),
            {"after": after},
        ).all()
        if not rows:
            break
        for _, entry_hash in rows:
            frontier.append(bytes.fromhex(entry_hash))
        after = rows[-1][0]
    head = sa.table("audit_chain_head", sa.column("id"), sa.column("frontier", sa.JSON))
    connection.execute(head.update().where(head.c.id == 1).values(frontier=frontier.dump()))


# UPDATE is never allowed. DELETE is allowed only while `audit_chain_head.sealing` is true,
# which only the sealer sets, inside its own transaction, with the head row locked, and
# clears again before it commits: no other transaction can ever read it as true. A flag in
# a row is used rather than a session variable (@ehass_sealing) because a variable outlives
# the transaction on a pooled connection, and because SQLite has no such variables (and a
# trigger in the main schema cannot see a TEMP table). Anyone able to set the flag by hand
# could equally drop the triggers: the trust boundary is the one audit_log already has.
_TRIGGERS = {
    "mysql": [
        "CREATE TRIGGER audit_pending_no_update BEFORE UPDATE ON audit_pending FOR EACH ROW "
        "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'audit_pending is append-only'",
        "CREATE TRIGGER audit_pending_no_delete BEFORE DELETE ON audit_pending FOR EACH ROW "
        "BEGIN IF (SELECT sealing FROM audit_chain_head WHERE id = 1) IS NOT TRUE THEN "
        "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = "
        "'audit_pending is append-only: rows leave it only through the sealer'; END IF; END",
    ],
    "sqlite": [
        "CREATE TRIGGER audit_pending_no_update BEFORE UPDATE ON audit_pending "
        "BEGIN SELECT RAISE(ABORT, 'audit_pending is append-only'); END",
        "CREATE TRIGGER audit_pending_no_delete BEFORE DELETE ON audit_pending "
        "WHEN (SELECT sealing FROM audit_chain_head WHERE id = 1) IS NOT 1 BEGIN "
        "SELECT RAISE(ABORT, 'audit_pending is append-only: rows leave it only through the "
        "sealer'); END",
    ],
}


def downgrade() -> None:
    # Pending entries would be lost: refuse rather than drop them (run the sealer first).
    pending = op.get_bind().execute(sa.text("SELECT COUNT(*) FROM audit_pending")).scalar()
    if pending:
        raise RuntimeError(f"{pending} audit entries are not sealed yet; run the worker first")
    for verb in ("update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS audit_pending_no_{verb}")
    with op.batch_alter_table("audit_chain_head", schema=None) as batch_op:
        batch_op.drop_column("sealing")
        batch_op.drop_column("frontier")
    op.drop_index(op.f("ix_audit_checkpoints_tree_size"), table_name="audit_checkpoints")
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_pending")
