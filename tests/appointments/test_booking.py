"""POST /appointments: who may book what, and the answers the contract promises."""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest

from ehass.appointments.models import Status
from tests.appointments.support import (
    TUE_0900,
    assert_appointment,
    count_appointments,
    doctor_id,
    error_locs,
    patient_id,
)
from tests.problems import assert_problem


async def test_patient_books_a_free_slot(api, factories, session):
    patient = await factories.patient()
    doctor = await factories.doctor()
    token = await factories.token(patient)

    response = await api(
        "POST",
        "/appointments",
        token=token,
        json={
            "doctor_id": doctor_id(doctor),
            "scheduled_at": "2026-12-01T09:00:00Z",
            "reason": "check-up",
        },
    )

    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert_appointment(
        body,
        patient_id=patient_id(patient),
        doctor_id=doctor_id(doctor),
        scheduled_at="2026-12-01T09:00:00Z",
        ends_at="2026-12-01T09:30:00Z",
        status="scheduled",
        reason="check-up",
        created_at="2026-11-30T12:00:00Z",
        updated_at="2026-11-30T12:00:00Z",
    )
    assert isinstance(body["id"], int)
    assert response.headers["location"].endswith(f"/api/v1/appointments/{body['id']}")
    again = await api("GET", f"/appointments/{body['id']}", token=token)
    assert again.status_code == 200 and again.json() == body
    assert await count_appointments(session) == 1


async def test_a_time_with_another_offset_is_the_same_instant_and_answered_in_utc(api, factories):
    patient = await factories.patient()
    doctor = await factories.doctor()
    response = await api(
        "POST",
        "/appointments",
        token=await factories.token(patient),
        json={"doctor_id": doctor_id(doctor), "scheduled_at": "2026-12-01T10:30:00+01:00"},
    )
    assert response.status_code == 201, response.text
    assert_appointment(
        response.json(),
        scheduled_at="2026-12-01T09:30:00Z",
        ends_at="2026-12-01T10:00:00Z",
        reason=None,
    )


