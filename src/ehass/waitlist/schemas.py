from __future__ import annotations

from pydantic import Field

from ehass.core.schemas import Id, IsoDate, Page, RequestModel, ResponseModel, UtcDateTime
from ehass.waitlist.models import WaitlistStatus


class WaitlistCreate(RequestModel):
    doctor_id: Id
    from_date: IsoDate = Field(description="First day, in the doctor's time zone")
    to_date: IsoDate = Field(description="Last day (included), in the doctor's time zone")
    patient_id: Id | None = Field(
        default=None, description="Required from an admin; a patient may only give their own."
    )


class WaitlistEntryRead(ResponseModel):
    id: int
    doctor_id: int
    patient_id: int
    from_date: IsoDate
    to_date: IsoDate
    status: WaitlistStatus = Field(
        description="`offered`: a slot is held for you (see the message sent); `waiting` again "
        "if the hold runs out"
    )
    created_at: UtcDateTime


class WaitlistEntryList(Page[WaitlistEntryRead]):
    pass
