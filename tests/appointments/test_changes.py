"""PUT /appointments/{id}: moving, editing the reason, and recording the outcome."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ehass.appointments.models import Status
from tests.appointments.support import (
    TUE_0900,
    WED_0900,
    WED_1000,
    assert_appointment,
    doctor_id,
    error_locs,
    fresh_token,
    stored,
    z,
)
from tests.problems import assert_problem


async def _put(api, token, appointment, body):
    return await api("PUT", f"/appointments/{appointment.id}", token=token, json=body)


@pytest.fixture
async def booked(factories):
    """A patient's appointment on Wednesday 09:00, 45 h away, and the people around it."""
    patient = await factories.patient()
    doctor = await factories.doctor()
    appointment = await factories.appointment(patient=patient, doctor=doctor, at=WED_0900)
    return patient, doctor, appointment


# Moving --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mover", ["patient", "admin"])
async def test_the_patient_or_an_admin_moves_it_to_a_free_slot(
    api, factories, session, clock, booked, mover
):
    patient, doctor, appointment = booked
    who = patient if mover == "patient" else await factories.admin()
    clock.advance(minutes=7)

    response = await _put(
        api, await factories.token(who), appointment, {"scheduled_at": "2026-12-02T10:00:00Z"}
    )

    assert response.status_code == 200, response.text
    assert_appointment(
        response.json(),
        id=appointment.id,
        scheduled_at="2026-12-02T10:00:00Z",
        ends_at="2026-12-02T10:30:00Z",
        status="scheduled",
        reason="check-up",
        created_at="2026-11-30T12:00:00Z",
        updated_at="2026-11-30T12:07:00Z",
    )
    row = await stored(session, appointment.id)
    assert (row.scheduled_at, row.ends_at) == (WED_1000, WED_1000 + timedelta(minutes=30))
    # The old slot is free again at once.
    other = await api(
        "POST",
        "/appointments",
        token=await factories.token(await factories.patient()),
        json={"doctor_id": doctor_id(doctor), "scheduled_at": "2026-12-02T09:00:00Z"},
    )
    assert other.status_code == 201, other.text


