"""A worker asked to stop sends the message in hand and hands the rest of its claim back,
so another worker sends them at once instead of after the lease."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ehass.core.clock import FrozenClock
from ehass.notifications.models import DeliveryStatus, Notification
from ehass.notifications.worker import Worker
from tests.factories import Factories
from tests.notifications.test_retries import _queue_one


class StopAfterFirst:
    """A mailer that sends through `inner` and sets `stop` after the first message."""

    def __init__(self, inner: Any, stop: asyncio.Event) -> None:
        self.inner, self.stop, self.channel = inner, stop, inner.channel

    async def send(self, message: Any) -> None:
        await self.inner.send(message)
        self.stop.set()


async def test_a_stopping_worker_hands_back_what_it_has_not_sent(
    worker: Worker, factories: Factories, session: AsyncSession, clock: FrozenClock
) -> None:
    ids = []
    for n in range(3):
        ids.append(await _queue_one(factories, session, clock))
        row = await session.get(Notification, ids[-1])
        row.message_id = f"<shutdown-{n}@ehass.localhost>"  # unique, as the outbox wants
        await session.flush()
    stop = asyncio.Event()
    stopping = dataclasses.replace(worker, mailer=StopAfterFirst(worker.mailer, stop))

    assert await stopping.run_once(stop) == 1

    rows = (
        await session.scalars(
            select(Notification)
            .where(Notification.id.in_(ids))
            .order_by(Notification.id)
            .execution_options(populate_existing=True)
        )
    ).all()
    assert [r.status for r in rows] == [
        DeliveryStatus.SENT,
        DeliveryStatus.PENDING,
        DeliveryStatus.PENDING,
    ]
    assert [(r.lease_until, r.attempts) for r in rows[1:]] == [(None, 0), (None, 0)]
    assert await worker.run_once() == 2  # another worker takes them straight away
