"""No list endpoint issues a query per item: the number of SQL statements a list request
runs is the same for a page of 1 as for a page of 20."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.factories import Factories

ROWS = 20


@contextmanager
def counted(engine: AsyncEngine) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # Savepoints are the test harness's, not the endpoint's.
        if "SAVEPOINT" not in statement.upper():
            statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


async def _statements(api: Any, engine: AsyncEngine, path: str, token: str | None) -> int:
    await api("GET", path, token=token)  # warm: session caches, first-use lookups
    with counted(engine) as statements:
        response = await api("GET", path, token=token)
    assert response.status_code == 200, response.text
    return len(statements)


@pytest.fixture
async def populated(factories: Factories) -> dict[str, Any]:
    """ROWS of everything a list shows: doctors, patients with appointments, notifications,
    audit entries."""
    doctors = [await factories.doctor(specialty="Cardiology") for _ in range(ROWS)]
    patient = await factories.patient()
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    for index, doctor in enumerate(doctors):
        await factories.appointment(
            patient=patient, doctor=doctor, at=start + timedelta(hours=index % 8, days=index // 8)
        )
    admin = await factories.admin()
    return {
        "patient": await factories.token(patient),
        "doctor": await factories.token(doctors[0]),
        "admin": await factories.token(admin),
        "doctor_id": doctors[0].doctor.id,
    }


@pytest.mark.parametrize(
    ("path", "who"),
    [
        ("/doctors", None),
        ("/doctors?specialty=cardiology", None),
        ("/appointments", "patient"),
        ("/appointments", "admin"),
        ("/users", "admin"),
        ("/admin/audit-logs", "admin"),
        ("/admin/notifications", "admin"),
        ("/waitlist", "patient"),
        ("/auth/sessions", "patient"),
    ],
)
async def test_a_list_runs_as_many_statements_for_one_item_as_for_twenty(
    api: Any, engine: AsyncEngine, populated: dict[str, Any], path: str, who: str | None
) -> None:
    token = populated[who] if who else None
    joiner = "&" if "?" in path else "?"

    one = await _statements(api, engine, f"{path}{joiner}limit=1", token)
    twenty = await _statements(api, engine, f"{path}{joiner}limit={ROWS}", token)

    assert one > 0
    assert one == twenty, f"{path}: {one} statements for 1 item, {twenty} for {ROWS}"


async def test_a_weeks_availability_runs_a_fixed_number_of_statements(
    api: Any, engine: AsyncEngine, populated: dict[str, Any]
) -> None:
    path = f"/doctors/{populated['doctor_id']}/availability"
    day = await _statements(
        api, engine, f"{path}?from=2026-12-01T00:00:00Z&to=2026-12-02T00:00:00Z", None
    )
    weeks = await _statements(
        api, engine, f"{path}?from=2026-12-01T00:00:00Z&to=2027-01-31T00:00:00Z", None
    )
    assert day == weeks


@pytest.mark.parametrize("who", ["patient", "doctor", "admin"])
async def test_authenticating_a_known_session_runs_no_statement(
    api: Any, engine: AsyncEngine, populated: dict[str, Any], who: str
) -> None:
    """After a session's first request its account comes from the session cache: an
    authenticated list runs only its own statements (one, for the appointments)."""
    token = populated[who]
    await api("GET", "/appointments?limit=1", token=token)
    with counted(engine) as statements:
        response = await api("GET", "/appointments?limit=1", token=token)
    assert response.status_code == 200, response.text
    assert not [s for s in statements if "sessions" in s.lower()], statements
    assert len(statements) == 1, statements


@contextmanager
def every_statement(engine: AsyncEngine) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement.lstrip().upper())

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_an_idempotency_key_costs_a_booking_two_statements_and_no_savepoint(
    api: Any, factories: Factories, engine: AsyncEngine
) -> None:
    # The replay SELECT before the locks and the record INSERT with the final answer: the
    # key's unique index is the guard, so no savepoint, purge or second write is needed.
    doctor = await factories.doctor()
    token = await factories.token(await factories.patient())
    body = {"doctor_id": doctor.doctor.id, "scheduled_at": "2026-12-03T09:00:00Z"}
    assert (await api("POST", "/appointments", token=token, json=body)).status_code == 201

    async def book(at: str, headers: dict[str, str]) -> list[str]:
        with every_statement(engine) as statements:
            booked = await api(
                "POST",
                "/appointments",
                token=token,
                json={**body, "scheduled_at": at},
                headers=headers,
            )
        assert booked.status_code == 201, booked.text
        return statements

    plain = await book("2026-12-02T09:00:00Z", {})
    keyed = await book("2026-12-02T10:00:00Z", {"Idempotency-Key": "counted"})

    def savepoints(statements: list[str]) -> int:  # the test harness's own: one per request
        return sum("SAVEPOINT" in s for s in statements)

    assert savepoints(keyed) == savepoints(plain)
    assert len(keyed) - len(plain) == 2
    assert not any(s.startswith("DELETE") for s in keyed)
    assert sum(s.startswith("INSERT INTO IDEMPOTENCY_RECORDS") for s in keyed) == 1
    assert not any(s.startswith("UPDATE IDEMPOTENCY_RECORDS") for s in keyed)