async def test_moving_follows_the_doctors_slot_length(api, factories):
    patient = await factories.patient()
    doctor = await factories.doctor(slot_minutes=45)
    appointment = await factories.appointment(
        patient=patient, doctor=doctor, at=WED_0900, minutes=45
    )
    response = await _put(
        api, await factories.token(patient), appointment, {"scheduled_at": "2026-12-02T09:45:00Z"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["ends_at"] == "2026-12-02T10:30:00Z"


async def test_moving_into_a_held_slot_is_409_and_keeps_the_old_one(
    api, factories, session, booked
):
    patient, doctor, appointment = booked
    await factories.appointment(patient=await factories.patient(), doctor=doctor, at=WED_1000)
    token = await factories.token(patient)

    response = await _put(api, token, appointment, {"scheduled_at": "2026-12-02T10:00:00Z"})

    assert_problem(response, 409)
    row = await stored(session, appointment.id)
    assert (row.scheduled_at, row.status) == (WED_0900, "scheduled")
    # Still held: nobody else can take the old slot.
    taken = await api(
        "POST",
        "/appointments",
        token=await factories.token(await factories.patient()),
        json={"doctor_id": doctor_id(doctor), "scheduled_at": "2026-12-02T09:00:00Z"},
    )
    assert_problem(taken, 409)


async def test_a_failed_move_changes_nothing_else_in_the_request(api, factories, session, booked):
    patient, doctor, appointment = booked
    await factories.appointment(patient=await factories.patient(), doctor=doctor, at=WED_1000)
    response = await _put(
        api,
        await factories.token(patient),
        appointment,
        {"scheduled_at": "2026-12-02T10:00:00Z", "reason": "new reason"},
    )
    assert_problem(response, 409)
    row = await stored(session, appointment.id)
    assert (row.reason, row.updated_at) == ("check-up", appointment.created_at)


async def test_moving_into_the_patients_own_other_appointment_is_409(
    api, factories, session, booked
):
    patient, _, appointment = booked
    await factories.appointment(patient=patient, doctor=await factories.doctor(), at=WED_1000)
    response = await _put(
        api, await factories.token(patient), appointment, {"scheduled_at": "2026-12-02T10:00:00Z"}
    )
    assert_problem(response, 409)
    assert (await stored(session, appointment.id)).scheduled_at == WED_0900


async def test_an_appointment_does_not_block_its_own_move(api, factories, session):
    # Booked under an earlier definition at 09:15-09:45; the 09:30 slot overlaps only itself.
    patient = await factories.patient()
    appointment = await factories.appointment(
        patient=patient, doctor=await factories.doctor(), at=WED_0900 + timedelta(minutes=15)
    )
    response = await _put(
        api, await factories.token(patient), appointment, {"scheduled_at": "2026-12-02T09:30:00Z"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["scheduled_at"] == "2026-12-02T09:30:00Z"
    assert response.json()["ends_at"] == "2026-12-02T10:00:00Z"


@pytest.mark.parametrize(
    "scheduled_at",
    [
        "2026-12-02T10:10:00Z",  # off-grid
        "2026-12-02T18:00:00Z",  # after hours
        "2026-11-30T11:00:00Z",  # past
        "2026-12-02T10:00:00",  # no offset
        None,
    ],
)
async def test_moving_to_something_that_is_not_a_free_future_slot_is_422(
    api, factories, session, booked, scheduled_at
):
    patient, _, appointment = booked
    response = await _put(
        api, await factories.token(patient), appointment, {"scheduled_at": scheduled_at}
    )
    assert "scheduled_at" in error_locs(assert_problem(response, 422))
    assert (await stored(session, appointment.id)).scheduled_at == WED_0900


@pytest.mark.parametrize("status", [Status.CANCELLED, Status.COMPLETED, Status.NO_SHOW])
async def test_an_appointment_that_is_not_scheduled_cannot_be_moved(
    api, factories, session, status
):
    patient = await factories.patient()
    appointment = await factories.appointment(
        patient=patient, doctor=await factories.doctor(), at=WED_0900, status=status
    )
    for who in (patient, await factories.admin()):
        response = await _put(
            api, await factories.token(who), appointment, {"scheduled_at": "2026-12-02T10:00:00Z"}
        )
        assert_problem(response, 409)
    row = await stored(session, appointment.id)
    assert (row.scheduled_at, row.status) == (WED_0900, status)


async def test_the_patient_cannot_move_within_the_notice_but_an_admin_can(api, factories, session):
    patient = await factories.patient()
    appointment = await factories.appointment(
        patient=patient,
        doctor=await factories.doctor(),
        at=TUE_0900,  # 21 h away
    )
    refused = await _put(
        api, await factories.token(patient), appointment, {"scheduled_at": "2026-12-02T10:00:00Z"}
    )
    assert_problem(refused, 409)
    assert (await stored(session, appointment.id)).scheduled_at == TUE_0900

    allowed = await _put(
        api,
        await factories.token(await factories.admin()),
        appointment,
        {"scheduled_at": "2026-12-02T10:00:00Z"},
    )
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["scheduled_at"] == "2026-12-02T10:00:00Z"


async def test_the_notice_counts_from_now(api, factories, clock, booked):
    patient, _, appointment = booked  # Wednesday 09:00
    clock.at = WED_0900 - timedelta(hours=24, seconds=1)
    allowed = await _put(
        api,
        await fresh_token(factories, patient),
        appointment,
        {"scheduled_at": "2026-12-02T09:30:00Z"},
    )
    assert allowed.status_code == 200, allowed.text

    # It now starts at 09:30: one second less than 24 h before that is too late.
    clock.at = WED_0900 + timedelta(minutes=30) - timedelta(hours=24) + timedelta(seconds=1)
    refused = await _put(
        api,
        await fresh_token(factories, patient),
        appointment,
        {"scheduled_at": "2026-12-02T10:00:00Z"},
    )
    assert_problem(refused, 409)


# Reason ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("editor", ["patient", "admin"])
async def test_the_patient_or_an_admin_changes_the_reason(api, factories, session, booked, editor):
    patient, _, appointment = booked
    who = patient if editor == "patient" else await factories.admin()
    response = await _put(api, await factories.token(who), appointment, {"reason": "follow-up"})
    assert response.status_code == 200, response.text
    assert_appointment(
        response.json(), reason="follow-up", scheduled_at="2026-12-02T09:00:00Z", status="scheduled"
    )
    cleared = await _put(api, await factories.token(who), appointment, {"reason": None})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["reason"] is None
    assert (await stored(session, appointment.id)).reason is None


async def test_a_reason_over_500_characters_is_422(api, factories, session, booked):
    patient, _, appointment = booked
    response = await _put(api, await factories.token(patient), appointment, {"reason": "r" * 501})
    assert "reason" in error_locs(assert_problem(response, 422))
    assert (await stored(session, appointment.id)).reason == "check-up"


async def test_a_doctor_may_not_move_or_edit_the_reason(api, factories, session, booked):
    _, doctor, appointment = booked
    token = await factories.token(doctor)
    for body in ({"scheduled_at": "2026-12-02T10:00:00Z"}, {"reason": "doctor's note"}):
        assert_problem(await _put(api, token, appointment, body), 403)
    row = await stored(session, appointment.id)
    assert (row.scheduled_at, row.reason) == (WED_0900, "check-up")


# Outcome -------------------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["completed", "no_show"])
@pytest.mark.parametrize("recorder", ["doctor", "admin"])
async def test_the_doctor_or_an_admin_records_the_outcome_once_it_has_started(
    api, factories, session, clock, booked, outcome, recorder
):
    _, doctor, appointment = booked
    who = doctor if recorder == "doctor" else await factories.admin()
    clock.at = WED_0900 - timedelta(seconds=1)
    early = await _put(api, await fresh_token(factories, who), appointment, {"status": outcome})
    assert_problem(early, 409)
    assert (await stored(session, appointment.id)).status == "scheduled"

    clock.at = WED_0900
    response = await _put(api, await fresh_token(factories, who), appointment, {"status": outcome})
    assert response.status_code == 200, response.text
    assert_appointment(
        response.json(), status=outcome, updated_at="2026-12-02T09:00:00Z", scheduled_at=z(WED_0900)
    )
    assert (await stored(session, appointment.id)).status == outcome


@pytest.mark.parametrize("status", [Status.CANCELLED, Status.COMPLETED, Status.NO_SHOW])
async def test_an_outcome_only_on_a_scheduled_appointment(api, factories, session, status):
    doctor = await factories.doctor()
    appointment = await factories.appointment(
        patient=await factories.patient(),
        doctor=doctor,
        at=factories.clock.now() - timedelta(hours=3),
        status=status,
    )
    for outcome in ("completed", "no_show"):
        response = await _put(api, await factories.token(doctor), appointment, {"status": outcome})
        assert_problem(response, 409)
    assert (await stored(session, appointment.id)).status == status


async def test_a_patient_may_not_record_an_outcome(api, factories, session, clock, booked):
    patient, _, appointment = booked
    clock.at = WED_0900 + timedelta(minutes=10)
    response = await _put(
        api, await fresh_token(factories, patient), appointment, {"status": "completed"}
    )
    assert_problem(response, 403)
    assert (await stored(session, appointment.id)).status == "scheduled"


@pytest.mark.parametrize("status", ["cancelled", "scheduled", "done", None])
async def test_status_other_than_completed_or_no_show_is_422(
    api, factories, session, clock, booked, status
):
    _, doctor, appointment = booked
    clock.at = WED_0900 + timedelta(minutes=10)
    response = await _put(
        api, await fresh_token(factories, doctor), appointment, {"status": status}
    )
    assert "status" in error_locs(assert_problem(response, 422))
    assert (await stored(session, appointment.id)).status == "scheduled"


# Who, and what may be sent ------------------------------------------------------------------


async def test_others_get_404(api, factories, session, booked):
    _, _, appointment = booked
    for who in (await factories.patient(), await factories.doctor()):
        for body in ({"reason": "mine now"}, {"status": "completed"}):
            assert_problem(await _put(api, await factories.token(who), appointment, body), 404)
    assert (await stored(session, appointment.id)).reason == "check-up"


async def test_a_missing_appointment_is_404(api, factories):
    response = await api(
        "PUT",
        "/appointments/999999",
        token=await factories.token(await factories.admin()),
        json={"reason": "x"},
    )
    assert_problem(response, 404)


async def test_put_needs_a_token(client, booked):
    _, _, appointment = booked
    response = await client.put(f"/api/v1/appointments/{appointment.id}", json={"reason": "x"})
    assert_problem(response, 401)


@pytest.mark.parametrize(
    "body",
    [
        {"doctor_id": 1},
        {"patient_id": 1},
        {"ends_at": "2026-12-02T11:00:00Z"},
        {"id": 5},
        {"reason": "x", "notes": "y"},
    ],
)
async def test_unknown_or_read_only_fields_are_422(api, factories, session, booked, body):
    _, _, appointment = booked
    response = await _put(api, await factories.token(await factories.admin()), appointment, body)
    problem = assert_problem(response, 422)
    assert (set(body) - {"reason"}) <= error_locs(problem)
    row = await stored(session, appointment.id)
    assert (row.reason, row.scheduled_at) == ("check-up", WED_0900)
