"""Booking rules with no I/O: time is always an argument."""

from __future__ import annotations

from datetime import datetime, timedelta

from ehass.appointments.models import Status

OUTCOMES = frozenset({Status.COMPLETED, Status.NO_SHOW})


def overlaps(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    """Half-open intervals: one ending when the other starts do not overlap."""
    return a_start < b_end and b_start < a_end


def within_notice(starts_at: datetime, *, now: datetime, notice: timedelta) -> bool:
    """True when it is too late for a patient to cancel or move an appointment."""
    return starts_at - now < notice


def can_record_outcome(status: str, starts_at: datetime, *, now: datetime) -> bool:
    """Completed and no-show apply only to a scheduled appointment that has started."""
    return status == Status.SCHEDULED and starts_at <= now
