"""DELETE /appointments/{id}: cancelling, and who may do it when."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ehass.appointments.models import Status
from tests.appointments.support import (
    TUE_0900,
    WED_0900,
    assert_appointment,
    doctor_id,
    patient_id,
    stored,
)
from tests.problems import assert_problem


async def _delete(api, token, appointment):
    return await api("DELETE", f"/appointments/{appointment.id}", token=token)


@pytest.mark.parametrize("canceller", ["patient", "doctor", "admin"])
async def test_its_patient_doctor_or_an_admin_cancels(api, factories, session, clock, canceller):
    patient = await factories.patient()
    doctor = await factories.doctor()
    appointment = await factories.appointment(patient=patient, doctor=doctor, at=WED_0900)
    who = {"patient": patient, "doctor": doctor, "admin": await factories.admin()}[canceller]
    clock.advance(minutes=3)

    response = await _delete(api, await factories.token(who), appointment)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert_appointment(
        response.json(),
        id=appointment.id,
        patient_id=patient_id(patient),
        doctor_id=doctor_id(doctor),
        scheduled_at="2026-12-02T09:00:00Z",
        ends_at="2026-12-02T09:30:00Z",
        status="cancelled",
        reason="check-up",
        created_at="2026-11-30T12:00:00Z",
        updated_at="2026-11-30T12:03:00Z",
    )
    assert (await stored(session, appointment.id)).status == "cancelled"
    # The slot is free again at once.
    rebooked = await api(
        "POST",
        "/appointments",
        token=await factories.token(await factories.patient()),
        json={"doctor_id": doctor_id(doctor), "scheduled_at": "2026-12-02T09:00:00Z"},
    )
    assert rebooked.status_code == 201, rebooked.text


async def test_cancelling_a_cancelled_appointment_answers_it_unchanged(
    api, factories, session, clock
):
    patient = await factories.patient()
    appointment = await factories.appointment(
        patient=patient, doctor=await factories.doctor(), at=WED_0900
    )
    token = await factories.token(patient)
    first = await _delete(api, token, appointment)
    assert first.status_code == 200, first.text

    clock.advance(minutes=5)
    again = await _delete(api, token, appointment)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert again.json()["updated_at"] == "2026-11-30T12:00:00Z"


async def test_a_cancelled_appointment_within_the_notice_still_answers_200(api, factories):
    # Nothing changes, so the notice (which guards changes) does not apply.
    patient = await factories.patient()
    appointment = await factories.appointment(
        patient=patient, doctor=await factories.doctor(), at=TUE_0900, status=Status.CANCELLED
    )
    response = await _delete(api, await factories.token(patient), appointment)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert response.json()["updated_at"] == "2026-11-30T12:00:00Z"


@pytest.mark.parametrize("status", [Status.COMPLETED, Status.NO_SHOW])
async def test_a_completed_or_no_show_appointment_cannot_be_cancelled(
    api, factories, session, status
):
    patient = await factories.patient()
    doctor = await factories.doctor()
    appointment = await factories.appointment(
        patient=patient,
        doctor=doctor,
        at=factories.clock.now() - timedelta(hours=2),
        status=status,
    )
    for who in (patient, doctor, await factories.admin()):
        assert_problem(await _delete(api, await factories.token(who), appointment), 409)
    assert (await stored(session, appointment.id)).status == status


async def test_the_patient_cannot_cancel_within_the_notice_but_doctor_and_admin_can(
    api, factories, session
):
    patient = await factories.patient()
    doctor = await factories.doctor()
    first = await factories.appointment(patient=patient, doctor=doctor, at=TUE_0900)  # 21 h
    second = await factories.appointment(
        patient=patient, doctor=doctor, at=TUE_0900 + timedelta(hours=1)
    )

    refused = await _delete(api, await factories.token(patient), first)
    assert_problem(refused, 409)
    assert (await stored(session, first.id)).status == "scheduled"

    by_doctor = await _delete(api, await factories.token(doctor), first)
    assert by_doctor.status_code == 200, by_doctor.text
    assert by_doctor.json()["status"] == "cancelled"
    by_admin = await _delete(api, await factories.token(await factories.admin()), second)
    assert by_admin.status_code == 200, by_admin.text
    assert by_admin.json()["status"] == "cancelled"


async def test_the_patient_can_cancel_just_outside_the_notice(api, factories, clock):
    patient = await factories.patient()
    appointment = await factories.appointment(
        patient=patient, doctor=await factories.doctor(), at=WED_0900
    )
    clock.at = WED_0900 - timedelta(hours=24, seconds=1)
    token = (await factories.login(patient))["access_token"]
    response = await _delete(api, token, appointment)
    assert response.status_code == 200, response.text


async def test_the_patient_cannot_cancel_one_that_has_started(api, factories, session):
    patient = await factories.patient()
    appointment = await factories.appointment(
        patient=patient,
        doctor=await factories.doctor(),
        at=factories.clock.now() - timedelta(minutes=30),
    )
    assert_problem(await _delete(api, await factories.token(patient), appointment), 409)
    assert (await stored(session, appointment.id)).status == "scheduled"


async def test_others_get_404(api, factories, session):
    appointment = await factories.appointment(
        patient=await factories.patient(), doctor=await factories.doctor(), at=WED_0900
    )
    for who in (await factories.patient(), await factories.doctor()):
        assert_problem(await _delete(api, await factories.token(who), appointment), 404)
    assert (await stored(session, appointment.id)).status == "scheduled"
    missing = await api(
        "DELETE", "/appointments/999999", token=await factories.token(await factories.admin())
    )
    assert_problem(missing, 404)


async def test_delete_needs_a_token(client, factories, session):
    appointment = await factories.appointment(
        patient=await factories.patient(), doctor=await factories.doctor(), at=WED_0900
    )
    response = await client.delete(f"/api/v1/appointments/{appointment.id}")
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    assert (await stored(session, appointment.id)).status == "scheduled"
