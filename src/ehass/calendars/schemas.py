from __future__ import annotations

from pydantic import Field

from ehass.core.schemas import ResponseModel


class CalendarFeedRead(ResponseModel):
    url: str = Field(
        description="The private subscription address. Shown this once; anyone who has it "
        "can read the calendar, so treat it like a password.",
        examples=["https://ehass.example/calendar/3q2-7wEXAMPLEtoken.ics"],
    )
