"""Signed checkpoints of the audit tree, after RFC 9162's signed tree heads.

A checkpoint says "the tree of the first `tree_size` entries has root `root_hash`", at a
time, signed with Ed25519. Exported to a write-once store, it anchors the chain outside
the database: the chain alone is unkeyed, so whoever can write the database could
recompute it from an edit onwards; they cannot forge a checkpoint without the key.
No I/O here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ORIGIN = "ehass audit checkpoint v1"


class CheckpointFormatError(ValueError):
    """An exported checkpoint that is not one: the message names the field."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    tree_size: int
    root_hash: str  # hex
    timestamp: datetime  # aware UTC, whole seconds
    key_id: str  # hex SHA-256 of the raw public key
    signature: str  # base64


def _timestamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def message(*, tree_size: int, root_hash: str, timestamp: datetime) -> bytes:
    """The signed bytes: one field a line, like a C2SP checkpoint note body."""
    return f"{ORIGIN}\n{tree_size}\n{root_hash}\n{_timestamp(timestamp)}\n".encode()


def public_bytes(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(public_bytes(public)).hexdigest()


def sign(key: Ed25519PrivateKey, *, tree_size: int, root_hash: str, at: datetime) -> Checkpoint:
    at = at.astimezone(UTC).replace(microsecond=0)
    signature = key.sign(message(tree_size=tree_size, root_hash=root_hash, timestamp=at))
    return Checkpoint(
        tree_size=tree_size,
        root_hash=root_hash,
        timestamp=at,
        key_id=key_id(key.public_key()),
        signature=base64.b64encode(signature).decode(),
    )


def signature_valid(public: Ed25519PublicKey, signed: Checkpoint) -> bool:
    body = message(
        tree_size=signed.tree_size, root_hash=signed.root_hash, timestamp=signed.timestamp
    )
    try:
        public.verify(base64.b64decode(signed.signature, validate=True), body)
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def to_json(signed: Checkpoint, public: Ed25519PublicKey) -> dict[str, Any]:
    return {
        "tree_size": signed.tree_size,
        "root_hash": signed.root_hash,
        "timestamp": _timestamp(signed.timestamp),
        "key_id": signed.key_id,
        "signature": signed.signature,
        "public_key": base64.b64encode(public_bytes(public)).decode(),
    }


def from_json(data: object) -> tuple[Checkpoint, Ed25519PublicKey]:
    """An exported checkpoint read back; every problem is a CheckpointFormatError."""
    if not isinstance(data, dict):
        raise CheckpointFormatError("a checkpoint is a JSON object")
    missing = [
        name
        for name in ("tree_size", "root_hash", "timestamp", "key_id", "signature", "public_key")
        if name not in data
    ]
    if missing:
        raise CheckpointFormatError(f"missing field(s): {', '.join(missing)}")
    size = data["tree_size"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise CheckpointFormatError("tree_size must be a positive integer")
    root = data["root_hash"]
    if not isinstance(root, str) or len(root) != 64 or not _is_hex(root):
        raise CheckpointFormatError("root_hash must be 64 hex digits")
    try:
        at = datetime.strptime(str(data["timestamp"]), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise CheckpointFormatError("timestamp must look like 2026-12-04T19:00:00Z") from None
    try:
        raw = base64.b64decode(str(data["public_key"]), validate=True)
        public = Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise CheckpointFormatError("public_key must be base64 of a 32-byte Ed25519 key") from None
    signed = Checkpoint(
        tree_size=size,
        root_hash=root,
        timestamp=at,
        key_id=str(data["key_id"]),
        signature=str(data["signature"]),
    )
    return signed, public


def problem(
    signed: Checkpoint, public: Ed25519PublicKey, *, chain_size: int, roots: dict[int, str]
) -> str | None:
    """What is wrong with a checkpoint against the chain (None: it still holds). `roots`
    are the Merkle roots recomputed from the entries, by tree size."""
    if key_id(public) != signed.key_id:
        return (
            f"key_id {signed.key_id} is not the id of the public key it is checked with "
            "(another key signed it, or the field was changed)"
        )
    if not signature_valid(public, signed):
        return "the signature is not valid: the checkpoint was altered or signed by another key"
    if signed.tree_size > chain_size:
        return (
            f"the checkpoint covers {signed.tree_size} entries but the chain has only "
            f"{chain_size}: entries were removed"
        )
    recomputed = roots.get(signed.tree_size)
    if recomputed != signed.root_hash:
        return (
            f"the Merkle root of the first {signed.tree_size} entries is {recomputed}, the "
            f"checkpoint signed {signed.root_hash}: an entry it covers was changed"
        )
    return None


def parse_signing_key(text: str) -> Ed25519PrivateKey:
    """EHASS_AUDIT_SIGNING_KEY: base64 (standard or URL-safe) of the 32 private key bytes."""
    try:
        raw = base64.b64decode(text.strip().replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        # The value itself is never part of the message: it is a secret.
        raise ValueError("EHASS_AUDIT_SIGNING_KEY must be base64 of a 32-byte Ed25519 key")
    return Ed25519PrivateKey.from_private_bytes(raw)


def derived_signing_key(secret: str) -> Ed25519PrivateKey:
    """A development key derived from the secret key, so the embedded default just works."""
    seed = hashlib.sha256(b"ehass audit checkpoint signing\x00" + secret.encode()).digest()
    return Ed25519PrivateKey.from_private_bytes(seed)


def _is_hex(value: str) -> bool:
    try:
        bytes.fromhex(value)
    except ValueError:
        return False
    return True
