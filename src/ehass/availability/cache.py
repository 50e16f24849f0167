"""Availability answers per doctor and local day, cached as the JSON bytes they answer with.

One hash per doctor and hours version (`SharedState.cache_get`/`cache_put`: Redis, or
in-process without it), `slot-days:<doctor>:<hours version>`, holds:

- `hours`: the weekly windows and the overrides, serialised as the answer writes them;
- `d:<local date>:<day version>`: that day's slots that no appointment takes, past ones
  included (so an entry does not depend on the time of asking), with the holds that were
  live over them when it was written (a hold that runs out frees its slot at `expires`
  without any write) and their slot objects already serialised (answer.CachedDay).

Every commit that changes any of it raises the hours version or that day's version in the
same transaction (versions.py), and the versions are read before anything they cover. So an
entry is filed under versions no newer than its data, and a reader never looks up one older
than the database: no invalidation message can be lost, and a cache that fails is only
slower. A booking raises its own day, so the doctor's other cached days stay valid;
superseded entries are never deleted, they expire with their hash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date

from pydantic import TypeAdapter

from ehass.availability.answer import CachedDay, Hold
from ehass.availability.schemas import OverrideRead, SlotRead, WeeklyWindowRead
from ehass.availability.slots import Slot
from ehass.shared import SharedState

_WEEKLY = TypeAdapter(list[WeeklyWindowRead])
_SLOTS = TypeAdapter(list[SlotRead])


@dataclass(frozen=True, slots=True)
class Hours:
    """The hours part of an answer: the weekly windows' JSON array, and each override's
    JSON object with its ISO date (the answer shows those from the doctor's today on)."""

    weekly_json: bytes
    overrides: list[tuple[bytes, bytes]]

    @classmethod
    def of(cls, weekly: list[WeeklyWindowRead], overrides: list[OverrideRead]) -> Hours:
        return cls(
            weekly_json=_WEEKLY.dump_json(weekly),
            overrides=[
                (o.date.isoformat().encode(), o.model_dump_json().encode()) for o in overrides
            ],
        )

    def encode(self) -> bytes:
        # One line each: JSON written by pydantic holds no raw line break.
        return b"\n".join([self.weekly_json, *(day + obj for day, obj in self.overrides)])

    @classmethod
    def decode(cls, raw: bytes) -> Hours:
        weekly, *overrides = raw.split(b"\n")
        return cls(weekly_json=weekly, overrides=[(line[:10], line[10:]) for line in overrides])


def day_of(slots: list[Slot], holds: list[Hold]) -> CachedDay:
    """A day's entry: its free slots as numbers and as the JSON the answer writes."""
    return CachedDay(
        starts=[int(slot.start.timestamp()) for slot in slots],
        holds=holds,
        slots_json=_SLOTS.dump_json([SlotRead(start=s.start, end=s.end) for s in slots])[1:-1],
    )


def encode_day(day: CachedDay) -> bytes:
    return json.dumps([day.starts, day.holds]).encode() + b"\n" + day.slots_json


def decode_day(raw: bytes) -> CachedDay:
    head, _, slots_json = raw.partition(b"\n")
    starts, holds = json.loads(head)
    return CachedDay(starts=starts, holds=[tuple(h) for h in holds], slots_json=slots_json)


@dataclass
class Cached:
    """What the cache held for one doctor's versions; None (or a missing day) is a miss."""

    hours: Hours | None = None
    days: dict[date, CachedDay] = field(default_factory=dict)


def entry_key(doctor_id: int, hours_version: int) -> str:
    return f"slot-days:{doctor_id}:{hours_version}"


def day_field(day: date, version: int) -> str:
    return f"d:{day.isoformat()}:{version}"


async def load(
    shared: SharedState, *, doctor_id: int, hours_version: int, days: dict[date, int]
) -> Cached:
    """`days` maps each local date wanted to its version."""
    raw_hours, *raw_days = await shared.cache_get(
        entry_key(doctor_id, hours_version), ["hours", *(day_field(*d) for d in days.items())]
    )
    return Cached(
        hours=None if raw_hours is None else Hours.decode(raw_hours),
        days={day: decode_day(raw) for day, raw in zip(days, raw_days, strict=True) if raw},
    )


async def store(
    shared: SharedState,
    *,
    doctor_id: int,
    hours_version: int,
    days: dict[date, int],
    ttl_seconds: int,
    fresh: Cached,
) -> None:
    """Adds what `fresh` holds to the entry of the doctor's hours version, each day under
    the version it was read at (`days`)."""
    values: dict[str, bytes] = {}
    if fresh.hours is not None:
        values["hours"] = fresh.hours.encode()
    for day, entry in fresh.days.items():
        values[day_field(day, days[day])] = encode_day(entry)
    if values:
        await shared.cache_put(entry_key(doctor_id, hours_version), values, ttl_seconds=ttl_seconds)


def render(
    *,
    doctor_id: int,
    timezone: str,
    slot_minutes: int,
    hours: Hours,
    today: date,
    slots_json: bytes,
) -> bytes:
    """The whole answer, byte for byte what `AvailabilityRead.model_dump_json` writes."""
    first = today.isoformat().encode()
    overrides = b",".join(obj for day, obj in hours.overrides if day >= first)
    return (
        b'{"doctor_id":%d,"timezone":%b,"slot_minutes":%d,"weekly":%b,"overrides":[%b],"slots":[%b]}'
        % (
            doctor_id,
            json.dumps(timezone, ensure_ascii=False).encode(),
            slot_minutes,
            hours.weekly_json,
            overrides,
            slots_json,
        )
    )
