"""The sealer: moves committed entries from `audit_pending` into the hash chain.

Requests only append to `audit_pending`; a sealer, in one transaction, locks the chain
head (only sealers contend for it), takes the committed pending rows in id order, links
them exactly as the chain always has (chain.link_hash), extends the Merkle tree, deletes
those pending rows and moves the head. Two sealers serialise on the head, so the chain
never forks; a crash before the commit leaves the pending rows for the next one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ehass.audit import checkpoint
from ehass.audit.chain import FIELDS, link_hash
from ehass.audit.merkle import Frontier
from ehass.audit.models import AuditChainHead, AuditCheckpoint, AuditEntry, AuditPending

HEAD_ID = 1
BATCH = 1000

_pending = AuditPending.__table__
_log = AuditEntry.__table__
_head = AuditChainHead.__table__
_checkpoints = AuditCheckpoint.__table__


async def _locked_head(connection: AsyncConnection) -> tuple[int, str, Frontier]:
    row = (
        await connection.execute(
            select(_head.c.last_id, _head.c.last_hash, _head.c.frontier)
            .where(_head.c.id == HEAD_ID)
            .with_for_update()
        )
    ).one()
    return row.last_id, row.last_hash, Frontier.load(row.last_id, row.frontier)


async def seal(session: AsyncSession, *, limit: int = BATCH) -> int:
    """Chains up to `limit` committed pending entries; returns how many. The caller commits.

    Under READ COMMITTED an entry whose transaction has not committed yet is invisible
    here; it is sealed in a later round. Chain order is therefore pending-id order among
    committed entries, which is total, as head-lock order was before.
    """
    connection = await session.connection()
    # Cheap and lock-free: nothing to do is the common case for a reader or an idle worker.
    if await connection.scalar(select(_pending.c.id).limit(1)) is None:
        return 0
    last_id, last_hash, tree = await _locked_head(connection)
    rows = (
        (await connection.execute(select(_pending).order_by(_pending.c.id).limit(limit)))
        .mappings()
        .all()
    )
    if not rows:  # another sealer took them while this one waited for the head
        return 0
    entries: list[dict[str, Any]] = []
    for row in rows:
        last_id += 1
        fields = {name: row[name] for name in FIELDS if name != "id"} | {"id": last_id}
        entry_hash = link_hash(last_hash, fields)
        entries.append({**fields, "prev_hash": last_hash, "hash": entry_hash})
        tree.append(bytes.fromhex(entry_hash))
        last_hash = entry_hash
    # A parameter list, not .values(rows): the statement compiles once and is cached, and
    # the driver still sends one multi-row INSERT (asyncmy rewrites an executemany so;
    # SQLite runs the prepared statement per row in-process).
    await connection.execute(insert(_log), entries)
    head = update(_head).where(_head.c.id == HEAD_ID)
    # The pending trigger allows DELETE only while the locked head says `sealing`; it is
    # cleared in the same transaction, so no other transaction ever sees it set.
    await connection.execute(head.values(sealing=True))
    # By id, never by range: a range would also take (and wait for) rows still being
    # committed, and delete them unsealed.
    await connection.execute(delete(_pending).where(_pending.c.id.in_([r["id"] for r in rows])))
    await connection.execute(
        head.values(last_id=last_id, last_hash=last_hash, frontier=tree.dump(), sealing=False)
    )
    return len(rows)


async def seal_committed(session: AsyncSession) -> int:
    """Seals everything committed so far, batch after batch: readers call this first."""
    total = 0
    while True:
        sealed = await seal(session)
        total += sealed
        if sealed < BATCH:
            return total


async def latest_checkpoint(session: AsyncSession) -> checkpoint.Checkpoint | None:
    row = (
        await (await session.connection()).execute(
            select(_checkpoints)
            .order_by(_checkpoints.c.tree_size.desc(), _checkpoints.c.id.desc())
            .limit(1)
        )
    ).one_or_none()
    if row is None:
        return None
    return checkpoint.Checkpoint(
        tree_size=row.tree_size,
        root_hash=row.root_hash,
        timestamp=row.signed_at,
        key_id=row.key_id,
        signature=row.signature,
    )


async def sign_checkpoint(
    session: AsyncSession, key: Ed25519PrivateKey, *, now: datetime
) -> checkpoint.Checkpoint | None:
    """Signs the tree as it stands unless the latest checkpoint already says it (with this
    key). Entries a reader sealed are thus signed by the worker's next pass."""
    connection = await session.connection()
    latest = await latest_checkpoint(session)
    size = await connection.scalar(select(_head.c.last_id).where(_head.c.id == HEAD_ID))
    key_id = checkpoint.key_id(key.public_key())
    if not size or (latest is not None and latest.tree_size == size and latest.key_id == key_id):
        return None
    size, _, tree = await _locked_head(connection)
    signed = checkpoint.sign(key, tree_size=size, root_hash=tree.root().hex(), at=now)
    await connection.execute(
        insert(_checkpoints).values(
            tree_size=signed.tree_size,
            root_hash=signed.root_hash,
            signed_at=signed.timestamp,
            key_id=signed.key_id,
            signature=signed.signature,
        )
    )
    return signed
