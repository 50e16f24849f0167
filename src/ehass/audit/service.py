"""Recording and checking the audit trail.

Entries are collected while a transaction runs and written to `audit_pending` in one INSERT
just before it commits (`append`): a rolled-back change leaves no entry, a committed one
always has its entry, and no writer waits for another. The sealer (sealer.py) chains the
committed entries shortly after; everything that reads the trail seals what is committed
first, so it sees every committed entry with its chain id.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from ehass.audit import merkle
from ehass.audit.chain import link_hash
from ehass.audit.models import GENESIS_HASH, AuditChainHead, AuditEntry, AuditPending
from ehass.audit.sealer import HEAD_ID, seal_committed
from ehass.core import context
from ehass.core.pagination import Page, decode_cursor, encode_cursor
from ehass.core.principal import Principal

_PENDING = "ehass.audit.pending"
_SENSITIVE = ("password", "hash", "token", "secret", "totp", "recovery")
REDACTED = "[redacted]"
# Identity and health details: the chain shows that they changed, never what they say, so
# erasing a person later leaves nothing of them in a record that cannot be rewritten.
PERSONAL = frozenset({"name", "email", "date_of_birth", "reason"})
PERSONAL_DATA = "[personal data]"


def _json_safe(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Dates and enums as strings, exactly as they will read back from the JSON column."""

    def default(value: object) -> str:
        if isinstance(value, datetime):
            return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return str(value)

    return json.loads(json.dumps(changes, default=default))


def _redact(key: str, value: Any) -> Any:
    if value is None:
        return None
    if key in PERSONAL:
        return PERSONAL_DATA
    return REDACTED if any(word in key.lower() for word in _SENSITIVE) else value


