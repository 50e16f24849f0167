from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ehass.appointments.models import Appointment
from ehass.notifications.models import (
    DeliveryStatus,
    Notification,
    NotificationKind,
    WorkerHeartbeat,
)


async def claim_due(
    session: AsyncSession, *, now: datetime, lease_until: datetime, limit: int
) -> Sequence[Notification]:
    """Takes up to `limit` due messages for this worker until `lease_until`.

    SKIP LOCKED lets several workers claim at once on MariaDB/MySQL, each passing over the
    rows another is claiming; the lease then keeps them off those rows once it commits.
    """
    rows = (
        await session.scalars(
            select(Notification)
            .where(
                Notification.status == DeliveryStatus.PENDING,
                Notification.due_at <= now,
                or_(Notification.lease_until.is_(None), Notification.lease_until < now),
            )
            .order_by(Notification.due_at, Notification.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).all()
    for row in rows:
        row.lease_until = lease_until
        row.attempts += 1
    await session.flush()
    return rows


async def get(session: AsyncSession, notification_id: int) -> Notification | None:
    return await session.get(Notification, notification_id, populate_existing=True)


async def cancel_pending(
    session: AsyncSession, *, appointment_id: int, kind: NotificationKind
) -> None:
    await session.execute(
        update(Notification)
        .where(
            Notification.appointment_id == appointment_id,
            Notification.kind == kind,
            Notification.status == DeliveryStatus.PENDING,
        )
        .values(status=DeliveryStatus.CANCELLED, lease_until=None)
        .execution_options(synchronize_session=False)
    )


async def appointment_state(session: AsyncSession, appointment_id: int) -> tuple[str, int] | None:
    row = (
        await session.execute(
            select(Appointment.status, Appointment.sequence).where(Appointment.id == appointment_id)
        )
    ).first()
    return None if row is None else (row[0], row[1])


async def list_notifications(
    session: AsyncSession,
    *,
    status: DeliveryStatus | None,
    kind: NotificationKind | None,
    user_id: int | None,
    after_id: int | None,
    limit: int,
) -> Sequence[Notification]:
    query = select(Notification).order_by(Notification.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Notification.status == status)
    if kind is not None:
        query = query.where(Notification.kind == kind)
    if user_id is not None:
        query = query.where(Notification.user_id == user_id)
    if after_id is not None:
        query = query.where(Notification.id < after_id)
    return (await session.scalars(query)).all()


async def outbox_counts(session: AsyncSession, *, now: datetime) -> dict[str, int | None]:
    """Due and dead-lettered messages; two queries that each stay on the (status, due_at)
    index, as the table keeps every message ever sent."""
    due, oldest = (
        await session.execute(
            select(func.count(), func.min(Notification.due_at)).where(
                Notification.status == DeliveryStatus.PENDING, Notification.due_at <= now
            )
        )
    ).one()
    dead = await session.scalar(
        select(func.count()).where(Notification.status == DeliveryStatus.DEAD)
    )
    return {
        "due": due,
        "dead": dead or 0,
        "oldest_due_seconds": None if oldest is None else int((now - oldest).total_seconds()),
    }


async def beat(
    session: AsyncSession,
    *,
    worker_id: str,
    host: str,
    pid: int,
    embedded: bool,
    started_at: datetime,
    now: datetime,
) -> None:
    heartbeat = await session.get(WorkerHeartbeat, worker_id)
    if heartbeat is None:
        session.add(
            WorkerHeartbeat(
                worker_id=worker_id,
                host=host,
                pid=pid,
                embedded=embedded,
                started_at=started_at,
                seen_at=now,
            )
        )
    else:
        heartbeat.seen_at = now
    await session.flush()


async def heartbeats(session: AsyncSession, *, since: datetime) -> Sequence[WorkerHeartbeat]:
    return (
        await session.scalars(
            select(WorkerHeartbeat)
            .where(WorkerHeartbeat.seen_at >= since)
            .order_by(WorkerHeartbeat.seen_at.desc())
        )
    ).all()


async def forget_recipient(session: AsyncSession, *, user_id: int) -> None:
    """Erasure: what the person's messages said goes; unsent ones are never sent."""
    await session.execute(
        update(Notification)
        .where(Notification.user_id == user_id, Notification.status == DeliveryStatus.PENDING)
        .values(status=DeliveryStatus.CANCELLED, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(Notification)
        .where(Notification.user_id == user_id)
        .values(payload={"erased": True})
        .execution_options(synchronize_session=False)
    )


async def of_recipient(session: AsyncSession, *, user_id: int) -> Sequence[Notification]:
    return (
        await session.scalars(
            select(Notification).where(Notification.user_id == user_id).order_by(Notification.id)
        )
    ).all()
