"""Reading single-use links out of the mail the SMTP server received."""

from __future__ import annotations

import re
from email.message import EmailMessage

from ehass.notifications.worker import Worker
from tests.mail import SmtpServer

PUBLIC_URL = "http://127.0.0.1:8000"  # the test settings' default


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return body.get_content()


def token_in(message: EmailMessage, page: str) -> str:
    """The token of the `{public_url}/{page}?token=...` link in the message."""
    found = re.search(rf"{re.escape(PUBLIC_URL)}/{page}\?token=([A-Za-z0-9_-]+)", text_of(message))
    assert found, f"no /{page} link in:\n{text_of(message)}"
    return found.group(1)


async def mail_to(worker: Worker, smtp: SmtpServer, address: str) -> list[EmailMessage]:
    """Delivers what is due, then everything the address has received so far."""
    await worker.run_once()
    return smtp.inbox.to(address)
