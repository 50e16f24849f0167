"""POST /appointments: who may book for whom."""

from __future__ import annotations

import pytest

from tests.appointments.support import (
    assert_appointment,
    count_appointments,
    doctor_id,
    error_locs,
    patient_id,
)
from tests.problems import assert_problem


async def test_a_patient_may_name_themselves_but_nobody_else(api, factories, session):
    patient = await factories.patient()
    other = await factories.patient()
    doctor = await factories.doctor()
    token = await factories.token(patient)
    someone_else = await api(
        "POST",
        "/appointments",
        token=token,
        json={
            "doctor_id": doctor_id(doctor),
            "scheduled_at": "2026-12-01T09:00:00Z",
            "patient_id": patient_id(other),
        },
    )
    assert_problem(someone_else, 403)
    assert await count_appointments(session) == 0

    themselves = await api(
        "POST",
        "/appointments",
        token=token,
        json={
            "doctor_id": doctor_id(doctor),
            "scheduled_at": "2026-12-01T09:00:00Z",
            "patient_id": patient_id(patient),
        },
    )
    assert themselves.status_code == 201, themselves.text
    assert themselves.json()["patient_id"] == patient_id(patient)


async def test_an_admin_books_for_the_patient_they_name(api, factories):
    admin = await factories.admin()
    patient = await factories.patient()
    doctor = await factories.doctor()
    token = await factories.token(admin)
    body = {"doctor_id": doctor_id(doctor), "scheduled_at": "2026-12-01T09:00:00Z"}

    missing = await api("POST", "/appointments", token=token, json=body)
    assert "patient_id" in error_locs(assert_problem(missing, 422))

    booked = await api(
        "POST", "/appointments", token=token, json=body | {"patient_id": patient_id(patient)}
    )
    assert booked.status_code == 201, booked.text
    assert_appointment(booked.json(), patient_id=patient_id(patient), doctor_id=doctor_id(doctor))


async def test_a_doctor_cannot_book(api, factories, session):
    doctor = await factories.doctor()
    patient = await factories.patient()
    token = await factories.token(doctor)
    for extra in ({}, {"patient_id": patient_id(patient)}):
        response = await api(
            "POST",
            "/appointments",
            token=token,
            json={"doctor_id": doctor_id(doctor), "scheduled_at": "2026-12-01T09:00:00Z"} | extra,
        )
        assert_problem(response, 403)
    assert await count_appointments(session) == 0


@pytest.mark.parametrize("header", [None, "Bearer not-a-token"])
async def test_booking_without_a_valid_token_is_401(client, factories, session, header):
    doctor = await factories.doctor()
    response = await client.post(
        "/api/v1/appointments",
        headers={"Authorization": header} if header else {},
        json={"doctor_id": doctor_id(doctor), "scheduled_at": "2026-12-01T09:00:00Z"},
    )
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    assert await count_appointments(session) == 0
