"""Recording and checking the audit trail.

Entries are collected while a transaction runs and appended to the chain just before it
commits (`seal`), under a lock on the chain head: a rolled-back change leaves no entry, a
committed one always has its entry, and the head lock is held only for the append itself.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from ehass.audit.chain import link_hash
from ehass.audit.models import GENESIS_HASH, AuditChainHead, AuditEntry
from ehass.core import context
from ehass.core.pagination import Page, decode_cursor, encode_cursor
from ehass.core.principal import Principal

_PENDING = "ehass.audit.pending"
HEAD_ID = 1
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
    # The request dependency and Database.transaction seal before they commit; a commit
    # made anywhere else would silently drop the entries, so it fails instead.
    # A savepoint's release is not the end: the entries are sealed with the transaction.
    if session.info.get(_PENDING) and not session.in_nested_transaction():
        raise UnsealedAuditError("audit entries were queued but not sealed before commit")


def discard(session: AsyncSession) -> None:
    session.info.pop(_PENDING, None)


async def seal(session: AsyncSession) -> int:
    """Appends the queued entries to the chain; call right before commit."""
    pending: list[dict[str, Any]] = session.info.pop(_PENDING, [])
    if not pending:
        return 0
    head = (
        await session.execute(
            select(AuditChainHead)
            .where(AuditChainHead.id == HEAD_ID)
            .with_for_update()
            # A session that sealed before must not reuse the head it remembers.
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    last_id, last_hash = head.last_id, head.last_hash
    for fields in pending:
        last_id += 1
        fields = {**fields, "id": last_id}
        entry_hash = link_hash(last_hash, fields)
        session.add(AuditEntry(**fields, prev_hash=last_hash, hash=entry_hash))
        last_hash = entry_hash
    head.last_id, head.last_hash = last_id, last_hash
    await session.flush()
    return len(pending)


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    checked: int
    first_bad_id: int | None


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


async def verify(session: AsyncSession) -> Verification:
    """Recomputes the chain from the start; names the first entry that does not fit."""
    expected_prev, expected_id, checked = GENESIS_HASH, 1, 0
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
            return Verification(ok=False, checked=checked + 1, first_bad_id=entry.id)
        expected_prev, expected_id, checked = entry.hash, entry.id + 1, checked + 1
    head = await session.get(AuditChainHead, HEAD_ID)
    if head is not None and (head.last_id != checked or head.last_hash != expected_prev):
        # Entries were removed from the end behind the triggers' back.
        return Verification(ok=False, checked=checked, first_bad_id=checked + 1)
    return Verification(ok=True, checked=checked, first_bad_id=None)


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
    query = select(AuditEntry).where(
        or_(
            AuditEntry.actor_id == user_id,
            (AuditEntry.entity == "user") & (AuditEntry.entity_id == str(user_id)),
        )
    )
    return list((await session.scalars(query.order_by(AuditEntry.id))).all())
