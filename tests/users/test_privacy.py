"""GDPR: a person's data export, and erasure that keeps records and a valid audit chain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.factories import PASSWORD


async def test_a_patient_exports_their_own_data(api, factories):
    doctor = await factories.doctor()
    patient = await factories.patient()
    await factories.appointment(
        patient=patient, doctor=doctor, at=datetime(2026, 12, 2, 9, tzinfo=UTC), reason="rash"
    )
    token = await factories.token(patient)
    response = await api("GET", f"/users/{patient.id}/export", token=token)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["user"]["id"] == patient.id and data["user"]["date_of_birth"] == "1990-04-01"
    assert [a["reason"] for a in data["appointments"]] == ["rash"]
    assert len(data["sessions"]) == 1
    assert any(e["action"] == "auth.login" for e in data["audit_entries"])
    assert PASSWORD not in response.text and "password_hash" not in response.text


async def test_export_is_for_the_person_or_an_admin_and_is_audited(api, factories):
    doctor = await factories.doctor()
    patient = await factories.patient()
    await factories.appointment(
        patient=patient, doctor=doctor, at=datetime(2026, 12, 2, 9, tzinfo=UTC)
    )
    for outsider in (doctor, await factories.patient()):
        denied = await api(
            "GET", f"/users/{patient.id}/export", token=await factories.token(outsider)
        )
        assert denied.status_code == 404
    admin_token = await factories.token(await factories.admin())
    assert (await api("GET", f"/users/{patient.id}/export", token=admin_token)).status_code == 200
    trail = (
        await api("GET", "/admin/audit-logs", token=admin_token, params={"action": "user.export"})
    ).json()["items"]
    assert [e["entity_id"] for e in trail] == [patient.id]


async def test_erasure_pseudonymises_a_deactivated_person_and_keeps_records(api, factories):
    admin_token = await factories.token(await factories.admin())
    doctor = await factories.doctor()
    patient = await factories.patient(name="Rosalind Franklin")
    past = await factories.appointment(
        patient=patient, doctor=doctor, at=datetime(2026, 11, 2, 9, tzinfo=UTC)
    )
    refused = await api("POST", f"/admin/users/{patient.id}/erase", token=admin_token)
    assert refused.status_code == 409  # still active
    assert (await api("DELETE", f"/users/{patient.id}", token=admin_token)).status_code == 204
    erased = await api("POST", f"/admin/users/{patient.id}/erase", token=admin_token)
    assert erased.status_code == 200, erased.text
    body = erased.json()
    assert body["name"] == f"Erased user {patient.id}"
    assert body["email"].endswith("@erased.invalid")
    assert body["date_of_birth"] == "1900-01-01"
    again = await api("POST", f"/admin/users/{patient.id}/erase", token=admin_token)
    assert again.status_code == 200 and again.json() == body

    kept = await api("GET", f"/appointments/{past.id}", token=admin_token)
    assert kept.status_code == 200
    verify = (await api("GET", "/admin/audit-logs/verify", token=admin_token)).json()
    assert verify["ok"] is True
    everything = (
        await api("GET", "/admin/audit-logs", token=admin_token, params={"limit": 200})
    ).text
    assert "Rosalind" not in everything and patient.email not in everything
    login = await api("POST", "/auth/login", json={"email": patient.email, "password": PASSWORD})
    assert login.status_code == 401


async def test_only_admins_erase(api, factories):
    patient = await factories.patient(is_active=False)
    other = await factories.patient()
    response = await api(
        "POST", f"/admin/users/{patient.id}/erase", token=await factories.token(other)
    )
    assert response.status_code == 403


async def test_a_cancelled_booking_gives_a_doctor_no_access_to_the_patient(api, factories):
    from ehass.appointments.models import Status

    doctor = await factories.doctor()
    patient = await factories.patient()
    await factories.appointment(
        patient=patient,
        doctor=doctor,
        at=datetime(2026, 12, 2, 9, tzinfo=UTC),
        status=Status.CANCELLED,
    )
    response = await api("GET", f"/users/{patient.id}", token=await factories.token(doctor))
    assert response.status_code == 404


async def test_a_date_of_birth_after_today_by_the_service_clock_is_422(api, factories, clock):
    body = {
        "email": "tomorrow@example.org",
        "password": "a long unusual passphrase",
        "name": "Not Born Yet",
        "role": "patient",
        "date_of_birth": (clock.now().date() + timedelta(days=1)).isoformat(),
    }
    response = await api("POST", "/auth/register", json=body)
    assert response.status_code == 422
    body["date_of_birth"] = clock.now().date().isoformat()
    assert (await api("POST", "/auth/register", json=body)).status_code == 201


async def test_the_export_includes_holds_waitlist_places_messages_and_feed(api, factories):
    doctor = await factories.doctor()
    patient = await factories.patient()
    token = await factories.token(patient)
    at = "2026-12-03T10:00:00Z"
    body = {"doctor_id": doctor.doctor.id, "scheduled_at": at}
    assert (await api("POST", "/holds", token=token, json=body)).status_code == 201
    assert (await api("POST", "/appointments", token=token, json=body)).status_code == 201
    waitlist = {"doctor_id": doctor.doctor.id, "from_date": "2026-12-07", "to_date": "2026-12-09"}
    assert (await api("POST", "/waitlist", token=token, json=waitlist)).status_code == 201
    assert (await api("POST", f"/users/{patient.id}/calendar-feed", token=token)).status_code == 201

    data = (await api("GET", f"/users/{patient.id}/export", token=token)).json()

    assert [h["status"] for h in data["holds"]] == ["booked"]
    assert [w["from_date"] for w in data["waitlist"]] == ["2026-12-07"]
    assert {m["kind"] for m in data["notifications"]} == {
        "appointment.booked",
        "appointment.reminder",
    }
    assert data["calendar_feed"] is True
