from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import Annotated, Literal, Self

from pydantic import Field, PlainSerializer, model_validator

from ehass.availability.slots import Window, windows_problems
from ehass.core.schemas import IsoDate, RequestModel, ResponseModel, WallClock
from ehass.users.schemas import TimeZoneName

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WallTime = Annotated[
    WallClock,
    PlainSerializer(lambda t: t.strftime("%H:%M"), return_type=str, when_used="json"),
    Field(examples=["09:00"], description="Wall-clock time in the doctor's zone, HH:MM"),
]
SlotMinutes = Annotated[int, Field(ge=5, le=240)]
MAX_WINDOWS = 500
MAX_OVERRIDES = 1000


def _window_errors(windows: list[Window], where: str) -> list[str]:
    return [f"{where}: {problem}" for problem in windows_problems(windows)]


class WindowIn(RequestModel):
    start: WallTime
    end: WallTime

    @model_validator(mode="after")
    def _whole_minutes(self) -> Self:
        if self.start.second or self.start.microsecond or self.end.second or self.end.microsecond:
            raise ValueError("times are whole minutes (HH:MM)")
        if self.start.tzinfo or self.end.tzinfo:
            raise ValueError("times are wall-clock times without an offset")
        return self


class WeeklyWindowIn(WindowIn):
    day: Day

    model_config = WindowIn.model_config | {"title": "WeeklyWindow"}


class OverrideIn(RequestModel):
    date: IsoDate
    windows: Annotated[list[WindowIn], Field(max_length=48)]


class AvailabilityWrite(RequestModel):
    timezone: TimeZoneName | None = Field(
        default=None, description="Becomes the doctor's time zone; default: unchanged."
    )
    slot_minutes: SlotMinutes = 30
    weekly: Annotated[list[WeeklyWindowIn], Field(max_length=MAX_WINDOWS)] = []
    overrides: Annotated[list[OverrideIn], Field(max_length=MAX_OVERRIDES)] = []

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems: list[str] = []
        by_day: dict[str, list[Window]] = defaultdict(list)
        for w in self.weekly:
            by_day[w.day].append(Window(w.start, w.end))
        for day in DAYS:
            problems += _window_errors(by_day.get(day, []), day)
        seen: set[date] = set()
        for override in self.overrides:
            if override.date in seen:
                problems.append(f"{override.date}: given more than once")
            seen.add(override.date)
            windows = [Window(w.start, w.end) for w in override.windows]
            problems += _window_errors(windows, str(override.date))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    model_config = RequestModel.model_config | {
        "json_schema_extra": {
            "examples": [
                {
                    "timezone": "America/New_York",
                    "slot_minutes": 30,
                    "weekly": [
                        {"day": "mon", "start": "09:00", "end": "12:00"},
                        {"day": "mon", "start": "13:00", "end": "17:00"},
                    ],
                    "overrides": [
                        {"date": "2026-12-24", "windows": []},
                        {"date": "2026-12-27", "windows": [{"start": "10:00", "end": "14:00"}]},
                    ],
                }
            ]
        }
    }


class WindowRead(ResponseModel):
    start: WallTime
    end: WallTime


class WeeklyWindowRead(ResponseModel):
    day: Day
    start: WallTime
    end: WallTime


class OverrideRead(ResponseModel):
    date: date
    windows: list[WindowRead]


# Slots are always UTC instants on whole minutes, so pydantic's own serialiser already
# writes them in the contract's form (`2026-12-01T14:30:00Z`), without the call per value
# that UtcDateTime makes to normalise arbitrary datetimes: a week holds hundreds of them.
SlotInstant = Annotated[datetime, Field(examples=["2026-12-01T14:30:00Z"])]


class SlotRead(ResponseModel):
    start: SlotInstant
    end: SlotInstant


class AvailabilityRead(ResponseModel):
    doctor_id: int
    timezone: str
    slot_minutes: int
    weekly: list[WeeklyWindowRead]
    overrides: list[OverrideRead]
    slots: list[SlotRead]


class AvailabilityUpdated(AvailabilityRead):
    conflicts: list[int] = Field(
        description="Scheduled appointments that fall outside the new definition (kept)."
    )
