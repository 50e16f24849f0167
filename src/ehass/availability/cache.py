"""Free slots per doctor and local day, cached under the doctor's schedule version.

One hash per doctor and version (`SharedState.cache_get`/`cache_put`: Redis, or in-process
without it) holds:

- `d:<local date>`: the starts (Unix seconds) of that day's slots no appointment takes,
  past ones included, so an entry does not depend on the time of asking;
- `holds`: the doctor's holds live when it was written, as `[start, end, expires]`, so a
  hold that runs out frees its slot at `expires` without any write;
- `hours`: the weekly windows and the overrides, as the API answers them.

Every commit that changes any of it raises the version in the same transaction
(versions.py), and the version is read before anything it covers. So an entry is filed
under a version no newer than its data, and a reader never looks up one older than the
database: no invalidation message can be lost, and a cache that fails is only slower.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date

from ehass.shared import SharedState

Hold = tuple[float, float, float]  # start, end, expires, in Unix seconds


@dataclass
class Cached:
    """What the cache held for one doctor version; None (or a missing day) is a miss."""

    hours: dict[str, list[dict[str, object]]] | None = None
    holds: list[Hold] | None = None
    days: dict[date, list[int]] = field(default_factory=dict)  # slot starts, Unix seconds


def _key(doctor_id: int, version: int) -> str:
    return f"slots:{doctor_id}:{version}"


def _day_field(day: date) -> str:
    return f"d:{day.isoformat()}"


async def load(shared: SharedState, *, doctor_id: int, version: int, days: list[date]) -> Cached:
    raw_hours, raw_holds, *raw_days = await shared.cache_get(
        _key(doctor_id, version), ["hours", "holds", *map(_day_field, days)]
    )
    return Cached(
        hours=None if raw_hours is None else json.loads(raw_hours),
        holds=None if raw_holds is None else [tuple(h) for h in json.loads(raw_holds)],
        days={day: json.loads(raw) for day, raw in zip(days, raw_days, strict=True) if raw},
    )


async def store(
    shared: SharedState, *, doctor_id: int, version: int, ttl_seconds: int, fresh: Cached
) -> None:
    """Adds what `fresh` holds to the doctor version's entry."""
    values: dict[str, bytes] = {}
    if fresh.hours is not None:
        values["hours"] = json.dumps(fresh.hours).encode()
    if fresh.holds is not None:
        values["holds"] = json.dumps(fresh.holds).encode()
    for day, starts in fresh.days.items():
        values[_day_field(day)] = json.dumps(starts).encode()
    if values:
        await shared.cache_put(_key(doctor_id, version), values, ttl_seconds=ttl_seconds)
