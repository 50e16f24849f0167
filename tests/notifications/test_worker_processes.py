"""Real `ehass worker` processes on a committed database: a worker killed between sending
and recording loses nothing, and two workers never send one message twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from ehass.config import Settings
from ehass.notifications.models import DeliveryStatus, Notification, NotificationKind
from ehass.users.models import User
from tests.notifications.conftest import SmtpServer
from tests.servers import database_of_its_own, server_env

pytestmark = pytest.mark.concurrency

SECRET_KEY = "worker-test-secret-key-that-is-long-enough-0123456789"
SETTLE_TIMEOUT_SECONDS = 60.0


def _env(url: str, smtp: SmtpServer, **extra: str) -> dict[str, str]:
    return server_env(
        {
            "EHASS_ENV": "test",
            "EHASS_DATABASE_URL": url,
            "EHASS_SECRET_KEY": SECRET_KEY,
            "EHASS_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}",
            "EHASS_WORKER_POLL_SECONDS": "0.1",
            "EHASS_LOG_JSON": "true",
            **extra,
        }
    )


@contextmanager
def _workers(count: int, env: dict[str, str], log_dir: Path) -> Iterator[list[subprocess.Popen]]:
    processes = []
    try:
        for index in range(count):
            log = (log_dir / f"worker-{index}-{time.monotonic_ns()}.log").open("wb")
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "ehass.cli", "worker"],
                    env=env,
                    cwd=log_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            log.close()
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def _queue(engine: AsyncEngine, count: int) -> list[str]:
    now = datetime.now(UTC).replace(microsecond=0)
    at = now + timedelta(days=3)
    async with async_sessionmaker(engine)() as session, session.begin():
        user = User(
            email="worker-test@test.ehass.org",
            name="Worker Test",
            password_hash="unused",
            role="patient",
            is_active=True,
            created_at=now,
            updated_at=now,
        )
        session.add(user)
        await session.flush()
        ids = [f"<worker-test-{n}@ehass.localhost>" for n in range(count)]
        for message_id in ids:
            session.add(
                Notification(
                    kind=NotificationKind.BOOKED,
                    status=DeliveryStatus.PENDING,
                    user_id=user.id,
                    message_id=message_id,
                    payload={
                        "to": user.email,
                        "name": user.name,
                        "role": "patient",
                        "appointment_id": 1,
                        "sequence": 0,
                        "scheduled_at": at.isoformat(),
                        "ends_at": (at + timedelta(minutes=30)).isoformat(),
                        "timezone": "Europe/Berlin",
                        "doctor_name": "Dr Test",
                        "patient_name": user.name,
                    },
                    due_at=now - timedelta(seconds=1),
                    attempts=0,
                    created_at=now,
                )
            )
    return ids


async def _wait_all_sent(engine: AsyncEngine, count: int, processes: list[Any]) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
    while True:
        async with engine.connect() as connection:
            sent = await connection.scalar(
                select(func.count()).where(Notification.status == DeliveryStatus.SENT)
            )
        if sent == count:
            return
        assert all(p.poll() is None for p in processes), "a worker exited early"
        assert time.monotonic() < deadline, f"only {sent} of {count} sent in time"
        await anyio.sleep(0.2)


async def test_two_workers_share_the_outbox_and_never_send_a_message_twice(
    settings: Settings, tmp_path: Path, smtp: SmtpServer
) -> None:
    async with database_of_its_own(settings, tmp_path, "workers") as (url, engine):
        ids = await _queue(engine, 120)
        with _workers(2, _env(url, smtp), tmp_path) as processes:
            await _wait_all_sent(engine, len(ids), processes)

        received = Counter(smtp.inbox.message_ids())
        assert set(received) == set(ids)
        assert max(received.values()) == 1
        async with engine.connect() as connection:
            attempts = set((await connection.scalars(select(Notification.attempts))).all())
        assert attempts == {1}


async def test_a_worker_killed_after_sending_leaves_the_message_to_be_sent_again(
    settings: Settings, tmp_path: Path, smtp: SmtpServer
) -> None:
    """The SMTP server kills the worker while the first message is in its hands, before
    answering: the worker never records the delivery. Once its lease lapses, another worker
    sends the message again, recognisably the same (same Message-ID)."""
    async with database_of_its_own(settings, tmp_path, "crash") as (url, engine):
        [message_id] = await _queue(engine, 1)
        env = _env(url, smtp, EHASS_NOTIFICATION_LEASE_SECONDS="2")
        with _workers(1, env, tmp_path) as [doomed]:

            def kill_the_sender(_message: Any) -> None:
                smtp.inbox.on_message = None
                os.kill(doomed.pid, signal.SIGKILL)

            smtp.inbox.on_message = kill_the_sender
            deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
            while doomed.poll() is None:
                assert time.monotonic() < deadline, "the worker never sent anything"
                await anyio.sleep(0.1)
        assert doomed.returncode == -signal.SIGKILL
        async with engine.connect() as connection:
            row = (await connection.execute(select(Notification.status))).scalar_one()
        assert row == DeliveryStatus.PENDING

        with _workers(1, env, tmp_path) as processes:
            await _wait_all_sent(engine, 1, processes)

        assert smtp.inbox.message_ids() == [message_id, message_id]
        async with engine.connect() as connection:
            attempts = await connection.scalar(select(Notification.attempts))
        assert attempts == 2