def changes_between(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """{field: {"before": x, "after": y}} for each field whose value changed; secrets redacted."""
    changed = {}
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old != new:
            changed[key] = {"before": _redact(key, old), "after": _redact(key, new)}
    return changed


def snapshot(values: Mapping[str, Any]) -> dict[str, Any]:
    """A created or deleted entity's fields, as `changes`, with secrets redacted."""
    return {key: {"after": _redact(key, value)} for key, value in sorted(values.items())}


def record(
    session: AsyncSession,
    *,
    at: datetime,
    action: str,
    entity: str,
    entity_id: int | str | None = None,
    changes: Mapping[str, Any] | None = None,
    actor: Principal | None = None,
    actor_id: int | None = None,
    actor_role: str | None = None,
) -> None:
    """Queues one entry; it is written when the transaction commits, or never."""
    ctx = context.current()
    actor = actor or ctx.principal
    session.info.setdefault(_PENDING, []).append(
        {
            "at": at,
            "actor_id": actor.user_id if actor else actor_id,
            "actor_role": str(actor.role) if actor else actor_role,
            "action": action,
            "entity": entity,
            "entity_id": None if entity_id is None else str(entity_id),
            "ip": ctx.client.ip,
            "user_agent": (ctx.client.user_agent or "")[:255] or None,
            "request_id": ctx.client.request_id,
            "changes": _json_safe(changes) if changes else None,
        }
    )


class UnsealedAuditError(RuntimeError):
    """A commit was attempted with audit entries still queued: they would be lost."""


@event.listens_for(Session, "before_commit")
def _refuse_unsealed_entries(session: Session) -> None:
    # The request dependency and Database.transaction append before they commit; a commit
    # made anywhere else would silently drop the entries, so it fails instead.
    # A savepoint's release is not the end: the entries are written with the transaction.
    if session.info.get(_PENDING) and not session.in_nested_transaction():
        raise UnsealedAuditError("audit entries were queued but not written before commit")


def discard(session: AsyncSession) -> None:
    session.info.pop(_PENDING, None)


async def append(session: AsyncSession) -> int:
    """Writes the queued entries to `audit_pending` in one INSERT; call right before commit.

    It takes no lock another writer could wait for: the chain is built later, by the sealer.
    """
    pending: list[dict[str, Any]] = session.info.pop(_PENDING, [])
    if pending:
        # Core, with a parameter list: one cached statement that the MariaDB driver sends
        # as a single multi-row INSERT, and no ORM objects to flush.
        await session.execute(insert(AuditPending.__table__), pending)
    return len(pending)


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    checked: int
    first_bad_id: int | None
    # The Merkle root (hex) of the first n entries, for each n asked for that the chain has.
    roots: dict[int, str] = field(default_factory=dict)


async def _entries(session: AsyncSession, batch: int = 1000) -> AsyncIterator[AuditEntry]:
    after = 0
    while True:
        rows = (
            (
                await session.execute(
                    select(AuditEntry)
                    .where(AuditEntry.id > after)
                    .order_by(AuditEntry.id)
                    .limit(batch)
                )
            )
            .scalars()
            .all()
        )
        if not rows:
            return
        for row in rows:
            yield row
        after = rows[-1].id
        session.expunge_all()


async def verify(
    session: AsyncSession, *, roots_at: Collection[int] = (), seal_first: bool = True
) -> Verification:
    """Seals what is committed, then recomputes the chain from the start; names the first
    entry that does not fit. Also rebuilds the Merkle tree, for the sizes in `roots_at`
    (checkpoints to check). The caller commits, so the sealed entries stay sealed."""
    if seal_first:
        await seal_committed(session)
    expected_prev, expected_id, checked = GENESIS_HASH, 1, 0
    wanted, roots, tree = set(roots_at), {}, merkle.Frontier()
    async for entry in _entries(session):
        fields = {
            "id": entry.id,
            "at": entry.at,
            "actor_id": entry.actor_id,
            "actor_role": entry.actor_role,
            "action": entry.action,
            "entity": entry.entity,
            "entity_id": entry.entity_id,
            "ip": entry.ip,
            "user_agent": entry.user_agent,
            "request_id": entry.request_id,
            "changes": entry.changes,
        }
        if (
            entry.id != expected_id
            or entry.prev_hash != expected_prev
            or entry.hash != link_hash(entry.prev_hash, fields)
        ):
            return Verification(ok=False, checked=checked + 1, first_bad_id=entry.id, roots=roots)
        expected_prev, expected_id, checked = entry.hash, entry.id + 1, checked + 1
        tree.append(bytes.fromhex(entry.hash))
        if checked in wanted:
            roots[checked] = tree.root().hex()
    head = (
        await session.execute(
            select(AuditChainHead.last_id, AuditChainHead.last_hash).where(
                AuditChainHead.id == HEAD_ID
            )
        )
    ).one_or_none()
    if head is not None and (head.last_id != checked or head.last_hash != expected_prev):
        # Entries were removed from the end behind the triggers' back.
        return Verification(ok=False, checked=checked, first_bad_id=checked + 1, roots=roots)
    return Verification(ok=True, checked=checked, first_bad_id=None, roots=roots)


async def list_entries(
    session: AsyncSession,
    *,
    actor_id: int | None,
    entity: str | None,
    entity_id: str | None,
    action: str | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    cursor: str | None,
) -> Page[AuditEntry]:
    """Newest first, by chain id: what is committed is sealed first, so nothing is missing."""
    await seal_committed(session)
    query = select(AuditEntry)
    if actor_id is not None:
        query = query.where(AuditEntry.actor_id == actor_id)
    if entity is not None:
        query = query.where(AuditEntry.entity == entity)
    if entity_id is not None:
        query = query.where(AuditEntry.entity_id == entity_id)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    if start is not None:
        query = query.where(AuditEntry.at >= start)
    if end is not None:
        query = query.where(AuditEntry.at < end)
    if cursor:
        query = query.where(AuditEntry.id < decode_cursor(cursor, types=(int,))[0])
    rows = list(
        (await session.execute(query.order_by(AuditEntry.id.desc()).limit(limit + 1))).scalars()
    )
    items = rows[:limit]
    return Page(items, encode_cursor([items[-1].id]) if len(rows) > limit else None)


async def entries_about(session: AsyncSession, *, user_id: int) -> list[AuditEntry]:
    """Entries made by the user or about their account, in chain order (the data export)."""
    await seal_committed(session)
    query = select(AuditEntry).where(
        or_(
            AuditEntry.actor_id == user_id,
            (AuditEntry.entity == "user") & (AuditEntry.entity_id == str(user_id)),
        )
    )
    return list((await session.scalars(query.order_by(AuditEntry.id))).all())
