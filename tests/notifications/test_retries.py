"""A mail server that fails: retries with growing delays, a dead letter, an admin resend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ehass.core.clock import FrozenClock
from ehass.db import Database
from ehass.notifications.delivery import SmtpMailer
from ehass.notifications.models import DeliveryStatus, Notification, NotificationKind
from ehass.notifications.worker import Worker, backoff_seconds
from tests.factories import Factories
from tests.notifications.conftest import SmtpServer
from tests.problems import assert_problem
from tests.servers import free_port

AT = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("attempts", range(1, 12))
def test_backoff_doubles_up_to_the_cap_with_jitter_in_its_upper_half(attempts: int) -> None:
    delay = min(3600.0, 30.0 * 2 ** (attempts - 1))
    low = backoff_seconds(attempts, base=30, cap=3600, rand=lambda: 0.0)
    high = backoff_seconds(attempts, base=30, cap=3600, rand=lambda: 0.999999)
    assert low == pytest.approx(delay / 2)
    assert high == pytest.approx(delay, rel=1e-5)


@pytest.fixture
def broken_worker(
    app: Any, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> Worker:
    """Delivers to a port nothing listens on: every attempt fails to connect."""
    mailer = SmtpMailer(
        hostname="127.0.0.1",
        port=free_port(),
        username=None,
        password=None,
        use_tls=False,
        start_tls=None,
        timeout=2,
    )
    return Worker(Database(engine, sessionmaker), app.state.runtime, mailer)


async def _queue_one(factories: Factories, session: AsyncSession, clock: FrozenClock) -> int:
    doctor = await factories.doctor()
    patient = await factories.patient()
    appointment = await factories.appointment(patient=patient, doctor=doctor, at=AT)
    row = Notification(
        kind=NotificationKind.BOOKED,
        status=DeliveryStatus.PENDING,
        user_id=patient.id,
        appointment_id=appointment.id,
        message_id="<retry-me@ehass.localhost>",
        payload={
            "to": patient.email,
            "name": patient.name,
            "role": "patient",
            "appointment_id": appointment.id,
            "sequence": 0,
            "scheduled_at": AT.isoformat(),
            "ends_at": (AT + timedelta(minutes=30)).isoformat(),
            "timezone": "UTC",
            "doctor_name": doctor.name,
            "patient_name": patient.name,
        },
        due_at=clock.now(),
        attempts=0,
        created_at=clock.now(),
    )
    session.add(row)
    await session.flush()
    return row.id


async def _row(session: AsyncSession, row_id: int) -> Notification:
    row = await session.get(Notification, row_id, populate_existing=True)
    assert row is not None
    return row


async def test_a_failed_delivery_is_retried_later_not_at_once(
    factories: Factories, session: AsyncSession, clock: FrozenClock, broken_worker: Worker
) -> None:
    row_id = await _queue_one(factories, session, clock)

    await broken_worker.run_once()

    row = await _row(session, row_id)
    assert row.status == DeliveryStatus.PENDING
    assert row.attempts == 1
    assert row.last_error is not None
    assert clock.now() + timedelta(seconds=15) <= row.due_at <= clock.now() + timedelta(seconds=30)
    # Not due yet: a second pass right away leaves it alone.
    await broken_worker.run_once()
    assert (await _row(session, row_id)).attempts == 1


async def test_after_the_last_attempt_a_message_is_dead_and_an_admin_can_resend_it(
    api: Any,
    app: Any,
    factories: Factories,
    session: AsyncSession,
    clock: FrozenClock,
    broken_worker: Worker,
    worker: Worker,
    smtp: SmtpServer,
) -> None:
    row_id = await _queue_one(factories, session, clock)
    attempts = app.state.runtime.settings.notification_max_attempts
    for _ in range(attempts):
        await broken_worker.run_once()
        clock.advance(hours=2)
    row = await _row(session, row_id)
    assert (row.status, row.attempts) == (DeliveryStatus.DEAD, attempts)

    admin_token = await factories.token(await factories.admin())
    listed = await api("GET", "/admin/notifications?status=dead", token=admin_token)
    assert listed.status_code == 200
    [item] = listed.json()["items"]
    assert item["id"] == row_id and item["attempts"] == attempts
    assert "payload" not in item and "to" not in item  # what it says stays private

    resent = await api("POST", f"/admin/notifications/{row_id}/resend", token=admin_token)
    assert resent.status_code == 202, resent.text
    assert resent.json()["status"] == "pending"
    await worker.run_once()

    [delivered] = smtp.inbox.messages
    assert delivered["Message-ID"] == "<retry-me@ehass.localhost>"
    assert (await _row(session, row_id)).status == DeliveryStatus.SENT
    audit = await api("GET", "/admin/audit-logs?action=notification.resend", token=admin_token)
    assert [e["entity_id"] for e in audit.json()["items"]] == [row_id]


async def test_notifications_are_for_administrators_only(
    api: Any, factories: Factories, session: AsyncSession, clock: FrozenClock
) -> None:
    row_id = await _queue_one(factories, session, clock)
    for user in (await factories.patient(), await factories.doctor()):
        token = await factories.token(user)
        assert_problem(await api("GET", "/admin/notifications", token=token), 403)
        assert_problem(await api("POST", f"/admin/notifications/{row_id}/resend", token=token), 403)
    assert_problem(await api("GET", "/admin/notifications"), 401)


async def test_resending_an_unknown_notification_is_a_404(api: Any, factories: Factories) -> None:
    token = await factories.token(await factories.admin())
    for unknown in (999999, 2**70):
        response = await api("POST", f"/admin/notifications/{unknown}/resend", token=token)
        assert_problem(response, 404)


async def test_the_list_filters_and_pages(
    api: Any, factories: Factories, session: AsyncSession, clock: FrozenClock
) -> None:
    ids = [await _queue_one(factories, session, clock)]
    for kind, status in (
        (NotificationKind.REMINDER, DeliveryStatus.CANCELLED),
        (NotificationKind.CANCELLED, DeliveryStatus.SENT),
    ):
        row = await _row(session, ids[0])
        copy = Notification(
            kind=kind,
            status=status,
            user_id=row.user_id,
            appointment_id=row.appointment_id,
            message_id=f"<{kind}@ehass.localhost>",
            payload=row.payload,
            due_at=row.due_at,
            attempts=0,
            created_at=row.created_at,
        )
        session.add(copy)
        await session.flush()
        ids.append(copy.id)
    token = await factories.token(await factories.admin())

    first = await api("GET", "/admin/notifications?limit=2", token=token)
    second = await api(
        "GET", f"/admin/notifications?limit=2&cursor={first.json()['next_cursor']}", token=token
    )
    assert [i["id"] for i in first.json()["items"] + second.json()["items"]] == ids[::-1]
    assert second.json()["next_cursor"] is None
    reminders = await api("GET", "/admin/notifications?kind=appointment.reminder", token=token)
    assert [i["id"] for i in reminders.json()["items"]] == [ids[1]]
    assert_problem(await api("GET", "/admin/notifications?status=lost", token=token), 422)
    assert_problem(await api("GET", "/admin/notifications?cursor=bogus", token=token), 422)


async def test_health_shows_the_outbox(
    api: Any, factories: Factories, session: AsyncSession, clock: FrozenClock
) -> None:
    await _queue_one(factories, session, clock)
    token = await factories.token(await factories.admin())

    health = (await api("GET", "/admin/health", token=token)).json()
    assert health["outbox"] == {"due": 1, "dead": 0, "oldest_due_seconds": 0}
    assert health["status"] == "ok"

    clock.advance(minutes=10)
    stuck = (await api("GET", "/admin/health", token=token)).json()
    assert stuck["outbox"]["oldest_due_seconds"] == 600
    assert stuck["status"] == "degraded"


async def test_health_lists_the_workers_seen_lately(
    api: Any, factories: Factories, worker: Worker, clock: FrozenClock
) -> None:
    await worker.run(_stop_after_one_pass())
    token = await factories.token(await factories.admin())

    health = (await api("GET", "/admin/health", token=token)).json()
    [beat] = health["worker"]["workers"]
    assert beat["worker_id"] == worker.worker_id
    assert health["worker"]["status"] == "ok"

    clock.advance(minutes=2)
    later = (await api("GET", "/admin/health", token=token)).json()
    assert later["worker"]["workers"] == []


def _stop_after_one_pass() -> Any:
    import asyncio

    class OnePass(asyncio.Event):
        """Reads as unset once, so `Worker.run` makes exactly one pass."""

        def __init__(self) -> None:
            super().__init__()
            self.checks = 0

        def is_set(self) -> bool:
            self.checks += 1
            return self.checks > 1

    return OnePass()
