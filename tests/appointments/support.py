"""Helpers shared by the appointment tests: times near the frozen clock, and assertions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ehass.appointments.models import Appointment
from ehass.users.models import User
from tests.factories import Factories

# The clock stands at Monday 2026-11-30 12:00 UTC. The default doctor works Mon-Fri
# 09:00-17:00 UTC in 30-minute slots.
TUE_0900 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # 21 h ahead: within the 24 h notice
WED_0900 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)  # 45 h ahead: outside the notice
WED_1000 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
THU_0900 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)

APPOINTMENT_FIELDS = {
    "id",
    "patient_id",
    "doctor_id",
    "scheduled_at",
    "ends_at",
    "status",
    "reason",
    "created_at",
    "updated_at",
}


def z(at: datetime) -> str:
    """The one form the contract allows in answers: `2026-12-01T14:30:00Z`."""
    assert at.tzinfo is not None and at.microsecond == 0
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def patient_id(user: User) -> int:
    assert user.patient is not None
    return user.patient.id


def doctor_id(user: User) -> int:
    assert user.doctor is not None
    return user.doctor.id


def error_locs(problem: dict[str, Any]) -> set[str]:
    return {str(part) for error in problem["errors"] for part in error["loc"]}


def assert_appointment(body: dict[str, Any], **expected: Any) -> None:
    assert set(body) == APPOINTMENT_FIELDS, body
    for name, value in expected.items():
        assert body[name] == value, (name, body)


async def fresh_token(factories: Factories, user: User) -> str:
    """A new login: after the clock has moved, a cached access token has expired."""
    return (await factories.login(user))["access_token"]


async def count_appointments(session: AsyncSession, **where: Any) -> int:
    query = select(func.count()).select_from(Appointment)
    for name, value in where.items():
        query = query.where(getattr(Appointment, name) == value)
    return int(await session.scalar(query) or 0)


async def stored(session: AsyncSession, appointment_id: int) -> Appointment:
    """The row as the database holds it now, not as the test session last saw it."""
    query = (
        select(Appointment)
        .where(Appointment.id == appointment_id)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(query)).scalar_one()
