"""Schema building blocks every domain shares."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from ehass.core.pagination import DEFAULT_LIMIT, MAX_LIMIT

T = TypeVar("T")


def _format_utc(value: datetime) -> str:
    # isoformat() is C code and several times faster than strftime() (lists of slots
    # format thousands of these).
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.replace(microsecond=0, tzinfo=None).isoformat() + "Z"


# Every datetime EHASS answers with: UTC, whole seconds, `Z` suffix.
UtcDateTime = Annotated[
    datetime,
    PlainSerializer(_format_utc, return_type=str, when_used="json"),
    Field(examples=["2026-12-01T14:30:00Z"]),
]

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_WALL_TIME = re.compile(r"\d{2}:\d{2}(:\d{2})?", re.ASCII)


def _text_matching(pattern: re.Pattern[str], message: str, *passthrough: type) -> Any:
    # Pydantic alone also reads numbers as Unix timestamps, dates or seconds; the contract
    # takes these values only as text in one exact form.
    def check(value: object) -> object:
        if isinstance(value, passthrough):
            return value
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ValueError(message)
        return value

    return BeforeValidator(check)


# A request datetime: RFC 3339 text with an explicit offset, nothing else.
Rfc3339DateTime = Annotated[
    AwareDatetime,
    _text_matching(
        _RFC3339,
        "must be an RFC 3339 date-time with an offset, such as 2026-12-01T14:30:00Z",
        datetime,
    ),
]
IsoDate = Annotated[
    date,
    _text_matching(_ISO_DATE, "must be a date as YYYY-MM-DD", date),
    Field(examples=["2026-12-24"]),
]
WallClock = Annotated[time, _text_matching(_WALL_TIME, "must be a wall-clock time as HH:MM", time)]
# Ids are JSON integers: no "7", 7.0 or true standing in for 7.
Id = Annotated[int, Field(strict=True)]

Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT, description="Page size")]
LIMIT_DEFAULT = DEFAULT_LIMIT


class RequestModel(BaseModel):
    """Request bodies: unknown fields are a 422, never silently ignored (no mass assignment)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(ResponseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )
