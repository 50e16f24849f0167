"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, and a worker
that delivers to it inside the test's transaction. Registered for the whole suite by
tests/conftest.py: every domain that sends mail tests it through these."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ehass.db import Database
from ehass.notifications.delivery import SmtpMailer
from ehass.notifications.worker import Worker
from tests.servers import free_port


@dataclass
class Inbox:
    """What the SMTP server accepted, parsed; `on_message` runs before it answers 250."""

    messages: list[EmailMessage] = field(default_factory=list)
    on_message: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = BytesParser(policy=policy.default).parsebytes(envelope.content)
        with self.lock:
            self.messages.append(message)  # type: ignore[arg-type]
        if self.on_message is not None:
            self.on_message(message)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if m["To"] == address]

    def message_ids(self) -> list[str]:
        with self.lock:
            return [m["Message-ID"] for m in self.messages]


@dataclass
class SmtpServer:
    port: int
    inbox: Inbox

    def mailer(self) -> SmtpMailer:
        return SmtpMailer(
            hostname="127.0.0.1",
            port=self.port,
            username=None,
            password=None,
            use_tls=False,
            start_tls=None,
            timeout=5,
        )


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield SmtpServer(port=controller.port, inbox=inbox)
    finally:
        controller.stop()


@pytest.fixture
def worker(
    app: Any,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    smtp: SmtpServer,
) -> Worker:
    """Delivers through the test's own transaction, with the app's clock and settings."""
    return Worker(Database(engine, sessionmaker), app.state.runtime, smtp.mailer())
