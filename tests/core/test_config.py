from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from ehass.config import DEVELOPMENT_SECRET, Settings


def test_defaults_run_embedded(monkeypatch):
    for name in ("EHASS_DATABASE_URL", "EHASS_REDIS_URL", "EHASS_ENV", "EHASS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None)
    assert settings.database_url.startswith("sqlite+aiosqlite:")
    assert settings.redis_url is None
    assert settings.env == "development"
    assert settings.cancellation_notice_hours == 24
    assert settings.rate_limit_enabled is True


@pytest.mark.parametrize("secret", [None, DEVELOPMENT_SECRET, "too-short"])
def test_production_refuses_missing_or_default_secret(monkeypatch, secret):
    monkeypatch.setenv("EHASS_ENV", "production")
    if secret is None:
        monkeypatch.delenv("EHASS_SECRET_KEY", raising=False)
    else:
        monkeypatch.setenv("EHASS_SECRET_KEY", secret)
    with pytest.raises(ValidationError, match="EHASS_SECRET_KEY"):
        Settings(_env_file=None)


def test_production_starts_with_a_real_secret_and_encryption_keys(monkeypatch):
    monkeypatch.setenv("EHASS_ENV", "production")
    monkeypatch.setenv("EHASS_SECRET_KEY", "k" * 48)
    with pytest.raises(ValidationError, match="EHASS_ENCRYPTION_KEYS"):
        Settings(_env_file=None)
    monkeypatch.setenv(
        "EHASS_ENCRYPTION_KEYS", "k1:" + base64.urlsafe_b64encode(b"x" * 32).decode()
    )
    with pytest.raises(ValidationError, match="EHASS_AUDIT_SIGNING_KEY"):
        Settings(_env_file=None)
    monkeypatch.setenv("EHASS_AUDIT_SIGNING_KEY", base64.b64encode(b"s" * 32).decode())
    assert Settings(_env_file=None).env == "production"


@pytest.mark.parametrize("value", ["not base64!", base64.b64encode(b"short").decode()])
def test_a_malformed_audit_signing_key_is_refused_without_quoting_it(monkeypatch, value):
    monkeypatch.setenv("EHASS_AUDIT_SIGNING_KEY", value)
    with pytest.raises(ValidationError, match="32-byte Ed25519") as refused:
        Settings(_env_file=None)
    # What `ehass` prints of a refusal is the message, which never quotes the value.
    assert value not in refused.value.errors()[0]["msg"]


def test_malformed_encryption_keys_are_refused(monkeypatch):
    monkeypatch.setenv("EHASS_ENCRYPTION_KEYS", "k1:short")
    with pytest.raises(ValidationError, match="encryption key"):
        Settings(_env_file=None)


def test_yaml_file_is_read_and_environment_wins(monkeypatch, tmp_path):
    config = tmp_path / "ehass.yaml"
    config.write_text("cancellation_notice_hours: 48\naccess_token_minutes: 5\n")
    monkeypatch.setenv("EHASS_CONFIG_FILE", str(config))
    monkeypatch.setenv("EHASS_ACCESS_TOKEN_MINUTES", "10")
    settings = Settings(_env_file=None)
    assert settings.cancellation_notice_hours == 48
    assert settings.access_token_minutes == 10


def test_missing_yaml_file_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("EHASS_CONFIG_FILE", str(tmp_path / "nope.yaml"))
    with pytest.raises(ValueError, match="does not exist"):
        Settings(_env_file=None)


def test_example_config_file_is_valid(monkeypatch):
    from pathlib import Path

    example = Path(__file__).parents[2] / "configs" / "config.example.yaml"
    monkeypatch.setenv("EHASS_CONFIG_FILE", str(example))
    for name in ("EHASS_DATABASE_URL", "EHASS_ENV", "EHASS_CANCELLATION_NOTICE_HOURS"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None)
    assert settings.cancellation_notice_hours == 24
    assert settings.access_token_minutes == 15
