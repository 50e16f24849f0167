"""The slot cache: a second read is served from it, and no write that changes a doctor's
free time can leave a stale answer behind (the hours version or the day versions move with
every such commit, whoever makes it); a booking leaves the doctor's other days cached.

The clock stands at Monday 2026-11-30 12:00 UTC; factories' doctors work Mon-Fri 09-17 UTC
in 30-minute slots. With EHASS_TEST_REDIS_URL the cache is Redis; without it, in-process.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from ehass.availability import cache, repository, service
from ehass.availability.answer import CachedDay
from ehass.availability.models import ScheduleDayVersion, ScheduleVersion
from ehass.availability.schemas import AvailabilityRead
from ehass.doctors.models import Doctor
from ehass.holds.models import SlotHold
from tests.factories import Factories
from tests.test_query_counts import counted

WED_1000 = "2026-12-02T10:00:00Z"
WEDNESDAY = {"from": "2026-12-02T00:00:00Z", "to": "2026-12-03T00:00:00Z"}
WED = date(2026, 12, 2)


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
    """The doctor's hours version."""
    return await session.scalar(
        select(ScheduleVersion.version)
        .where(ScheduleVersion.doctor_id == doctor_id)
        .execution_options(populate_existing=True)
    )


async def day_versions(session: AsyncSession, doctor_id: int) -> dict[date, int]:
    rows = await session.execute(
        select(ScheduleDayVersion.local_date, ScheduleDayVersion.version)
        .where(ScheduleDayVersion.doctor_id == doctor_id)
        .execution_options(populate_existing=True)
    )
    return {row.local_date: row.version for row in rows}


def raised_days(before: dict[date, int], after: dict[date, int]) -> set[date]:
    return {day for day, v in after.items() if v > before.get(day, 0)}


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
    # Only the doctor with its hours and day versions: no windows, overrides, bookings or
    # holds.
    assert len(statements) == 1, statements
    assert "schedule_versions" in statements[0] and "schedule_day_versions" in statements[0]


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
    held_at = (
        await version(session, people["doctor_id"]),
        await day_versions(session, people["doctor_id"]),
    )
    clock.advance(minutes=6)  # the hold (5 minutes) has run out; nobody wrote
    assert WED_1000 in await offered(api, people["doctor_id"])
    assert (
        await version(session, people["doctor_id"]),
        await day_versions(session, people["doctor_id"]),
    ) == held_at


async def test_marking_lapsed_holds_expired_raises_no_version(
    api: Any, clock: Any, session: AsyncSession, factories: Factories, people: dict[str, Any]
) -> None:
    """The next hold for the doctor marks a run-out one expired (a bulk UPDATE): only the
    new hold's day rises, not the doctor's hours, so the other cached days stay valid."""
    doctor_id = people["doctor_id"]
    first = await api(
        "POST",
        "/holds",
        token=people["patient_token"],
        json={"doctor_id": doctor_id, "scheduled_at": WED_1000},
    )
    assert first.status_code == 201, first.text
    clock.advance(minutes=6)
    hours = await version(session, doctor_id)
    before = await day_versions(session, doctor_id)
    other = await factories.token(await factories.patient())
    second = await api(
        "POST",
        "/holds",
        token=other,
        json={"doctor_id": doctor_id, "scheduled_at": "2026-12-03T10:00:00Z"},
    )
    assert second.status_code == 201, second.text
    lapsed = await session.scalar(
        select(SlotHold.status)
        .where(SlotHold.id == first.json()["id"])
        .execution_options(populate_existing=True)
    )
    assert lapsed == "expired"
    assert await version(session, doctor_id) == hours
    assert raised_days(before, await day_versions(session, doctor_id)) == {date(2026, 12, 3)}
    assert WED_1000 in await offered(api, doctor_id)


async def test_every_kind_of_write_raises_its_days_version(
    api: Any, session: AsyncSession, factories: Factories, people: dict[str, Any]
) -> None:
    doctor_id = people["doctor_id"]
    hours = await version(session, doctor_id)
    assert hours is not None
    seen = [await day_versions(session, doctor_id)]

    async def raised(*days: date) -> None:
        seen.append(await day_versions(session, doctor_id))
        assert raised_days(seen[-2], seen[-1]) == set(days), seen

    appointment = await book(api, people)
    await raised(WED)
    await api("DELETE", f"/appointments/{appointment['id']}", token=people["patient_token"])
    await raised(WED)
    hold = await api(
        "POST",
        "/holds",
        token=people["patient_token"],
        json={"doctor_id": doctor_id, "scheduled_at": WED_1000},
    )
    await raised(WED)
    await api("DELETE", f"/holds/{hold.json()['id']}", token=people["patient_token"])
    await raised(WED)
    # Straight through the ORM, as a script or another service would: still counted.
    await factories.appointment(
        patient=people["patient"],
        doctor=people["doctor"],
        at=datetime(2026, 12, 3, 9, tzinfo=UTC),
    )
    await session.commit()
    await raised(date(2026, 12, 3))
    # None of it touched the hours: the doctor's other cached days stay valid.
    assert await version(session, doctor_id) == hours


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


