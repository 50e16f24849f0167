from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ehass.core.base import Base, UTCDateTime

GENESIS_HASH = "0" * 64


class EntryFields:
    """What a request says about a change: the same columns before and after sealing."""

    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor_id: Mapped[int | None] = mapped_column(Integer)
    actor_role: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    request_id: Mapped[str | None] = mapped_column(String(128))
    changes: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class AuditEntry(EntryFields, Base):
    """One link of the append-only, hash-chained audit trail.

    Ids are assigned by the sealer holding the chain head's lock, so they are gapless and
    in chain order; database triggers refuse UPDATE and DELETE on this table.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_entity", "entity", "entity_id"),
        Index("ix_audit_log_actor", "actor_id"),
        Index("ix_audit_log_action", "action"),
        Index("ix_audit_log_at", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditPending(EntryFields, Base):
    """An entry committed with its change but not yet in the chain.

    Requests only INSERT here, so writers never wait for each other; the sealer moves the
    rows into `audit_log`. Triggers refuse UPDATE, and DELETE by anyone but the sealer.
    """

    __tablename__ = "audit_pending"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)


class AuditChainHead(Base):
    """A single row: the last entry of the chain and the Merkle tree over the chain.

    Only sealers lock it. `frontier` holds the roots of the perfect subtrees that make up
    the tree of the first `last_id` entries (RFC 9162 §2.1), largest first, as hex, so
    extending the tree never re-reads history. `sealing` is true only inside a sealer's
    own transaction: the trigger on `audit_pending` lets DELETE through only then.
    """

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_id: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))
    frontier: Mapped[list[str]] = mapped_column(JSON)
    sealing: Mapped[bool] = mapped_column(Boolean, default=False)


class AuditCheckpoint(Base):
    """A signed statement of the tree: its size and root hash at a time (see checkpoint.py)."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tree_size: Mapped[int] = mapped_column(Integer, index=True)
    root_hash: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
