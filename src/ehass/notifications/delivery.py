"""Where messages go: an SMTP server (aiosmtplib), or the log when none is configured."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib
import structlog

from ehass.config import Settings

log = structlog.get_logger("ehass.notifications")

_SCHEMES = {"smtp": (False, None), "smtp+starttls": (False, True), "smtps": (True, False)}


class Mailer(Protocol):
    channel: str

    async def send(self, message: EmailMessage) -> None: ...


@dataclass(frozen=True)
class SmtpMailer:
    hostname: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool
    # None: STARTTLS when the server offers it; True: refuse a server that does not.
    start_tls: bool | None
    timeout: float
    channel: str = "smtp"

    @classmethod
    def from_url(cls, url: str, *, timeout: float) -> SmtpMailer:
        parts = urlsplit(url)
        if parts.scheme not in _SCHEMES or not parts.hostname:
            raise ValueError(
                "EHASS_SMTP_URL must look like smtp://host:587, smtp+starttls://user:pass@host"
                ":587 or smtps://host:465"
            )
        use_tls, start_tls = _SCHEMES[parts.scheme]
        return cls(
            hostname=parts.hostname,
            port=parts.port or (465 if use_tls else 587),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=use_tls,
            start_tls=start_tls,
            timeout=timeout,
        )

    async def send(self, message: EmailMessage) -> None:
        await aiosmtplib.send(
            message,
            hostname=self.hostname,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.use_tls,
            start_tls=self.start_tls,
            timeout=self.timeout,
        )


# A single-use link's token (password reset, email verification) in a message text.
_LINK_TOKEN = re.compile(r"([?&]token=)[^\s&]+")


def redact_link_tokens(text: str) -> str:
    return _LINK_TOKEN.sub(r"\1[redacted]", text)


@dataclass(frozen=True)
class LogMailer:
    """Without a mail server each message is written to the log, whole in development.

    Elsewhere the tokens of emailed links are redacted: a log line must never let its
    reader reset someone's password. Such a link then only works in development.
    """

    redact_tokens: bool = True
    channel: str = "log"

    async def send(self, message: EmailMessage) -> None:
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        log.info(
            "notification.logged",
            message_id=message["Message-ID"],
            to=message["To"],
            subject=message["Subject"],
            text=redact_link_tokens(text) if self.redact_tokens else text,
        )


def mailer_for(settings: Settings) -> Mailer:
    if settings.smtp_url is None:
        return LogMailer(redact_tokens=settings.env != "development")
    return SmtpMailer.from_url(
        settings.smtp_url.get_secret_value(), timeout=settings.smtp_timeout_seconds
    )
