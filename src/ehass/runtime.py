"""What services need besides the database session: settings, the clock, shared state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ehass.audit.checkpoint import derived_signing_key, parse_signing_key
from ehass.config import Settings
from ehass.core import crypto
from ehass.core.clock import Clock
from ehass.core.tokens import TokenSigner
from ehass.shared import SharedState


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    clock: Clock
    shared: SharedState
    signer: TokenSigner

    @classmethod
    def create(cls, settings: Settings, clock: Clock, shared: SharedState) -> Runtime:
        crypto.configure(build_keyring(settings))
        signer = TokenSigner(
            secret=settings.secret_key.get_secret_value(),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
        return cls(settings=settings, clock=clock, shared=shared, signer=signer)

    @property
    def cancellation_notice(self) -> timedelta:
        return timedelta(hours=self.settings.cancellation_notice_hours)


def build_keyring(settings: Settings) -> crypto.Keyring:
    if settings.encryption_keys is not None:
        return crypto.Keyring(tuple(crypto.parse_keys(settings.encryption_keys.get_secret_value())))
    return crypto.Keyring((crypto.derived_key(settings.secret_key.get_secret_value()),))


def audit_signing_key(settings: Settings) -> Ed25519PrivateKey:
    """The key that signs audit checkpoints; production refuses to start without one."""
    if settings.audit_signing_key is not None:
        return parse_signing_key(settings.audit_signing_key.get_secret_value())
    return derived_signing_key(settings.secret_key.get_secret_value())
