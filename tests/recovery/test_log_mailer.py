"""Without a mail server, messages go to the log: never with a usable link outside
development."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage

import pytest
from structlog.testing import capture_logs

from ehass.config import Settings
from ehass.notifications import messages
from ehass.notifications.delivery import LogMailer, mailer_for, redact_link_tokens
from ehass.notifications.models import NotificationKind
from tests.conftest import TEST_ENCRYPTION_KEYS

TOKEN = "Zm9vYmFyLXNpbmdsZS11c2UtdG9rZW4tZm9yLXRlc3Rz"
SECRET = "log-mailer-test-secret-that-is-long-enough-0123456789"


def _reset_message() -> EmailMessage:
    item = messages.Outgoing(
        id=1,
        kind=NotificationKind.PASSWORD_RESET,
        message_id="<1@ehass.localhost>",
        payload={
            "to": "a@example.org",
            "name": "A",
            "link": f"https://clinic.example/reset-password?token={TOKEN}",
            "valid_minutes": 30,
        },
        request_id=None,
        created_at=datetime(2026, 11, 30, 12, tzinfo=UTC),
    )
    return messages.email(
        item, sender="EHASS <no-reply@ehass.localhost>", domain="ehass.localhost", public_url="x"
    )


def test_link_tokens_are_redacted_wherever_they_stand() -> None:
    text = f"open https://x/verify-email?token={TOKEN}\nor https://x/p?a=1&token={TOKEN}&b=2"
    redacted = redact_link_tokens(text)
    assert TOKEN not in redacted
    assert "verify-email?token=[redacted]" in redacted and "&token=[redacted]&b=2" in redacted


@pytest.mark.parametrize(("env", "shows_token"), [("development", True), ("test", False)])
async def test_the_logged_message_keeps_its_token_in_development_only(
    env: str, shows_token: bool
) -> None:
    settings = Settings(
        env=env, secret_key=SECRET, encryption_keys=TEST_ENCRYPTION_KEYS, _env_file=None
    )
    mailer = mailer_for(settings)
    assert isinstance(mailer, LogMailer)
    with capture_logs() as logs:
        await mailer.send(_reset_message())
    [entry] = logs
    assert entry["subject"] == "Reset your password"
    assert (TOKEN in entry["text"]) is shows_token
    assert "reset-password?token=" in entry["text"]


async def test_a_log_mailer_redacts_unless_told_otherwise() -> None:
    with capture_logs() as logs:
        await LogMailer().send(_reset_message())
    assert TOKEN not in str(logs)
