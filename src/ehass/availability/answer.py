"""The slots of an availability answer, put together from cached days as JSON bytes.

Each cached day (`CachedDay`) keeps its free starts, the holds that could block them, and
its slot objects already serialised exactly as the response writes them. A day that lies
wholly in the asked range, after `now`, with no live hold, is copied as it is; any other
day is filtered slot by slot, so the answer is what `slots.free_slots` would give.

Pure: no I/O, no clock; `now` is passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

Hold = tuple[float, float, float]  # start, end, expires, in Unix seconds


@dataclass(frozen=True, slots=True)
class CachedDay:
    """One local day's slots that no appointment takes, past ones included."""

    starts: list[int]  # Unix seconds, ascending
    holds: list[Hold]  # live when the day was filled, and overlapping one of its slots
    slots_json: bytes  # b'{"start":…,"end":…},{…}': one object per start, in order

    def records(self) -> list[bytes]:
        """The slot objects one by one (no object contains `},{`: they hold two instants)."""
        if not self.starts:
            return []
        parts = self.slots_json[1:-1].split(b"},{")
        return [b"{" + part + b"}" for part in parts]


def _live(day: CachedDay, now: float) -> list[tuple[float, float]]:
    return [(h0, h1) for h0, h1, expires in day.holds if expires > now]


def _kept(
    day: CachedDay, live: list[tuple[float, float]], *, length: int, earliest: float, end: float
) -> list[tuple[int, bytes]]:
    return [
        (t, record)
        for t, record in zip(day.starts, day.records(), strict=True)
        if earliest <= t < end and not any(h0 < t + length and t < h1 for h0, h1 in live)
    ]


def slots_json(
    days: Sequence[CachedDay], *, length: int, start: float, end: float, now: float
) -> bytes:
    """The comma-separated slot objects (no brackets) starting in [start, end), not
    before `now`, that no live hold overlaps, ascending."""
    earliest = max(start, now)
    pieces: list[bytes] = []
    bounds: list[int] = []  # the first and last start of each piece, to check the order
    for day in days:
        if not day.starts or day.starts[-1] < earliest or day.starts[0] >= end:
            continue  # past, or one of the spare days around the range
        live = _live(day, now)
        if not live and earliest <= day.starts[0] and day.starts[-1] < end:
            pieces.append(day.slots_json)
            bounds += (day.starts[0], day.starts[-1])
        elif kept := _kept(day, live, length=length, earliest=earliest, end=end):
            pieces.append(b",".join(record for _, record in kept))
            bounds += (kept[0][0], kept[-1][0])
    if any(a > b for a, b in pairwise(bounds)):
        # Only a zone whose clocks jump back by more than a day could order local dates
        # unlike instants; sort the slots themselves then.
        every = [
            slot
            for day in days
            for slot in _kept(day, _live(day, now), length=length, earliest=earliest, end=end)
        ]
        return b",".join(record for _, record in sorted(every))
    return b",".join(pieces)
