"""Doctors' working hours, and the free slots they turn into."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from ehass.appointments.models import Appointment
from ehass.audit import service as audit
from ehass.availability import answer, cache, repository
from ehass.availability.answer import CachedDay
from ehass.availability.models import AvailabilityOverride, WeeklyWindow
from ehass.availability.repository import DoctorVersions
from ehass.availability.schemas import (
    DAYS,
    AvailabilityRead,
    AvailabilityUpdated,
    AvailabilityWrite,
    OverrideRead,
    SlotRead,
    WeeklyWindowRead,
    WindowRead,
)
from ehass.availability.slots import (
    Schedule,
    Slot,
    Window,
    free_slots,
    local_days,
    open_slots,
    slot_at,
)
from ehass.core.principal import Principal
from ehass.doctors.models import Doctor
from ehass.doctors.repository import get_active_doctor
from ehass.doctors.service import DoctorNotFoundError
from ehass.errors import PermissionDeniedError, UnprocessableError
from ehass.holds import repository as holds_repository
from ehass.runtime import Runtime

DEFAULT_RANGE = timedelta(days=7)
MAX_RANGE = timedelta(days=62)
# The longest slot: an appointment this long before `from` can still overlap it.
MAX_SLOT = timedelta(minutes=240)
# Generous bounds for `from` and `to`; beyond them the date arithmetic below overflows.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
_DAY = timedelta(days=1)


def _windows(raw: list[dict[str, str]]) -> list[Window]:
    return [Window(time.fromisoformat(w["start"]), time.fromisoformat(w["end"])) for w in raw]


def _schedule(
    doctor: Doctor | DoctorVersions,
    weekly: list[WeeklyWindow],
    overrides: list[AvailabilityOverride],
) -> Schedule:
    by_day: dict[int, list[Window]] = {}
    for w in weekly:
        by_day.setdefault(w.weekday, []).append(Window(w.start_time, w.end_time))
    return Schedule(
        timezone=ZoneInfo(doctor.timezone),
        slot_minutes=doctor.slot_minutes,
        weekly=by_day,
        overrides={o.on_date: _windows(o.windows) for o in overrides},
    )


def _local_date(doctor: Doctor | DoctorVersions, at: datetime) -> date:
    return at.astimezone(ZoneInfo(doctor.timezone)).date()


async def _load_schedule(
    session: AsyncSession, doctor: Doctor, start: datetime, end: datetime
) -> tuple[Schedule, list[WeeklyWindow]]:
    weekly = await repository.weekly_windows(session, doctor.id)
    first = _local_date(doctor, start) - timedelta(days=1)
    last = _local_date(doctor, end) + timedelta(days=1)
    overrides = await repository.overrides_between(session, doctor.id, first, last)
    return _schedule(doctor, weekly, overrides), weekly


async def slot_for(session: AsyncSession, doctor: Doctor, at: datetime) -> Slot | None:
    """The slot of the doctor's definition that starts exactly at `at`, if there is one."""
    schedule, _ = await _load_schedule(session, doctor, at, at)
    return slot_at(schedule, at)


async def _doctor(session: AsyncSession, doctor_id: int, *, for_update: bool = False) -> Doctor:
    doctor = await get_active_doctor(session, doctor_id, for_update=for_update)
    if doctor is None:
        raise DoctorNotFoundError(f"No active doctor {doctor_id}.")
    return doctor


def _within_bounds(value: datetime, name: str) -> None:
    if not EARLIEST <= value <= LATEST:
        raise UnprocessableError(
            f"`{name}` must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}.",
            loc=("query", name),
        )


