from __future__ import annotations

import pytest

from ehass.config import Settings
from ehass.notifications.delivery import LogMailer, SmtpMailer, mailer_for
from tests.conftest import TEST_ENCRYPTION_KEYS


def _settings(**values: object) -> Settings:
    return Settings(
        env="development", encryption_keys=TEST_ENCRYPTION_KEYS, _env_file=None, **values
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example:2525", ("mail.example", 2525, None, None, False, None)),
        ("smtp://mail.example", ("mail.example", 587, None, None, False, None)),
        (
            "smtp+starttls://ops%40clinic:p%3Ass@mail.example:587",
            ("mail.example", 587, "ops@clinic", "p:ss", False, True),
        ),
        ("smtps://mail.example", ("mail.example", 465, None, None, True, False)),
    ],
)
def test_the_smtp_url_says_where_and_how(url: str, expected: tuple[object, ...]) -> None:
    mailer = mailer_for(_settings(smtp_url=url))
    assert isinstance(mailer, SmtpMailer)
    got = (
        mailer.hostname,
        mailer.port,
        mailer.username,
        mailer.password,
        mailer.use_tls,
        mailer.start_tls,
    )
    assert got == expected


@pytest.mark.parametrize("url", ["http://mail.example", "smtp://", "mail.example:25"])
def test_a_malformed_smtp_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="EHASS_SMTP_URL"):
        mailer_for(_settings(smtp_url=url))


def test_without_an_smtp_url_messages_go_to_the_log() -> None:
    assert isinstance(mailer_for(_settings()), LogMailer)


def test_message_ids_and_uids_take_the_senders_domain() -> None:
    assert _settings(mail_from="Clinic <appointments@clinic.example>").mail_domain == (
        "clinic.example"
    )
    assert _settings(mail_from="bare@clinic.example").mail_domain == "clinic.example"


def test_the_embedded_worker_runs_on_sqlite_unless_told_otherwise() -> None:
    assert _settings().runs_embedded_worker
    mysql = "mysql+asyncmy://root@127.0.0.1/x"
    assert not _settings(database_url=mysql).runs_embedded_worker
    assert _settings(database_url=mysql, embedded_worker=True).runs_embedded_worker
