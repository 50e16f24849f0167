"""Opaque keyset cursors: base64url JSON of the last row's sort key."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


# Ids are 32-bit integers in the database; anything larger names nothing that exists.
MAX_ID = 2**31 - 1


class InvalidCursor(ValueError):
    pass


def possible_id(value: int) -> bool:
    """False for an id no row can have (a lookup with it would overflow the column)."""
    return 0 < value <= MAX_ID


def after_id(cursor: str | None) -> int | None:
    """The id an id-ordered page ends at; InvalidCursor (a 422) for one never issued."""
    if not cursor:
        return None
    last = decode_cursor(cursor, types=(int,))[0]
    if not possible_id(last):
        raise InvalidCursor("malformed cursor")
    return last


def encode_cursor(key: Sequence[Any]) -> str:
    raw = json.dumps(["v1", *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, *, types: Sequence[type]) -> list[Any]:
    """The sort key in `cursor`, each part checked against `types`; InvalidCursor otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursor("malformed cursor") from exc
    if not isinstance(data, list) or len(data) != len(types) + 1 or data[0] != "v1":
        raise InvalidCursor("malformed cursor")
    key = data[1:]
    for part, kind in zip(key, types, strict=True):
        if kind is int and (not isinstance(part, int) or isinstance(part, bool)):
            raise InvalidCursor("malformed cursor")
        if kind is str and not isinstance(part, str):
            raise InvalidCursor("malformed cursor")
    return key


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def time_cursor(at: datetime, last_id: int) -> str:
    """The cursor of a page ordered by a datetime, then id, that ends at (at, last_id)."""
    return encode_cursor([at.isoformat(), last_id])


def after_time(cursor: str | None) -> tuple[datetime, int] | None:
    """The (datetime, id) a `time_cursor` page ends at; InvalidCursor (a 422) otherwise."""
    if not cursor:
        return None
    at_text, last_id = decode_cursor(cursor, types=(str, int))
    try:
        at = datetime.fromisoformat(at_text)
    except ValueError as exc:
        raise InvalidCursor("malformed cursor") from exc
    if at.tzinfo is None or not possible_id(last_id):
        raise InvalidCursor("malformed cursor")
    return at, last_id
