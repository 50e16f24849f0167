"""POST /holds: a free slot set aside for one patient for a few minutes, then booked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ehass.core.clock import FrozenClock
from tests.factories import Factories
from tests.problems import assert_problem

AT = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


async def _hold(api: Any, token: str, doctor: Any, at: datetime = AT) -> Any:
    return await api(
        "POST",
        "/holds",
        token=token,
        json={"doctor_id": doctor.doctor.id, "scheduled_at": at.isoformat()},
    )


async def _book(api: Any, token: str, doctor: Any, at: datetime = AT, **extra: Any) -> Any:
    return await api(
        "POST",
        "/appointments",
        token=token,
        json={"doctor_id": doctor.doctor.id, "scheduled_at": at.isoformat(), **extra},
    )


async def _offered(api: Any, doctor: Any) -> list[str]:
    response = await api(
        "GET",
        f"/doctors/{doctor.doctor.id}/availability?from=2026-12-03T00:00:00Z&to=2026-12-04T00:00:00Z",
    )
    assert response.status_code == 200
    return [slot["start"] for slot in response.json()["slots"]]


async def test_a_held_slot_is_offered_to_nobody_and_booked_by_its_holder(
    api: Any, factories: Factories, clock: FrozenClock
) -> None:
    doctor = await factories.doctor()
    holder = await factories.token(await factories.patient())
    other = await factories.token(await factories.patient())
    assert "2026-12-03T10:00:00Z" in await _offered(api, doctor)

    response = await _hold(api, holder, doctor)

    assert response.status_code == 201, response.text
    hold = response.json()
    assert response.headers["location"] == f"/api/v1/holds/{hold['id']}"
    assert hold["status"] == "active"
    assert hold["scheduled_at"] == "2026-12-03T10:00:00Z"
    assert hold["expires_at"] == (clock.now() + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "2026-12-03T10:00:00Z" not in await _offered(api, doctor)
    assert assert_problem(await _book(api, other, doctor), 409)["type"] == "/problems/slot-held"
    assert assert_problem(await _hold(api, other, doctor), 409)["type"] == "/problems/slot-held"

    booked = await _book(api, holder, doctor, hold_id=hold["id"])

    assert booked.status_code == 201, booked.text
    after = await api("GET", f"/holds/{hold['id']}", token=holder)
    assert after.json()["status"] == "booked"


async def test_booking_a_slot_you_hold_converts_the_hold_even_without_its_id(
    api: Any, factories: Factories
) -> None:
    doctor = await factories.doctor()
    holder = await factories.token(await factories.patient())
    hold = (await _hold(api, holder, doctor)).json()

    assert (await _book(api, holder, doctor)).status_code == 201
    assert (await api("GET", f"/holds/{hold['id']}", token=holder)).json()["status"] == "booked"


async def test_a_hold_runs_out_by_itself(
    api: Any, factories: Factories, clock: FrozenClock
) -> None:
    doctor = await factories.doctor()
    holder = await factories.token(await factories.patient())
    other = await factories.token(await factories.patient())
    hold = (await _hold(api, holder, doctor)).json()

    clock.advance(minutes=5)

    assert "2026-12-03T10:00:00Z" in await _offered(api, doctor)
    late = await _book(api, holder, doctor, hold_id=hold["id"])
    assert assert_problem(late, 409)["type"] == "/problems/hold-lapsed"
    assert (await _hold(api, other, doctor)).status_code == 201


async def test_a_released_hold_frees_the_slot_at_once(api: Any, factories: Factories) -> None:
    doctor = await factories.doctor()
    holder = await factories.token(await factories.patient())
    hold = (await _hold(api, holder, doctor)).json()

    released = await api("DELETE", f"/holds/{hold['id']}", token=holder)

    assert released.status_code == 200
    assert released.json()["status"] == "released"
    assert "2026-12-03T10:00:00Z" in await _offered(api, doctor)
    again = await api("DELETE", f"/holds/{hold['id']}", token=holder)
    assert again.json()["status"] == "released"


async def test_a_hold_is_for_a_free_slot_start_in_the_future(
    api: Any, factories: Factories, clock: FrozenClock
) -> None:
    doctor = await factories.doctor()
    patient = await factories.patient()
    token = await factories.token(patient)
    booker = await factories.patient()
    await factories.appointment(patient=booker, doctor=doctor, at=AT + timedelta(hours=1))

    assert_problem(await _hold(api, token, doctor, AT + timedelta(minutes=7)), 422)
    assert_problem(await _hold(api, token, doctor, clock.now() - timedelta(days=1)), 422)
    taken = await _hold(api, token, doctor, AT + timedelta(hours=1))
    assert assert_problem(taken, 409)["type"] == "/problems/slot-unavailable"
    unknown = await api(
        "POST", "/holds", token=token, json={"doctor_id": 999999, "scheduled_at": AT.isoformat()}
    )
    assert_problem(unknown, 422)


async def test_a_patient_holds_at_most_three_slots_at_once(api: Any, factories: Factories) -> None:
    doctor = await factories.doctor()
    token = await factories.token(await factories.patient())
    for hour in range(3):
        assert (await _hold(api, token, doctor, AT + timedelta(hours=hour))).status_code == 201

    fourth = await _hold(api, token, doctor, AT + timedelta(hours=3))

    assert assert_problem(fourth, 409)["type"] == "/problems/too-many-holds"


async def test_only_patients_and_admins_hold_and_each_sees_only_their_own(
    api: Any, factories: Factories
) -> None:
    doctor = await factories.doctor()
    patient = await factories.patient()
    hold = (await _hold(api, await factories.token(patient), doctor)).json()

    assert_problem(await _hold(api, await factories.token(doctor), doctor), 403)
    assert_problem(await api("POST", "/holds", json={}), 401)
    stranger = await factories.token(await factories.patient())
    assert_problem(await api("GET", f"/holds/{hold['id']}", token=stranger), 404)
    assert_problem(await api("DELETE", f"/holds/{hold['id']}", token=stranger), 404)
    admin = await factories.token(await factories.admin())
    assert (await api("GET", f"/holds/{hold['id']}", token=admin)).status_code == 200
    for_patient = await api(
        "POST",
        "/holds",
        token=admin,
        json={
            "doctor_id": doctor.doctor.id,
            "scheduled_at": (AT + timedelta(hours=2)).isoformat(),
            "patient_id": patient.patient.id,
        },
    )
    assert for_patient.status_code == 201
    stolen = await _book(api, stranger, doctor, hold_id=hold["id"])
    assert_problem(stolen, 422)
