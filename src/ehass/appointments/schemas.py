from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ehass.appointments.models import Status
from ehass.core.schemas import Id, Page, RequestModel, ResponseModel, Rfc3339DateTime, UtcDateTime

Reason = Annotated[str, Field(max_length=500)]


class AppointmentCreate(RequestModel):
    doctor_id: Id
    scheduled_at: Rfc3339DateTime = Field(examples=["2026-12-01T14:30:00Z"])
    reason: Reason | None = None
    patient_id: Id | None = Field(
        default=None, description="Required from an admin; a patient may only give their own."
    )
    hold_id: Id | None = Field(
        default=None,
        description="A live hold on this doctor and time (POST /holds) that the booking converts.",
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
