"""Turn a doctor's weekly availability into bookable UTC slots.

Availability is kept as wall-clock windows in the doctor's own time zone, because
that is how people think about opening hours ("09:00-17:00 on Mondays") and it must
stay 09:00 local across daylight-saving changes. Bookings, however, are instants,
so every slot handed out is an aware UTC interval of exactly ``slot_minutes`` of
real time.

Daylight-saving rules (the reason this module is not a one-liner):

* a wall-clock start inside a spring-forward gap does not exist that day: skipped;
* a wall-clock start inside a fall-back repeat is offered once, at its first
  occurrence, so the same local label is never sold twice;
* a slot that would overlap an earlier slot of the same day in real time (e.g.
  45-minute slots across a one-hour gap) is skipped, so a doctor is never
  double-booked by the grid itself.

The module is pure: no I/O and no clock reading; "now" is always passed in.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = [
    "Schedule",
    "Slot",
    "Window",
    "free_slots",
    "local_days",
    "open_slots",
    "slot_at",
    "slots_between",
    "windows_problems",
]

_ONE_DAY = timedelta(days=1)
_MIN_SLOT_MINUTES = 5
_MAX_SLOT_MINUTES = 240


@dataclass(frozen=True, slots=True)
class Window:
    """A wall-clock stretch of one local day in which slots may start and end.

    Not validated on construction, so that invalid input can still be described
    by :func:`windows_problems` instead of failing somewhere less helpful.
    """

    start: time  # wall-clock, naive
    end: time  # wall-clock, naive, start < end (no window crosses midnight)


@dataclass(frozen=True, slots=True)
class Slot:
    """One bookable interval, as instants in UTC."""

    start: datetime  # aware, UTC (tzinfo=datetime.timezone.utc)
    end: datetime  # aware, UTC


@dataclass(frozen=True, slots=True)
class Schedule:
    """A doctor's recurring availability plus per-date exceptions."""

    timezone: ZoneInfo
    slot_minutes: int  # 5..240
    weekly: Mapping[int, Sequence[Window]]  # key: date.weekday() 0=Mon..6=Sun
    # local date -> windows replacing that date's weekly ones; empty sequence = day off
    overrides: Mapping[date, Sequence[Window]]

    def __post_init__(self) -> None:
        # A zero or negative length would make slot generation loop forever, so
        # refuse it here rather than hang a request later.
        minutes = self.slot_minutes
        if (
            not isinstance(minutes, int)
            or isinstance(minutes, bool)
            or not _MIN_SLOT_MINUTES <= minutes <= _MAX_SLOT_MINUTES
        ):
            raise ValueError(
                f"slot_minutes must be an integer in {_MIN_SLOT_MINUTES}..{_MAX_SLOT_MINUTES}, "
                f"got {minutes!r}"
            )


