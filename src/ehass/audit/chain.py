"""The hash chain, with no I/O: the canonical encoding of an entry and its hash."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

FIELDS = (
    "id",
    "at",
    "actor_id",
    "actor_role",
    "action",
    "entity",
    "entity_id",
    "ip",
    "user_agent",
    "request_id",
    "changes",
)


def canonical(fields: dict[str, Any]) -> bytes:
    """Sorted keys, no whitespace, UTC `Z` datetimes: the same bytes on every backend."""

    def default(value: object) -> str:
        if isinstance(value, datetime):
            return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return str(value)

    data = {name: fields.get(name) for name in FIELDS}
    return json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=default
    ).encode()


def link_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(fields)).hexdigest()
