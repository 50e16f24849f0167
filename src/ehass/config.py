"""Settings: `EHASS_` environment variables, an optional `.env`, an optional YAML file."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from ehass.audit.checkpoint import parse_signing_key
from ehass.core.crypto import parse_keys

# A development default that production refuses: see `_refuse_default_secrets`.
DEVELOPMENT_SECRET = "development-only-secret-change-me-0123456789"  # noqa: S105
MIN_SECRET_LENGTH = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="EHASS_", env_file=".env", extra="ignore", validate_default=True
    )

    env: Literal["development", "production", "test"] = "development"
    database_url: str = "sqlite+aiosqlite:///./ehass.db"
    database_pool_size: int = Field(default=10, ge=1, le=200)
    database_echo: bool = False
    redis_url: str | None = None
    redis_key_prefix: str = "ehass"
    # How long a Redis command may wait for its answer. Redis next to the app answers in well
    # under a millisecond, so a quarter second is hundreds of times that; a longer wait only
    # makes every request pay more while Redis hangs. Connecting keeps 1 s: a lost SYN is
    # only resent after 1 s, and a connection is opened once, not per request.
    redis_socket_timeout_seconds: float = Field(default=0.25, gt=0, le=10)
    # After 3 failures in a row, Redis is not asked for this long (doubling while it keeps
    # failing, up to the maximum): requests are served as when Redis is down.
    redis_breaker_open_seconds: float = Field(default=2.0, gt=0, le=300)
    redis_breaker_max_open_seconds: float = Field(default=30.0, gt=0, le=3600)
    secret_key: SecretStr = SecretStr(DEVELOPMENT_SECRET)
    # `kid:base64(32 bytes)`, newest first; older keys only decrypt (see `ehass keys rotate`).
    encryption_keys: SecretStr | None = None
    mfa_required_for_staff: bool = False
    # base64 of a 32-byte Ed25519 private key: signs the audit checkpoints. Outside
    # production it is derived from the secret key when unset.
    audit_signing_key: SecretStr | None = None
    # How often the worker seals committed audit entries into the chain (the MMD's floor).
    audit_seal_seconds: float = Field(default=0.2, gt=0, le=60)

    jwt_issuer: str = "ehass"
    jwt_audience: str = "ehass-api"
    access_token_minutes: int = Field(default=15, ge=1, le=60)
    session_idle_minutes: int = Field(default=30, ge=1)
    session_absolute_hours: int = Field(default=12, ge=1)

    cancellation_notice_hours: int = Field(default=24, ge=0)
    rate_limit_enabled: bool = True
    rate_limit_per_address: str = "1200/minute"
    rate_limit_auth_per_address: str = "60/minute"
    login_failures_per_account: int = 10
    login_failures_per_address: int = 100
    login_failure_window_minutes: int = 15
    idempotency_hours: int = 24

    # Account recovery (auth/recovery.py): how long emailed links work, and how often they
    # may be asked for. Limits use the `limits` notation ("5/hour").
    password_reset_minutes: int = Field(default=30, ge=5, le=24 * 60)
    email_verification_hours: int = Field(default=72, ge=1)
    require_verified_email: bool = False  # booking refused (403) until the email is verified
    recovery_per_email: str = "5/hour"
    recovery_per_address: str = "30/hour"

    # Proxies whose X-Forwarded-For/-Proto are believed (comma-separated, or "*").
    forwarded_allow_ips: str | None = None
    startup_timeout_seconds: float = Field(default=60, ge=0)
    max_body_bytes: int = 1024 * 1024
    cors_origins: list[str] = []
    log_level: str = "INFO"
    metrics_token: SecretStr | None = None  # GET /metrics answers 404 without it
    metrics_port: int | None = None  # also serve metrics on 127.0.0.1:<port>
    otel_endpoint: str | None = None  # OTLP/HTTP traces endpoint; tracing is off without it
    log_json: bool | None = None  # None: JSON outside development

    # Notifications (see notifications/): where links in messages point, and how mail leaves.
    public_url: str = "http://127.0.0.1:8000"
    # smtp://user:pass@host:587 (STARTTLS when offered), smtp+starttls:// (STARTTLS required),
    # smtps:// (TLS from the first byte). None: messages are written to the log instead.
    smtp_url: SecretStr | None = None
    smtp_timeout_seconds: float = Field(default=30, gt=0)
    mail_from: str = "EHASS <no-reply@ehass.localhost>"
    reminder_offsets_hours: list[int] = [24]
    notification_max_attempts: int = Field(default=8, ge=1)
    notification_retry_base_seconds: float = Field(default=30, gt=0)
    notification_retry_max_seconds: float = Field(default=3600, gt=0)
    worker_poll_seconds: float = Field(default=1.0, gt=0)
    # How long POST /holds (and a waitlist offer) keeps a slot for one patient.
    hold_minutes: int = Field(default=5, ge=1, le=60)
    # How long computed free slots stay cached (Redis, or in-process without it); 0: never.
    # Every change to a doctor's time starts a new entry and leaves the old one to expire,
    # so this bounds the memory dead entries hold as much as it bounds the reuse.
    slot_cache_seconds: int = Field(default=300, ge=0, le=86400)
    # A worker that claimed a message and died holds it this long; then another sends it.
    notification_lease_seconds: float = Field(default=300, gt=0)
    # None: a worker runs inside `ehass serve` on SQLite only; elsewhere run `ehass worker`.
    embedded_worker: bool | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources = [init_settings, env_settings, dotenv_settings, file_secret_settings]
        # Environment variables win over the YAML file, which wins over defaults.
        config_file = os.environ.get("EHASS_CONFIG_FILE")
        if config_file:
            if not Path(config_file).is_file():
                raise ValueError(f"EHASS_CONFIG_FILE {config_file!r} does not exist")
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Settings:
        if self.env != "development":
            secret = self.secret_key.get_secret_value()
            if secret == DEVELOPMENT_SECRET or len(secret) < MIN_SECRET_LENGTH:
                raise ValueError(
                    "EHASS_SECRET_KEY must be set to a random value of at least "
                    f"{MIN_SECRET_LENGTH} characters outside development "
                    '(for example: python3 -c "import secrets; print(secrets.token_urlsafe(48))")'
                )
            if self.env == "production" and self.encryption_keys is None:
                raise ValueError(
                    "EHASS_ENCRYPTION_KEYS must be set in production "
                    "(kid:base64 of 32 random bytes, newest first)"
                )
            if self.env == "production" and self.audit_signing_key is None:
                raise ValueError(
                    "EHASS_AUDIT_SIGNING_KEY must be set in production "
                    "(base64 of a 32-byte Ed25519 private key)"
                )
        if self.encryption_keys is not None:
            parse_keys(self.encryption_keys.get_secret_value())  # fail early on a malformed list
        if self.audit_signing_key is not None:
            parse_signing_key(self.audit_signing_key.get_secret_value())
        return self

    @model_validator(mode="after")
    def _breaker_bounds(self) -> Settings:
        if self.redis_breaker_max_open_seconds < self.redis_breaker_open_seconds:
            raise ValueError(
                "EHASS_REDIS_BREAKER_MAX_OPEN_SECONDS must not be below "
                "EHASS_REDIS_BREAKER_OPEN_SECONDS"
            )
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def runs_embedded_worker(self) -> bool:
        return self.is_sqlite if self.embedded_worker is None else self.embedded_worker

    @property
    def mail_domain(self) -> str:
        """The part after @ of the sender: it names Message-IDs and calendar UIDs."""
        address = self.mail_from.rsplit("<", 1)[-1].rstrip(">").strip()
        return address.rsplit("@", 1)[-1] or "ehass.localhost"

    @property
    def json_logs(self) -> bool:
        return self.env != "development" if self.log_json is None else self.log_json


@lru_cache
def get_settings() -> Settings:
    return Settings()