def _as_utc(name: str, value: datetime) -> datetime:
    """Reject naive datetimes and normalise aware ones to UTC.

    Normalising matters beyond tidiness: ``==`` between aware datetimes of
    *different* tzinfos is always False when one of them is an ambiguous or
    non-existent local time (PEP 495), which would make exact-match lookups fail.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def _windows_for(schedule: Schedule, day: date) -> Sequence[Window]:
    # An override replaces the weekly pattern entirely (an empty one means a day off),
    # hence a membership test rather than a truthiness fallback.
    if day in schedule.overrides:
        return schedule.overrides[day]
    return schedule.weekly.get(day.weekday(), ())


def _day_slots(schedule: Schedule, day: date) -> list[Slot]:
    """All slots of one local date, sorted, pairwise non-overlapping in real time.

    Computed per date, independently of any query range, so that
    :func:`slots_between` and :func:`slot_at` always agree on which slots exist.
    """
    tz = schedule.timezone
    length = timedelta(minutes=schedule.slot_minutes)
    starts: list[datetime] = []
    for window in _windows_for(schedule, day):
        wall = datetime.combine(day, window.start)
        wall_end = datetime.combine(day, window.end)
        # The grid is laid out in naive wall-clock time so it stays anchored to
        # window.start on DST days; only each start is then mapped to an instant.
        while wall + length <= wall_end:
            # fold=0 (the default) selects the first occurrence of a repeated time.
            instant = wall.replace(tzinfo=tz).astimezone(UTC)
            # A time inside a spring-forward gap maps to some other wall time on
            # the way back, which is how its non-existence is detected.
            if instant.astimezone(tz).replace(tzinfo=None) == wall:
                starts.append(instant)
            wall += length
    starts.sort()
    slots: list[Slot] = []
    for start in starts:
        # Greedy "skip the later one": a slot stretched in real time across a gap
        # can reach into the next grid start. Doing this per day rather than per
        # window also covers a window ending inside the gap next to one starting
        # after it, and drops duplicates from overlapping (invalid) windows.
        if slots and start < slots[-1].end:
            continue
        slots.append(Slot(start=start, end=start + length))
    return slots


def local_days(tz: ZoneInfo, *, start: datetime, end: datetime) -> list[date]:
    """The local dates whose slots can start in [start, end), oldest first.

    One spare day each side: cheap insurance that no date whose slots could land in the
    range is missed, whatever the offsets involved.
    """
    day = _as_utc("start", start).astimezone(tz).date() - _ONE_DAY
    last_day = _as_utc("end", end).astimezone(tz).date() + _ONE_DAY
    days = []
    while day <= last_day:
        days.append(day)
        day += _ONE_DAY
    return days


def slots_between(schedule: Schedule, *, start: datetime, end: datetime) -> list[Slot]:
    """All slots of the schedule whose start lies in [start, end), sorted by start.

    start/end are aware datetimes (any offset); a naive one raises ValueError.
    """
    start_utc = _as_utc("start", start)
    end_utc = _as_utc("end", end)
    if start_utc >= end_utc:
        return []
    result: list[Slot] = []
    for day in local_days(schedule.timezone, start=start_utc, end=end_utc):
        result.extend(s for s in _day_slots(schedule, day) if start_utc <= s.start < end_utc)
    # Each instant belongs to exactly one local date, so days never share a slot;
    # the sort only guards ordering for exotic zones with huge backward jumps.
    result.sort(key=lambda s: s.start)
    return result


def _overlaps(slot: Slot, blocked: Sequence[tuple[datetime, datetime]]) -> bool:
    return any(b_start < slot.end and slot.start < b_end for b_start, b_end in blocked)


def _utc_intervals(busy: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    return [(_as_utc("busy start", b_start), _as_utc("busy end", b_end)) for b_start, b_end in busy]


def open_slots(
    schedule: Schedule, day: date, *, busy: Iterable[tuple[datetime, datetime]]
) -> list[Slot]:
    """The slots of one local date that no ``busy`` interval overlaps, past ones included:
    what a cache may keep per day, since it does not depend on the time of asking."""
    blocked = _utc_intervals(busy)
    return [slot for slot in _day_slots(schedule, day) if not _overlaps(slot, blocked)]


def free_slots(
    schedule: Schedule,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    busy: Iterable[tuple[datetime, datetime]],
) -> list[Slot]:
    """Bookable slots: :func:`slots_between` minus past slots and busy ones.

    A slot whose start is before ``now`` is past (one starting exactly at ``now``
    is still offered). A slot is busy when it overlaps any ``(start, end)`` of
    ``busy`` as half-open intervals (``a.start < b.end and b.start < a.end``), so
    an appointment that merely touches a slot does not block it. All datetimes
    must be aware; a naive one raises ValueError.
    """
    now_utc = _as_utc("now", now)
    blocked = _utc_intervals(busy)
    return [
        slot
        for slot in slots_between(schedule, start=start, end=end)
        if slot.start >= now_utc and not _overlaps(slot, blocked)
    ]


def slot_at(schedule: Schedule, at: datetime) -> Slot | None:
    """The slot that starts exactly at ``at`` (aware), or None when it is not a slot start.

    ``at`` is an instant: a local time written inside a DST gap or repeat is judged
    by the instant it denotes, not by its wall-clock label.
    """
    at_utc = _as_utc("at", at)
    # A slot's start always maps back to the local date that produced it, so
    # only that one date needs generating.
    for slot in _day_slots(schedule, at_utc.astimezone(schedule.timezone).date()):
        if slot.start == at_utc:
            return slot
    return None


def _label(window: Window) -> str:
    def fmt(t: time) -> str:
        # Minutes are enough for real schedules; show more only when present.
        return t.isoformat("minutes") if not (t.second or t.microsecond) else t.isoformat()

    return f"{fmt(window.start)}-{fmt(window.end)}"


def windows_problems(windows: Sequence[Window]) -> list[str]:
    """Human-readable problems with one day's windows; empty when valid.

    Reports every window whose start is not before its end, and every pair of
    windows that overlap. Windows that only touch (one's end == the next's start)
    are fine. Windows are numbered from 1 in the order given.
    """
    problems: list[str] = []
    for i, window in enumerate(windows, start=1):
        if window.start >= window.end:
            problems.append(f"window {i} ({_label(window)}) does not start before it ends")
    # Empty/reversed windows are already reported; comparing them for overlap
    # would only add confusing noise.
    proper = [(i, w) for i, w in enumerate(windows, start=1) if w.start < w.end]
    for pos, (i, a) in enumerate(proper):
        for j, b in proper[pos + 1 :]:
            if a.start < b.end and b.start < a.end:
                problems.append(f"windows {i} ({_label(a)}) and {j} ({_label(b)}) overlap")
    return problems
