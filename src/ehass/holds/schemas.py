from __future__ import annotations

from pydantic import Field

from ehass.core.schemas import Id, RequestModel, ResponseModel, Rfc3339DateTime, UtcDateTime
from ehass.holds.models import HoldStatus


class HoldCreate(RequestModel):
    doctor_id: Id
    scheduled_at: Rfc3339DateTime = Field(examples=["2026-12-01T14:30:00Z"])
    patient_id: Id | None = Field(
        default=None, description="Required from an admin; a patient may only give their own."
    )


class HoldRead(ResponseModel):
    id: int
    doctor_id: int
    patient_id: int
    scheduled_at: UtcDateTime
    ends_at: UtcDateTime
    expires_at: UtcDateTime = Field(description="Book with `hold_id` before this")
    status: HoldStatus
    waitlist_entry_id: int | None