MON_TO_WED = {"from": "2026-11-30T00:00:00Z", "to": "2026-12-03T00:00:00Z"}
TUE_1000 = "2026-12-01T10:00:00Z"


async def _cached_day(app: Any, session: AsyncSession, doctor_id: int, day: date) -> bytes | None:
    hours = await version(session, doctor_id)
    assert hours is not None
    field = cache.day_field(day, (await day_versions(session, doctor_id)).get(day, 0))
    [raw] = await app.state.runtime.shared.cache_get(cache.entry_key(doctor_id, hours), [field])
    return raw


async def test_a_booking_on_tuesday_leaves_monday_and_wednesday_cached(
    api: Any, app: Any, engine: AsyncEngine, session: AsyncSession, people: dict[str, Any]
) -> None:
    doctor_id = people["doctor_id"]
    path = f"/doctors/{doctor_id}/availability"
    before = (await api("GET", path, params=MON_TO_WED)).json()["slots"]
    assert {"start": TUE_1000, "end": "2026-12-01T10:30:00Z"} in before
    # Mark Monday's and Wednesday's entries: each drops its last slot. An answer that still
    # lacks it was served from the cache; one computed afresh would have it back.
    marked = {}
    for day in (date(2026, 11, 30), WED):
        raw = await _cached_day(app, session, doctor_id, day)
        assert raw is not None
        entry = cache.decode_day(raw)
        *kept, dropped = entry.records()
        marked[day] = json.loads(dropped)["start"]
        shortened = CachedDay(entry.starts[:-1], entry.holds, b",".join(kept))
        hours = await version(session, doctor_id)
        field = cache.day_field(day, (await day_versions(session, doctor_id)).get(day, 0))
        await app.state.runtime.shared.cache_put(
            cache.entry_key(doctor_id, hours), {field: cache.encode_day(shortened)}, ttl_seconds=60
        )

    await book(api, people, at=TUE_1000)

    with counted(engine) as statements:
        after = (await api("GET", path, params=MON_TO_WED)).json()["slots"]
    starts = [slot["start"] for slot in after]
    assert TUE_1000 not in starts  # Tuesday was recomputed
    assert not set(marked.values()) & set(starts)  # Monday and Wednesday were not
    assert "2026-12-01T16:30:00Z" in starts
    # The versions, then the windows, overrides, bookings and holds for Tuesday alone.
    assert len(statements) == 5, statements
    with counted(engine) as statements:
        again = (await api("GET", path, params=MON_TO_WED)).json()["slots"]
    assert again == after and len(statements) == 1


async def test_a_move_to_another_day_raises_both_days(
    api: Any, session: AsyncSession, people: dict[str, Any]
) -> None:
    appointment = await book(api, people)
    before = await day_versions(session, people["doctor_id"])
    response = await api(
        "PUT",
        f"/appointments/{appointment['id']}",
        token=people["patient_token"],
        json={"scheduled_at": "2026-12-03T11:00:00Z"},
    )
    assert response.status_code == 200, response.text
    after = await day_versions(session, people["doctor_id"])
    assert raised_days(before, after) == {WED, date(2026, 12, 3)}
    assert WED_1000 in await offered(api, people["doctor_id"])


@pytest.mark.parametrize(
    ("at", "minutes", "days"),
    [
        # 23:30-00:30 in New York (UTC-5): the slots of both local days overlap it.
        (datetime(2026, 12, 3, 4, 30, tzinfo=UTC), 60, {date(2026, 12, 2), date(2026, 12, 3)}),
        # 22:00 EDT on the day clocks spring forward: already 15 March in UTC.
        (datetime(2027, 3, 15, 2, 0, tzinfo=UTC), 30, {date(2027, 3, 14)}),
        # 03:00 EDT, just after the skipped hour: 07:00 UTC, 14 March.
        (datetime(2027, 3, 14, 7, 0, tzinfo=UTC), 30, {date(2027, 3, 14)}),
        # 23:00 EST on the day clocks fall back (a 25-hour day): 8 November in UTC.
        (datetime(2027, 11, 8, 4, 0, tzinfo=UTC), 30, {date(2027, 11, 7)}),
        # 00:10 local: a 30-minute slot starting at 23:45 the day before would overlap it.
        (datetime(2026, 12, 3, 5, 10, tzinfo=UTC), 30, {date(2026, 12, 2), date(2026, 12, 3)}),
    ],
)
async def test_an_appointment_raises_the_local_days_of_its_zone(
    session: AsyncSession, factories: Factories, at: datetime, minutes: int, days: set[date]
) -> None:
    doctor = await factories.doctor(timezone="America/New_York")
    patient = await factories.patient()
    await session.commit()
    doctor_id = doctor.doctor.id
    before = await day_versions(session, doctor_id)
    await factories.appointment(patient=patient, doctor=doctor, at=at, minutes=minutes)
    await session.commit()
    assert raised_days(before, await day_versions(session, doctor_id)) == days


