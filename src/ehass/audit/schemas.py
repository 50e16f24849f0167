from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from ehass.core.schemas import Page, ResponseModel, UtcDateTime


class AuditEntryRead(ResponseModel):
    id: int
    at: UtcDateTime
    actor_id: int | None
    actor_role: str | None
    action: str = Field(examples=["appointment.create"])
    entity: str = Field(examples=["appointment"])
    entity_id: int | str | None = Field(description="An integer, or a string for sessions")
    ip: str | None
    user_agent: str | None
    request_id: str | None
    changes: dict[str, Any] | None
    prev_hash: str
    hash: str

    @field_validator("entity_id", mode="before")
    @classmethod
    def _numeric_ids_as_integers(cls, value: object) -> object:
        return int(value) if isinstance(value, str) and value.isdigit() else value


class AuditEntryList(Page[AuditEntryRead]):
    pass


class AuditVerification(ResponseModel):
    ok: bool
    checked: int
    first_bad_id: int | None
