"""Schema building blocks every domain shares."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from ehass.core.pagination import DEFAULT_LIMIT, MAX_LIMIT

T = TypeVar("T")


def _format_utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Every datetime EHASS answers with: UTC, whole seconds, `Z` suffix.
UtcDateTime = Annotated[
    datetime,
    PlainSerializer(_format_utc, return_type=str, when_used="json"),
    Field(examples=["2026-12-01T14:30:00Z"]),
]

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
