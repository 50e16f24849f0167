"""Time as a dependency: rules take `now` as an argument, services ask a Clock for it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        # Whole seconds: every timestamp EHASS stores or answers is second-precise.
        return datetime.now(UTC).replace(microsecond=0)


class FrozenClock:
    """A clock tests set and move by hand."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)
