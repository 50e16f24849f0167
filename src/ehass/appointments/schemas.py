from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BeforeValidator, Field

from ehass.appointments.models import Status
from ehass.core.schemas import Page, RequestModel, ResponseModel, UtcDateTime

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


def _rfc3339_text(value: object) -> object:
    # Pydantic alone also takes Unix timestamps (read as UTC) and times without seconds;
    # the contract allows only RFC 3339 with an explicit offset.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError(
            "must be an RFC 3339 date-time with an offset, such as 2026-12-01T14:30:00Z"
        )
    return value


Rfc3339DateTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text)]
Reason = Annotated[str, Field(max_length=500)]
# Ids are JSON integers: no "7", 7.0 or true standing in for 7.
Id = Annotated[int, Field(strict=True)]


class AppointmentCreate(RequestModel):
    doctor_id: Id
    scheduled_at: Rfc3339DateTime = Field(examples=["2026-12-01T14:30:00Z"])
    reason: Reason | None = None
    patient_id: Id | None = Field(
        default=None, description="Required from an admin; a patient may only give their own."
    )

    model_config = RequestModel.model_config | {
        "json_schema_extra": {
            "examples": [
                {"doctor_id": 2, "scheduled_at": "2026-12-01T14:30:00Z", "reason": "check-up"}
            ]
        }
    }


class AppointmentUpdate(RequestModel):
    scheduled_at: Rfc3339DateTime | None = Field(
        default=None, description="Move to another free slot (patient or admin)."
    )
    reason: Reason | None = None
    status: Literal["completed", "no_show"] | None = Field(
        default=None, description="Record the outcome (doctor or admin)."
    )


class AppointmentRead(ResponseModel):
    id: int
    patient_id: int
    doctor_id: int
    scheduled_at: UtcDateTime
    ends_at: UtcDateTime
    status: Status
    reason: str | None
    created_at: UtcDateTime
    updated_at: UtcDateTime


class AppointmentList(Page[AppointmentRead]):
    pass
