"""The slot cache: a second read is served from it, and no write that changes a doctor's
free time can leave a stale answer behind (the schedule version moves with every such
commit, whoever makes it).

The clock stands at Monday 2026-11-30 12:00 UTC; factories' doctors work Mon-Fri 09-17 UTC
in 30-minute slots. With EHASS_TEST_REDIS_URL the cache is Redis; without it, in-process.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from ehass.availability.models import ScheduleVersion
from ehass.holds.models import SlotHold
from tests.factories import Factories
from tests.test_query_counts import counted

WED_1000 = "2026-12-02T10:00:00Z"
WEDNESDAY = {"from": "2026-12-02T00:00:00Z", "to": "2026-12-03T00:00:00Z"}


@pytest.fixture
async def people(factories: Factories) -> dict[str, Any]:
    doctor = await factories.doctor()
    patient = await factories.patient()
    await factories.session.commit()  # a commit, as every request makes: versions exist
    return {
        "doctor": doctor,
        "doctor_id": doctor.doctor.id,
        "patient": patient,
        "patient_token": await factories.token(patient),
        "doctor_token": await factories.token(doctor),
    }


async def offered(api: Any, doctor_id: int) -> list[str]:
    response = await api("GET", f"/doctors/{doctor_id}/availability", params=WEDNESDAY)
    assert response.status_code == 200, response.text
    return [slot["start"] for slot in response.json()["slots"]]


async def version(session: AsyncSession, doctor_id: int) -> int | None:
    return await session.scalar(
        select(ScheduleVersion.version)
        .where(ScheduleVersion.doctor_id == doctor_id)
        .execution_options(populate_existing=True)
    )


async def book(api: Any, people: dict[str, Any], at: str = WED_1000) -> dict[str, Any]:
    response = await api(
        "POST",
        "/appointments",
        token=people["patient_token"],
        json={"doctor_id": people["doctor_id"], "scheduled_at": at, "reason": "check-up"},
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_second_read_is_served_from_the_cache(
    api: Any, engine: AsyncEngine, people: dict[str, Any]
) -> None:
    first = await offered(api, people["doctor_id"])
    with counted(engine) as statements:
        second = await offered(api, people["doctor_id"])
    assert second == first and WED_1000 in first
    # Only the doctor with its schedule version: no windows, overrides, bookings or holds.
    assert len(statements) == 1, statements
    assert "schedule_versions" in statements[0]


async def test_a_booked_slot_is_never_offered_again_from_the_cache(
    api: Any, people: dict[str, Any]
) -> None:
    assert WED_1000 in await offered(api, people["doctor_id"])  # now cached
    await book(api, people)
    assert WED_1000 not in await offered(api, people["doctor_id"])
    assert WED_1000 not in await offered(api, people["doctor_id"])  # cached again, still gone


async def test_a_cancelled_slot_is_offered_again(api: Any, people: dict[str, Any]) -> None:
    appointment = await book(api, people)
    assert WED_1000 not in await offered(api, people["doctor_id"])
    response = await api(
        "DELETE", f"/appointments/{appointment['id']}", token=people["patient_token"]
    )
    assert response.status_code in (200, 204), response.text
    assert WED_1000 in await offered(api, people["doctor_id"])


async def test_a_moved_appointment_frees_its_old_slot_and_takes_the_new(
    api: Any, people: dict[str, Any]
) -> None:
    appointment = await book(api, people)
    assert WED_1000 not in await offered(api, people["doctor_id"])
    response = await api(
        "PUT",
        f"/appointments/{appointment['id']}",
        token=people["patient_token"],
        json={"scheduled_at": "2026-12-02T11:00:00Z"},
    )
    assert response.status_code == 200, response.text
    slots = await offered(api, people["doctor_id"])
    assert WED_1000 in slots and "2026-12-02T11:00:00Z" not in slots


async def test_new_hours_replace_cached_slots_even_when_emptied(
    api: Any, people: dict[str, Any]
) -> None:
    assert await offered(api, people["doctor_id"])
    response = await api(
        "POST",
        f"/doctors/{people['doctor_id']}/availability",
        token=people["doctor_token"],
        json={"slot_minutes": 30, "weekly": [], "overrides": []},
    )
    assert response.status_code == 200, response.text
    assert await offered(api, people["doctor_id"]) == []
    body = (await api("GET", f"/doctors/{people['doctor_id']}/availability")).json()
    assert body["weekly"] == []


async def test_a_hold_hides_its_slot_until_it_runs_out_without_any_write(
    api: Any, clock: Any, session: AsyncSession, people: dict[str, Any]
) -> None:
    response = await api(
        "POST",
        "/holds",
        token=people["patient_token"],
        json={"doctor_id": people["doctor_id"], "scheduled_at": WED_1000},
    )
    assert response.status_code == 201, response.text
    assert WED_1000 not in await offered(api, people["doctor_id"])
    held_at = await version(session, people["doctor_id"])
    clock.advance(minutes=6)  # the hold (5 minutes) has run out; nobody wrote
    assert WED_1000 in await offered(api, people["doctor_id"])
    assert await version(session, people["doctor_id"]) == held_at


async def test_every_kind_of_write_raises_the_version(
    api: Any, session: AsyncSession, factories: Factories, people: dict[str, Any]
) -> None:
    doctor_id = people["doctor_id"]
    seen = [await version(session, doctor_id)]
    assert seen[0] is not None

    async def raised() -> None:
        seen.append(await version(session, doctor_id))
        assert seen[-1] > seen[-2], seen

    appointment = await book(api, people)
    await raised()
    await api("DELETE", f"/appointments/{appointment['id']}", token=people["patient_token"])
    await raised()
    hold = await api(
        "POST",
        "/holds",
        token=people["patient_token"],
        json={"doctor_id": doctor_id, "scheduled_at": WED_1000},
    )
    await raised()
    await api("DELETE", f"/holds/{hold.json()['id']}", token=people["patient_token"])
    await raised()
    # Straight through the ORM, as a script or another service would: still counted.
    await factories.appointment(
        patient=people["patient"],
        doctor=people["doctor"],
        at=datetime(2026, 12, 3, 9, tzinfo=UTC),
    )
    await session.commit()
    await raised()


async def test_a_bulk_statement_that_names_no_doctor_raises_every_version(
    session: AsyncSession, factories: Factories
) -> None:
    doctors = [(await factories.doctor()).doctor.id for _ in range(2)]
    await session.commit()
    before = [await version(session, d) for d in doctors]
    await session.execute(update(SlotHold).where(SlotHold.id == -1).values(status="expired"))
    await session.commit()
    after = [await version(session, d) for d in doctors]
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)


async def test_a_cache_that_is_off_gives_the_same_answers(
    api: Any, app: Any, people: dict[str, Any]
) -> None:
    await book(api, people)
    cached = await offered(api, people["doctor_id"])
    assert cached == await offered(api, people["doctor_id"])
    runtime = app.state.runtime
    off = runtime.settings.model_copy(update={"slot_cache_seconds": 0})
    app.state.runtime = dataclasses.replace(runtime, settings=off)
    assert await offered(api, people["doctor_id"]) == cached