@pytest.mark.parametrize(
    "change",
    [
        {"slot_minutes": 60},
        {"timezone": "Europe/Paris", "slot_minutes": 30},
    ],
)
async def test_a_change_of_hours_invalidates_every_cached_day(
    api: Any, session: AsyncSession, people: dict[str, Any], change: dict[str, Any]
) -> None:
    doctor_id = people["doctor_id"]
    path = f"/doctors/{doctor_id}/availability"
    await api("GET", path, params=MON_TO_WED)  # cached
    hours = await version(session, doctor_id)
    weekdays = [
        {"day": day, "start": "09:00", "end": "17:00"}
        for day in ("mon", "tue", "wed", "thu", "fri")
    ]
    response = await api(
        "POST", path, token=people["doctor_token"], json={**change, "weekly": weekdays}
    )
    assert response.status_code == 200, response.text
    assert (await version(session, doctor_id) or 0) > (hours or 0)
    body = (await api("GET", path, params=MON_TO_WED)).json()
    length = change["slot_minutes"] * 60
    for slot in body["slots"]:
        start, end = (datetime.fromisoformat(slot[k]) for k in ("start", "end"))
        assert (end - start).total_seconds() == length
    if "timezone" in change:
        assert body["timezone"] == "Europe/Paris"
        tuesday = [slot["start"] for slot in body["slots"] if slot["start"] > "2026-12-01"]
        assert tuesday[0] == "2026-12-01T08:00:00Z"  # 09:00 in Paris


@pytest.mark.parametrize(
    "params",
    [
        {},  # the week from now, which cuts today
        MON_TO_WED,
        {"from": "2026-12-01T10:15:00Z", "to": "2026-12-02T14:30:00Z"},  # cuts both days
        {"from": "2026-12-02T10:00:00Z", "to": "2026-12-02T10:30:00Z"},  # one slot
        {"from": "2026-12-05T00:00:00Z", "to": "2026-12-06T00:00:00Z"},  # a weekend: none
    ],
)
async def test_cached_answers_are_the_bytes_of_the_uncached_one(
    api: Any,
    app: Any,
    session: AsyncSession,
    clock: Any,
    factories: Factories,
    people: dict[str, Any],
    params: dict[str, str],
) -> None:
    """Byte for byte what the uncached path (free_slots_between, through the response model)
    writes, with a booking, a hold and overrides in play: missed, hit, and cache off."""
    doctor_id = people["doctor_id"]
    path = f"/doctors/{doctor_id}/availability"
    await book(api, people, at="2026-12-01T11:00:00Z")
    response = await api(
        "POST",
        "/holds",
        token=people["patient_token"],
        json={"doctor_id": doctor_id, "scheduled_at": WED_1000},
    )
    assert response.status_code == 201, response.text
    missed = await api("GET", path, params=params)
    hit = await api("GET", path, params=params)
    assert missed.status_code == 200, missed.text
    assert missed.headers["content-type"] == "application/json; charset=utf-8"

    now = clock.now()
    start = datetime.fromisoformat(params["from"]) if params else now
    end = datetime.fromisoformat(params["to"]) if params else start + service.DEFAULT_RANGE
    doctor = await session.get(Doctor, doctor_id, populate_existing=True)
    assert doctor is not None
    weekly = await repository.weekly_windows(session, doctor_id)
    slots = await service.free_slots_between(session, doctor, start=start, end=end, now=now)
    expected = AvailabilityRead(
        **await service._describe(session, doctor, weekly, slots, now)
    ).model_dump_json()
    assert missed.content == hit.content == expected.encode()

    runtime = app.state.runtime
    off = runtime.settings.model_copy(update={"slot_cache_seconds": 0})
    app.state.runtime = dataclasses.replace(runtime, settings=off)
    assert (await api("GET", path, params=params)).content == expected.encode()


async def test_a_move_whose_old_time_was_never_loaded_raises_the_hours_version(
    session: AsyncSession, factories: Factories, people: dict[str, Any]
) -> None:
    """Without the old time the old day cannot be told, so every day of the doctor goes."""
    appointment = await factories.appointment(
        patient=people["patient"], doctor=people["doctor"], at=datetime(2026, 12, 2, 9, tzinfo=UTC)
    )
    await session.commit()
    hours = await version(session, people["doctor_id"])
    session.expire(appointment)
    appointment.scheduled_at = datetime(2026, 12, 3, 9, tzinfo=UTC)
    appointment.ends_at = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
    await session.commit()
    assert (await version(session, people["doctor_id"]) or 0) > (hours or 0)
