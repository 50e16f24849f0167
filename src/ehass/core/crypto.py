"""Field-level encryption at rest: AES-256-GCM with named keys, so keys rotate without downtime.

A stored value reads `v1.<key id>.<base64url(nonce | ciphertext+tag)>`. The newest key
encrypts; every listed key decrypts, so old values stay readable until `ehass keys rotate`
has re-encrypted them. The column name is bound in as associated data: a value copied into
another column does not decrypt.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = "v1"
NONCE_BYTES = 12


class DecryptionError(ValueError):
    pass


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_keys(spec: str) -> list[tuple[str, bytes]]:
    """`kid:base64key,kid2:base64key` (newest first) -> [(kid, 32-byte key), ...]."""
    keys = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        kid, _, encoded = part.partition(":")
        try:
            key = _b64decode(encoded)
        except ValueError:
            key = b""
        if not kid.isalnum() or len(key) != 32:
            raise ValueError("each encryption key is `<alphanumeric id>:<base64 of 32 bytes>`")
        keys.append((kid, key))
    if not keys:
        raise ValueError("no encryption key given")
    return keys


def derived_key(secret: str) -> tuple[str, bytes]:
    """A development key derived from the secret key, so the embedded default just works."""
    return "dev", hashlib.sha256(b"ehass field encryption\x00" + secret.encode()).digest()


@dataclass(frozen=True)
class Keyring:
    keys: tuple[tuple[str, bytes], ...]

    @property
    def current_kid(self) -> str:
        return self.keys[0][0]

    def encrypt(self, plaintext: str, *, context: str) -> str:
        kid, key = self.keys[0]
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(key).encrypt(nonce, plaintext.encode(), context.encode())
        body = base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode()
        return f"{VERSION}.{kid}.{body}"

    def decrypt(self, token: str, *, context: str) -> str:
        try:
            version, kid, body = token.split(".", 2)
            key = dict(self.keys)[kid]
            raw = _b64decode(body)
            if version != VERSION:
                raise KeyError(version)
            return (
                AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode()).decode()
            )
        except (ValueError, KeyError, InvalidTag) as exc:
            raise DecryptionError(f"cannot decrypt a value of {context}") from exc

    def is_current(self, token: str) -> bool:
        return token.startswith(f"{VERSION}.{self.current_kid}.")


_keyring: Keyring | None = None


def configure(keyring: Keyring) -> None:
    global _keyring
    _keyring = keyring


def keyring() -> Keyring:
    if _keyring is None:
        raise RuntimeError("field encryption used before configure() was called")
    return _keyring