def _range(
    start: datetime | None, end: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    start = start or now
    _within_bounds(start, "from")
    end = end or start + DEFAULT_RANGE
    _within_bounds(end, "to")
    if end <= start:
        raise UnprocessableError("`to` must be later than `from`.", loc=("query", "to"))
    if end - start > MAX_RANGE:
        raise UnprocessableError("The range may span at most 62 days.", loc=("query", "to"))
    return start, end


async def _describe(
    session: AsyncSession,
    doctor: Doctor,
    weekly: list[WeeklyWindow],
    slots: list[Slot],
    now: datetime,
) -> dict[str, object]:
    """The body of an Availability, with the overrides from today on."""
    overrides = await repository.overrides_between(session, doctor.id, _local_date(doctor, now))
    weekly_read, overrides_read = _hours(weekly, overrides)
    return {
        "doctor_id": doctor.id,
        "timezone": doctor.timezone,
        "slot_minutes": doctor.slot_minutes,
        "weekly": weekly_read,
        "overrides": overrides_read,
        "slots": [SlotRead(start=s.start, end=s.end) for s in slots],
    }


async def read(
    session: AsyncSession,
    rt: Runtime,
    *,
    doctor_id: int,
    start: datetime | None,
    end: datetime | None,
) -> AvailabilityRead:
    """The doctor's hours and free slots in [start, end), as `read_json` answers them."""
    raw = await read_json(session, rt, doctor_id=doctor_id, start=start, end=end)
    return AvailabilityRead.model_validate_json(raw)


async def read_json(
    session: AsyncSession,
    rt: Runtime,
    *,
    doctor_id: int,
    start: datetime | None,
    end: datetime | None,
) -> bytes:
    """The doctor's hours and free slots in [start, end) as the JSON of an AvailabilityRead,
    from the slot cache where it has them (cache.py); what it lacks is read here and stored
    for the next reader."""
    now = rt.clock.now()
    start, end = _range(start, end, now)
    # Each instant's local date lies within a day of its UTC date in every zone, and
    # local_days adds a day each side: these bounds hold every day it can name.
    doctor = await repository.doctor_versions(
        session,
        doctor_id,
        first=start.astimezone(UTC).date() - 2 * _DAY,
        last=end.astimezone(UTC).date() + 2 * _DAY,
    )
    if doctor is None:
        raise DoctorNotFoundError(f"No active doctor {doctor_id}.")
    days = {
        day: doctor.day_versions.get(day, 0)
        for day in local_days(ZoneInfo(doctor.timezone), start=start, end=end)
    }
    ttl = rt.settings.slot_cache_seconds
    hours_version = None if ttl == 0 else doctor.hours_version
    cached = cache.Cached()
    if hours_version is not None:
        cached = await cache.load(
            rt.shared, doctor_id=doctor.id, hours_version=hours_version, days=days
        )
    fresh = await _complete(session, doctor, cached, days=list(days), now=now)
    if hours_version is not None:
        await cache.store(
            rt.shared,
            doctor_id=doctor.id,
            hours_version=hours_version,
            days=days,
            ttl_seconds=ttl,
            fresh=fresh,
        )
    hours = cached.hours or fresh.hours
    assert hours is not None  # _complete reads the hours whenever the cache lacks them
    by_day = {**cached.days, **fresh.days}
    return cache.render(
        doctor_id=doctor.id,
        timezone=doctor.timezone,
        slot_minutes=doctor.slot_minutes,
        hours=hours,
        today=_local_date(doctor, now),
        slots_json=answer.slots_json(
            [by_day[day] for day in days],
            length=doctor.slot_minutes * 60,
            start=start.timestamp(),
            end=end.timestamp(),
            now=now.timestamp(),
        ),
    )


async def _complete(
    session: AsyncSession,
    doctor: DoctorVersions,
    cached: cache.Cached,
    *,
    days: list[date],
    now: datetime,
) -> cache.Cached:
    """What `cached` lacks, read from the database."""
    fresh = cache.Cached()
    missing = [day for day in days if day not in cached.days]
    if cached.hours is None or missing:
        weekly = await repository.weekly_windows(session, doctor.id)
        yesterday = _local_date(doctor, now) - _DAY
        overrides = await repository.overrides_between(session, doctor.id, min(days[0], yesterday))
        fresh.hours = cache.Hours.of(
            *_hours(weekly, [o for o in overrides if o.on_date >= yesterday])
        )
        if missing:
            schedule = _schedule(doctor, weekly, overrides)
            fresh.days = await _open_days(session, doctor.id, schedule, missing, now=now)
    return fresh


def _hours(
    weekly: list[WeeklyWindow], overrides: list[AvailabilityOverride]
) -> tuple[list[WeeklyWindowRead], list[OverrideRead]]:
    """The working hours as the API answers them."""
    return (
        [WeeklyWindowRead(day=DAYS[w.weekday], start=w.start_time, end=w.end_time) for w in weekly],
        [
            OverrideRead(
                date=o.on_date,
                windows=[WindowRead(start=w.start, end=w.end) for w in _windows(o.windows)],
            )
            for o in overrides
        ],
    )


async def _open_days(
    session: AsyncSession, doctor_id: int, schedule: Schedule, days: list[date], *, now: datetime
) -> dict[date, CachedDay]:
    """Each day's slots that no appointment takes (the time of asking aside), with the
    holds live now that overlap them."""
    tz = schedule.timezone
    span_start = datetime.combine(days[0], time(), tz).astimezone(UTC) - MAX_SLOT
    span_end = datetime.combine(days[-1] + _DAY, time(), tz).astimezone(UTC)
    busy = await repository.busy_intervals(session, doctor_id, span_start, span_end + MAX_SLOT)
    holds = [
        (s.timestamp(), e.timestamp(), x.timestamp())
        for s, e, x in await holds_repository.live_of_doctor(session, doctor_id=doctor_id, now=now)
    ]
    length = schedule.slot_minutes * 60
    entries = {}
    for day in days:
        slots = open_slots(schedule, day, busy=busy)
        first = slots[0].start.timestamp() if slots else 0.0
        last = slots[-1].start.timestamp() + length if slots else 0.0
        entries[day] = cache.day_of(slots, [h for h in holds if h[0] < last and first < h[1]])
    return entries


async def _free(
    session: AsyncSession,
    doctor: Doctor,
    schedule: Schedule,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
) -> list[Slot]:
    """Slots nobody has booked and nobody holds."""
    wide_start, wide_end = start - MAX_SLOT, end + MAX_SLOT
    busy = await repository.busy_intervals(session, doctor.id, wide_start, wide_end)
    busy += await holds_repository.live_intervals(
        session, doctor_id=doctor.id, start=wide_start, end=wide_end, now=now
    )
    return free_slots(schedule, start=start, end=end, now=now, busy=busy)


async def free_slots_between(
    session: AsyncSession, doctor: Doctor, *, start: datetime, end: datetime, now: datetime
) -> list[Slot]:
    schedule, _ = await _load_schedule(session, doctor, start, end)
    return await _free(session, doctor, schedule, start=start, end=end, now=now)


def _outside(schedule: Schedule, appointment: Appointment) -> bool:
    """Whether the appointment's time is not within one window of its local day.

    Judged by wall-clock time, not against the slot grid: a booking made on a 30-minute
    grid still falls inside 09:00-17:00 after the doctor switches to 60-minute slots.
    """
    start = appointment.scheduled_at.astimezone(schedule.timezone)
    end = appointment.ends_at.astimezone(schedule.timezone)
    day = start.date()
    if end.date() != day:
        return True  # no window crosses midnight
    windows = (
        schedule.overrides[day]
        if day in schedule.overrides
        else schedule.weekly.get(day.weekday(), ())
    )
    return not any(w.start <= start.time() and end.time() <= w.end for w in windows)


async def replace(
    session: AsyncSession,
    rt: Runtime,
    principal: Principal,
    *,
    doctor_id: int,
    request: AvailabilityWrite,
) -> AvailabilityUpdated:
    doctor = await _doctor(session, doctor_id, for_update=True)
    if not (principal.is_admin or principal.doctor_id == doctor.id):
        raise PermissionDeniedError("Only this doctor or an administrator may set availability.")
    before = {"timezone": doctor.timezone, "slot_minutes": doctor.slot_minutes}
    if request.timezone is not None:
        doctor.timezone = request.timezone
    doctor.slot_minutes = request.slot_minutes
    weekly = [
        WeeklyWindow(
            doctor_id=doctor.id, weekday=DAYS.index(w.day), start_time=w.start, end_time=w.end
        )
        for w in sorted(request.weekly, key=lambda w: (DAYS.index(w.day), w.start))
    ]
    overrides = [
        AvailabilityOverride(
            doctor_id=doctor.id,
            on_date=o.date,
            windows=[
                {"start": w.start.strftime("%H:%M"), "end": w.end.strftime("%H:%M")}
                for w in sorted(o.windows, key=lambda w: w.start)
            ],
        )
        for o in request.overrides
    ]
    await repository.replace(session, doctor.id, weekly=weekly, overrides=overrides)

    now = rt.clock.now()
    # Every future override is loaded once: it serves both the conflicts and the slots.
    future_overrides = await repository.overrides_between(
        session, doctor.id, _local_date(doctor, now) - timedelta(days=1)
    )
    schedule = _schedule(doctor, weekly, future_overrides)
    upcoming = await repository.scheduled_from(session, doctor.id, now)
    conflicts = [a.id for a in upcoming if _outside(schedule, a)]
    audit.record(
        session,
        at=now,
        action="availability.update",
        entity="availability",
        entity_id=doctor.id,
        changes={
            **audit.changes_between(
                before, {"timezone": doctor.timezone, "slot_minutes": doctor.slot_minutes}
            ),
            "weekly_windows": {"after": len(weekly)},
            "overrides": {"after": len(overrides)},
            "conflicts": {"after": conflicts},
        },
    )
    start, end = _range(None, None, now)
    busy = await repository.busy_intervals(session, doctor.id, start - MAX_SLOT, end + MAX_SLOT)
    slots = free_slots(schedule, start=start, end=end, now=now, busy=busy)
    return AvailabilityUpdated(
        **await _describe(session, doctor, weekly, slots, now), conflicts=conflicts
    )


async def preview(
    session: AsyncSession,
    rt: Runtime,
    principal: Principal,
    *,
    doctor_id: int,
    request: AvailabilityWrite,
) -> AvailabilityUpdated:
    """What `replace` would make of `request`, saving nothing: the free slots of the coming
    week and the booked appointments that would fall outside the new hours."""
    doctor = await _doctor(session, doctor_id)
    if not (principal.is_admin or principal.doctor_id == doctor.id):
        raise PermissionDeniedError("Only this doctor or an administrator may set availability.")
    timezone = request.timezone or doctor.timezone
    by_day: dict[int, list[Window]] = {}
    for w in sorted(request.weekly, key=lambda w: (DAYS.index(w.day), w.start)):
        by_day.setdefault(DAYS.index(w.day), []).append(Window(w.start, w.end))
    overrides = {
        o.date: [Window(w.start, w.end) for w in sorted(o.windows, key=lambda w: w.start)]
        for o in request.overrides
    }
    schedule = Schedule(
        timezone=ZoneInfo(timezone),
        slot_minutes=request.slot_minutes,
        weekly=by_day,
        overrides=overrides,
    )
    now = rt.clock.now()
    upcoming = await repository.scheduled_from(session, doctor.id, now)
    start, end = _range(None, None, now)
    busy = await repository.busy_intervals(session, doctor.id, start - MAX_SLOT, end + MAX_SLOT)
    today = now.astimezone(schedule.timezone).date()
    return AvailabilityUpdated(
        doctor_id=doctor.id,
        timezone=timezone,
        slot_minutes=request.slot_minutes,
        weekly=[
            WeeklyWindowRead(day=DAYS[day], start=w.start, end=w.end)
            for day, windows in sorted(by_day.items())
            for w in windows
        ],
        overrides=[
            OverrideRead(date=on, windows=[WindowRead(start=w.start, end=w.end) for w in windows])
            for on, windows in sorted(overrides.items())
            if on >= today
        ],
        slots=[
            SlotRead(start=s.start, end=s.end)
            for s in free_slots(schedule, start=start, end=end, now=now, busy=busy)
        ],
        conflicts=[a.id for a in upcoming if _outside(schedule, a)],
    )
