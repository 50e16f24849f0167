"""The admin console over HTTP: users, deactivation, the audit trail, health."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from tests.web.support import csrf_of, get, sign_in


async def test_users_are_searched_and_filtered(client, factories):
    admin = await factories.admin()
    await factories.patient(name="Quentin Query")
    await factories.doctor(name="Dr Quinn Query")
    await factories.patient(name="Other Person", is_active=False)
    await sign_in(client, admin)

    found = await get(client, "/admin/users", params={"q": "query"})
    assert "Quentin Query" in found.text and "Dr Quinn Query" in found.text
    assert "Other Person" not in found.text
    doctors = await get(client, "/admin/users", params={"q": "query", "role": "doctor"})
    assert "Dr Quinn Query" in doctors.text and "Quentin Query" not in doctors.text
    inactive = await get(client, "/admin/users", params={"status": "inactive"})
    assert "Other Person" in inactive.text and "Quentin Query" not in inactive.text


async def test_deactivating_asks_first_then_signs_the_person_out(app, client, factories, client_ip):
    admin = await factories.admin()
    patient = await factories.patient(name="Dana Deactivated")
    transport = httpx.ASGITransport(app=app, client=(client_ip, 50001))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as theirs:
        await sign_in(theirs, patient)
        assert (await get(theirs, "/appointments")).status_code == 200

        await sign_in(client, admin)
        confirm = await get(client, f"/admin/users/{patient.id}/deactivate")
        assert "Deactivate Dana Deactivated?" in confirm.text
        assert "signed out everywhere" in confirm.text
        done = await client.post(
            f"/admin/users/{patient.id}/deactivate", data={"csrf_token": csrf_of(confirm)}
        )
        assert done.status_code == 303
        listed = await get(client, done.headers["location"])
        assert "deactivated and signed out" in listed.text

        gone = await get(theirs, "/appointments")
        assert gone.status_code == 303 and gone.headers["location"].startswith("/signin")

    confirm = await get(client, f"/admin/users/{patient.id}/reactivate")
    back = await client.post(
        f"/admin/users/{patient.id}/reactivate", data={"csrf_token": csrf_of(confirm)}
    )
    assert back.status_code == 303
    assert "reactivated" in (await get(client, back.headers["location"])).text


async def test_the_audit_browser_shows_the_verification_and_filters(client, factories):
    admin = await factories.admin()
    patient = await factories.patient()
    await sign_in(client, patient)  # an auth.login entry by the patient
    client.cookies.clear()
    await sign_in(client, admin)
    page = await get(client, "/admin/audit", params={"action": "auth.login"})
    assert page.status_code == 200
    assert "Intact." in page.text
    assert "<code>auth.login</code>" in page.text
    only_patient = await get(
        client, "/admin/audit", params={"action": "auth.login", "actor_id": str(patient.id)}
    )
    assert f"{patient.id} (patient)" in only_patient.text
    assert f"{admin.id} (admin)" not in only_patient.text

    bad = await get(client, "/admin/audit", params={"actor_id": "someone", "from": "yesterday"})
    assert bad.status_code == 422
    assert 'id="actor_id-error"' in bad.text and 'value="someone"' in bad.text
    assert 'id="from-error"' in bad.text


async def test_the_audit_browser_pages_through_older_entries(client, factories):
    admin = await factories.admin()
    await sign_in(client, admin)
    for _ in range(27):  # page views of a patient's record are audited
        patient = await factories.patient()
        await get(client, f"/admin/users/{patient.id}")
    first = await get(client, "/admin/audit", params={"action": "patient.read"})
    assert first.text.count("<code>patient.read</code>") == 25
    older = first.text.split('<a href="/admin/audit?')[1].split('"')[0].replace("&amp;", "&")
    second = await get(client, "/admin/audit?" + older)
    assert second.text.count("<code>patient.read</code>") == 2


async def test_system_health(client, factories):
    admin = await factories.admin()
    await sign_in(client, admin)
    page = await get(client, "/admin/health")
    assert page.status_code == 200
    assert "Overall: <strong>OK</strong>" in page.text
    assert "migrations current" in page.text
    assert "answered by this process" in page.text


async def test_the_console_is_for_administrators_only(client, factories):
    patient = await factories.patient()
    await sign_in(client, patient)
    assert (await get(client, "/admin/users")).status_code == 403


async def test_a_users_appointments_are_opened_from_the_list(client, factories):
    admin = await factories.admin()
    doctor = await factories.doctor(name="Dr Open Record")
    patient = await factories.patient(name="Olga Opened")
    await factories.appointment(
        patient=patient, doctor=doctor, at=datetime(2026, 12, 3, 10, tzinfo=UTC)
    )
    await sign_in(client, admin)
    listed = await get(client, "/admin/users", params={"q": "Olga"})
    assert f'href="/admin/users/{patient.id}"' in listed.text
    page = await get(client, f"/admin/users/{patient.id}")
    assert "Thu 03 Dec 2026, 10:00" in page.text
    assert "Dr Open Record" in page.text and "Olga Opened" in page.text