async def test_ends_at_is_start_plus_the_doctors_slot_length(api, factories):
    patient = await factories.patient()
    doctor = await factories.doctor(slot_minutes=45)  # 09:00, 09:45, 10:30, ...
    response = await api(
        "POST",
        "/appointments",
        token=await factories.token(patient),
        json={"doctor_id": doctor_id(doctor), "scheduled_at": "2026-12-01T09:45:00Z"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["ends_at"] == "2026-12-01T10:30:00Z"


async def test_a_slot_in_the_doctors_time_zone(api, factories):
    # 09:00 in Berlin is 08:00 UTC in December.
    patient = await factories.patient()
    doctor = await factories.doctor(timezone="Europe/Berlin")
    token = await factories.token(patient)
    body = {"doctor_id": doctor_id(doctor)}
    utc_nine = await api(
        "POST", "/appointments", token=token, json=body | {"scheduled_at": "2026-12-01T16:30:00Z"}
    )
    assert_problem(utc_nine, 422)  # 17:30 in Berlin, after hours
    booked = await api(
        "POST", "/appointments", token=token, json=body | {"scheduled_at": "2026-12-01T08:00:00Z"}
    )
    assert booked.status_code == 201, booked.text
    assert booked.json()["scheduled_at"] == "2026-12-01T08:00:00Z"


async def test_a_slot_starting_right_now_can_still_be_booked(api, factories):
    patient = await factories.patient()
    doctor = await factories.doctor()
    response = await api(
        "POST",
        "/appointments",
        token=await factories.token(patient),
        json={"doctor_id": doctor_id(doctor), "scheduled_at": "2026-11-30T12:00:00Z"},
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "scheduled_at",
    [
        pytest.param("2026-12-01T09:10:00Z", id="off-grid"),
        pytest.param("2026-12-01T09:00:30Z", id="off-grid-seconds"),
        pytest.param("2026-12-01T09:00:00.500Z", id="fractional-second"),
        pytest.param("2026-12-01T08:30:00Z", id="before-hours"),
        pytest.param("2026-12-01T16:45:00Z", id="slot-would-end-after-hours"),
        pytest.param("2026-12-01T17:00:00Z", id="closing-time"),
        pytest.param("2026-12-05T10:00:00Z", id="saturday"),
        pytest.param("2026-11-30T11:30:00Z", id="earlier-today"),
        pytest.param("2026-11-23T09:00:00Z", id="last-week"),
        pytest.param("2026-12-01T09:00:00", id="no-offset"),
        pytest.param("2026-12-01", id="date-only"),
        pytest.param("tomorrow at nine", id="not-a-datetime"),
        pytest.param(1796115600, id="unix-timestamp-has-no-offset"),
        pytest.param(None, id="null"),
    ],
)
async def test_a_time_that_is_not_a_free_future_slot_start_is_422(
    api, factories, session, scheduled_at
):
    patient = await factories.patient()
    doctor = await factories.doctor()
    response = await api(
        "POST",
        "/appointments",
        token=await factories.token(patient),
        json={"doctor_id": doctor_id(doctor), "scheduled_at": scheduled_at},
    )
    problem = assert_problem(response, 422)
    assert "scheduled_at" in error_locs(problem)
    assert await count_appointments(session) == 0


async def test_a_day_off_override_is_not_bookable(api, factories):
    patient = await factories.patient()
    doctor = await factories.doctor(overrides={date(2026, 12, 1): []})
    response = await api(
        "POST",
        "/appointments",
        token=await factories.token(patient),
        json={"doctor_id": doctor_id(doctor), "scheduled_at": "2026-12-01T09:00:00Z"},
    )
    assert_problem(response, 422)


async def test_unknown_or_inactive_doctor_is_422(api, factories, session):
    patient = await factories.patient()
    inactive = await factories.doctor(is_active=False)
    token = await factories.token(patient)
    for unknown in (doctor_id(inactive), doctor_id(inactive) + 10_000):
        response = await api(
            "POST",
            "/appointments",
            token=token,
            json={"doctor_id": unknown, "scheduled_at": "2026-12-01T09:00:00Z"},
        )
        assert "doctor_id" in error_locs(assert_problem(response, 422))
    assert await count_appointments(session) == 0


async def test_admin_booking_for_an_unknown_or_inactive_patient_is_422(api, factories, session):
    admin = await factories.admin()
    doctor = await factories.doctor()
    inactive = await factories.patient(is_active=False)
    token = await factories.token(admin)
    for unknown in (patient_id(inactive), patient_id(inactive) + 10_000):
        response = await api(
            "POST",
            "/appointments",
            token=token,
            json={
                "doctor_id": doctor_id(doctor),
                "scheduled_at": "2026-12-01T09:00:00Z",
                "patient_id": unknown,
            },
        )
        assert "patient_id" in error_locs(assert_problem(response, 422))
    assert await count_appointments(session) == 0


async def test_a_slot_another_appointment_holds_is_409(api, factories, session):
    doctor = await factories.doctor()
    await factories.appointment(patient=await factories.patient(), doctor=doctor, at=TUE_0900)
    patient = await factories.patient()
    response = await api(
        "POST",
        "/appointments",
        token=await factories.token(patient),
        json={"doctor_id": doctor_id(doctor), "scheduled_at": "2026-12-01T09:00:00Z"},
    )
    assert_problem(response, 409)
    assert await count_appointments(session) == 1


async def test_an_appointment_overlapping_part_of_the_slot_holds_it(api, factories):
    # An appointment from an earlier definition (09:15-09:45) still blocks both slots it touches.
    doctor = await factories.doctor()
    await factories.appointment(
        patient=await factories.patient(), doctor=doctor, at=TUE_0900 + timedelta(minutes=15)
    )
    token = await factories.token(await factories.patient())
    for at in ("2026-12-01T09:00:00Z", "2026-12-01T09:30:00Z"):
        response = await api(
            "POST",
            "/appointments",
            token=token,
            json={"doctor_id": doctor_id(doctor), "scheduled_at": at},
        )
        assert_problem(response, 409)
    free = await api(
        "POST",
        "/appointments",
        token=token,
        json={"doctor_id": doctor_id(doctor), "scheduled_at": "2026-12-01T10:00:00Z"},
    )
    assert free.status_code == 201, free.text


@pytest.mark.parametrize("status", [Status.CANCELLED, Status.COMPLETED, Status.NO_SHOW])
async def test_only_a_scheduled_appointment_holds_a_slot_for_booking(api, factories, status):
    # Future completed or no-show rows cannot arise through the API, but must not hold a slot.
    doctor = await factories.doctor()
    await factories.appointment(
        patient=await factories.patient(), doctor=doctor, at=TUE_0900, status=status
    )
    response = await api(
        "POST",
        "/appointments",
        token=await factories.token(await factories.patient()),
        json={"doctor_id": doctor_id(doctor), "scheduled_at": "2026-12-01T09:00:00Z"},
    )
    # Contract: "a slot is free when no scheduled appointment overlaps it".
    assert response.status_code == 201, response.text


async def test_a_patient_cannot_hold_two_overlapping_appointments(api, factories, session):
    patient = await factories.patient()
    first_doctor = await factories.doctor()
    second_doctor = await factories.doctor(slot_minutes=45)
    await factories.appointment(patient=patient, doctor=first_doctor, at=TUE_0900)
    token = await factories.token(patient)

    same_time = await api(
        "POST",
        "/appointments",
        token=token,
        json={"doctor_id": doctor_id(second_doctor), "scheduled_at": "2026-12-01T09:00:00Z"},
    )
    assert_problem(same_time, 409)

    # 08:45-09:30 does not start at the same time but still overlaps 09:00-09:30.
    overlapping = await factories.doctor(slot_minutes=45, weekly={1: [(time(8, 45), time(12, 0))]})
    partly = await api(
        "POST",
        "/appointments",
        token=token,
        json={"doctor_id": doctor_id(overlapping), "scheduled_at": "2026-12-01T08:45:00Z"},
    )
    assert_problem(partly, 409)
    assert await count_appointments(session, patient_id=patient_id(patient)) == 1

    # Back to back with another doctor is fine: half-open intervals only touch.
    touching = await api(
        "POST",
        "/appointments",
        token=token,
        json={
            "doctor_id": doctor_id(await factories.doctor()),
            "scheduled_at": "2026-12-01T09:30:00Z",
        },
    )
    assert touching.status_code == 201, touching.text


async def test_a_patients_cancelled_appointment_does_not_block_them(api, factories):
    patient = await factories.patient()
    await factories.appointment(
        patient=patient, doctor=await factories.doctor(), at=TUE_0900, status=Status.CANCELLED
    )
    response = await api(
        "POST",
        "/appointments",
        token=await factories.token(patient),
        json={
            "doctor_id": doctor_id(await factories.doctor()),
            "scheduled_at": "2026-12-01T09:00:00Z",
        },
    )
    assert response.status_code == 201, response.text


async def test_reason_up_to_500_characters(api, factories):
    patient = await factories.patient()
    doctor = await factories.doctor()
    token = await factories.token(patient)
    too_long = await api(
        "POST",
        "/appointments",
        token=token,
        json={
            "doctor_id": doctor_id(doctor),
            "scheduled_at": "2026-12-01T09:00:00Z",
            "reason": "x" * 501,
        },
    )
    assert "reason" in error_locs(assert_problem(too_long, 422))
    longest = await api(
        "POST",
        "/appointments",
        token=token,
        json={
            "doctor_id": doctor_id(doctor),
            "scheduled_at": "2026-12-01T09:00:00Z",
            "reason": "é" * 500,
        },
    )
    assert longest.status_code == 201, longest.text
    assert longest.json()["reason"] == "é" * 500


@pytest.mark.parametrize(
    "extra",
    [
        {"status": "completed"},
        {"ends_at": "2026-12-01T11:00:00Z"},
        {"id": 1},
        {"created_at": "2026-01-01T00:00:00Z"},
        {"doctor": 1},
    ],
)
async def test_unknown_fields_are_422(api, factories, session, extra):
    patient = await factories.patient()
    doctor = await factories.doctor()
    response = await api(
        "POST",
        "/appointments",
        token=await factories.token(patient),
        json={"doctor_id": doctor_id(doctor), "scheduled_at": "2026-12-01T09:00:00Z"} | extra,
    )
    problem = assert_problem(response, 422)
    assert set(extra) <= error_locs(problem)
    assert await count_appointments(session) == 0


@pytest.mark.parametrize(
    "spell",
    [
        pytest.param(None, id="missing"),
        pytest.param(lambda _: "two", id="word"),
        pytest.param(lambda _: None, id="null"),
        # Ids are JSON integers: a string or float spelling of a real id is not one.
        pytest.param(str, id="string-of-the-id"),
        pytest.param(float, id="float-of-the-id"),
        pytest.param(lambda i: [i], id="list"),
    ],
)
async def test_a_missing_or_malformed_doctor_id_is_422(api, factories, session, spell):
    patient = await factories.patient()
    doctor = await factories.doctor()
    body = {"scheduled_at": "2026-12-01T09:00:00Z"}
    if spell is not None:
        body["doctor_id"] = spell(doctor_id(doctor))
    response = await api("POST", "/appointments", token=await factories.token(patient), json=body)
    assert "doctor_id" in error_locs(assert_problem(response, 422))
    assert await count_appointments(session) == 0


async def test_a_boolean_patient_id_is_422(api, factories, session):
    admin = await factories.admin()
    doctor = await factories.doctor()
    response = await api(
        "POST",
        "/appointments",
        token=await factories.token(admin),
        json={
            "doctor_id": doctor_id(doctor),
            "scheduled_at": "2026-12-01T09:00:00Z",
            "patient_id": True,
        },
    )
    assert "patient_id" in error_locs(assert_problem(response, 422))
    assert await count_appointments(session) == 0


async def test_a_body_that_is_not_json_is_422(api, factories):
    patient = await factories.patient()
    response = await api(
        "POST",
        "/appointments",
        token=await factories.token(patient),
        content=b"doctor_id=1",
        headers={"Content-Type": "application/json"},
    )
    assert_problem(response, 422)


async def test_cancelling_frees_the_slot_at_once(api, factories):
    doctor = await factories.doctor()
    holder = await factories.patient()
    other = await factories.patient()
    body = {"doctor_id": doctor_id(doctor), "scheduled_at": "2026-12-02T09:00:00Z"}
    first = await api("POST", "/appointments", token=await factories.token(holder), json=body)
    assert first.status_code == 201, first.text
    taken = await api("POST", "/appointments", token=await factories.token(other), json=body)
    assert_problem(taken, 409)

    cancelled = await api(
        "DELETE", f"/appointments/{first.json()['id']}", token=await factories.token(holder)
    )
    assert cancelled.status_code == 200, cancelled.text

    second = await api("POST", "/appointments", token=await factories.token(other), json=body)
    assert second.status_code == 201, second.text
    assert second.json()["id"] != first.json()["id"]
    assert second.json()["scheduled_at"] == "2026-12-02T09:00:00Z"


async def test_the_slot_disappears_from_availability_once_booked(api, factories):
    doctor = await factories.doctor()
    patient = await factories.patient()
    path = f"/doctors/{doctor_id(doctor)}/availability"
    window = {"from": "2026-12-02T09:00:00Z", "to": "2026-12-02T10:00:00Z"}
    before = await api("GET", path, params=window)
    assert before.status_code == 200, before.text
    assert [s["start"] for s in before.json()["slots"]] == [
        "2026-12-02T09:00:00Z",
        "2026-12-02T09:30:00Z",
    ]
    booked = await api(
        "POST",
        "/appointments",
        token=await factories.token(patient),
        json={"doctor_id": doctor_id(doctor), "scheduled_at": "2026-12-02T09:30:00Z"},
    )
    assert booked.status_code == 201, booked.text
    after = await api("GET", path, params=window)
    assert [s["start"] for s in after.json()["slots"]] == ["2026-12-02T09:00:00Z"]


async def test_booking_is_refused_for_a_doctor_deactivated_after_definition(api, factories):
    # A doctor whose account was switched off keeps their hours on record, but takes no bookings.
    doctor = await factories.doctor()
    doctor.is_active = False
    await factories.session.flush()
    response = await api(
        "POST",
        "/appointments",
        token=await factories.token(await factories.patient()),
        json={"doctor_id": doctor_id(doctor), "scheduled_at": "2026-12-01T09:00:00Z"},
    )
    assert_problem(response, 422)
