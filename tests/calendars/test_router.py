"""GET /appointments/{id}.ics for its participants, and the private subscription feed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from icalendar import Calendar

from ehass.appointments.models import Status
from tests.factories import Factories
from tests.problems import assert_problem

AT = datetime(2026, 12, 3, 14, 0, tzinfo=UTC)  # 09:00 in New York


async def _setup(factories: Factories) -> tuple[Any, Any, Any]:
    doctor = await factories.doctor(timezone="America/New_York", name="Dr Ada Lovelace")
    patient = await factories.patient(name="Grace Hopper")
    appointment = await factories.appointment(patient=patient, doctor=doctor, at=AT)
    return doctor, patient, appointment


async def test_participants_download_an_appointment_as_ics(api: Any, factories: Factories) -> None:
    doctor, patient, appointment = await _setup(factories)
    for user in (patient, doctor, await factories.admin()):
        response = await api(
            "GET", f"/appointments/{appointment.id}.ics", token=await factories.token(user)
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "text/calendar; charset=utf-8"
        assert response.headers["cache-control"] == "no-store"
        calendar = Calendar.from_ical(response.content)
        [event] = calendar.walk("VEVENT")
        assert str(event["UID"]) == f"appointment-{appointment.id}@ehass.localhost"
        assert event.decoded("DTSTART") == AT
        assert b"DTSTART;TZID=America/New_York:20261203T090000" in response.content
        assert "check-up" not in response.text  # the reason stays out of calendars


async def test_others_cannot_download_it(api: Any, factories: Factories) -> None:
    _, _, appointment = await _setup(factories)
    path = f"/appointments/{appointment.id}.ics"
    for outsider in (await factories.patient(), await factories.doctor()):
        assert_problem(await api("GET", path, token=await factories.token(outsider)), 404)
    assert_problem(await api("GET", path), 401)
    token = await factories.token(await factories.admin())
    assert_problem(await api("GET", "/appointments/999999.ics", token=token), 404)
    assert_problem(await api("GET", "/appointments/abc.ics", token=token), 422)


async def _feed_url(api: Any, token: str, user_id: int) -> str:
    response = await api("POST", f"/users/{user_id}/calendar-feed", token=token)
    assert response.status_code == 201, response.text
    url = response.json()["url"]
    assert url.startswith("http://127.0.0.1:8000/calendar/") and url.endswith(".ics")
    return url


async def _get_feed(client: httpx.AsyncClient, url: str) -> httpx.Response:
    return await client.get(url.removeprefix("http://127.0.0.1:8000"))


async def test_a_patients_feed_lists_their_scheduled_appointments(
    api: Any, client: httpx.AsyncClient, factories: Factories
) -> None:
    doctor, patient, appointment = await _setup(factories)
    later = await factories.appointment(patient=patient, doctor=doctor, at=AT + timedelta(days=7))
    await factories.appointment(
        patient=patient, doctor=doctor, at=AT + timedelta(days=1), status=Status.CANCELLED
    )
    someone_else = await factories.patient()
    await factories.appointment(patient=someone_else, doctor=doctor, at=AT + timedelta(hours=1))
    url = await _feed_url(api, await factories.token(patient), patient.id)

    response = await _get_feed(client, url)

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    calendar = Calendar.from_ical(response.content)
    assert "METHOD" not in calendar
    uids = [str(e["UID"]) for e in calendar.walk("VEVENT")]
    assert uids == [
        f"appointment-{appointment.id}@ehass.localhost",
        f"appointment-{later.id}@ehass.localhost",
    ]
    assert [tz["TZID"] for tz in calendar.walk("VTIMEZONE")] == ["America/New_York"]


async def test_a_doctors_feed_lists_every_patients_appointment_with_them(
    api: Any, client: httpx.AsyncClient, factories: Factories
) -> None:
    doctor, _, _ = await _setup(factories)
    await factories.appointment(
        patient=await factories.patient(), doctor=doctor, at=AT + timedelta(hours=1)
    )
    url = await _feed_url(api, await factories.token(doctor), doctor.id)

    calendar = Calendar.from_ical((await _get_feed(client, url)).content)

    assert len(calendar.walk("VEVENT")) == 2


async def test_rotating_or_revoking_the_feed_kills_the_old_address(
    api: Any, client: httpx.AsyncClient, factories: Factories
) -> None:
    _, patient, _ = await _setup(factories)
    token = await factories.token(patient)
    first = await _feed_url(api, token, patient.id)
    second = await _feed_url(api, token, patient.id)

    assert_problem(await _get_feed(client, first), 404)
    assert (await _get_feed(client, second)).status_code == 200

    assert (
        await api("DELETE", f"/users/{patient.id}/calendar-feed", token=token)
    ).status_code == 204
    assert_problem(await _get_feed(client, second), 404)
    assert_problem(await api("DELETE", f"/users/{patient.id}/calendar-feed", token=token), 404)
    actions = await api(
        "GET",
        f"/admin/audit-logs?entity=user&entity_id={patient.id}",
        token=await factories.token(await factories.admin()),
    )
    assert [e["action"] for e in actions.json()["items"]] == [
        "calendar_feed.delete",
        "calendar_feed.create",
        "calendar_feed.create",
    ]


async def test_only_the_owner_makes_their_feed(api: Any, factories: Factories) -> None:
    _, patient, _ = await _setup(factories)
    for other in (await factories.patient(), await factories.admin()):
        token = await factories.token(other)
        assert_problem(await api("POST", f"/users/{patient.id}/calendar-feed", token=token), 404)
        assert_problem(await api("DELETE", f"/users/{patient.id}/calendar-feed", token=token), 404)
    assert_problem(await api("POST", f"/users/{patient.id}/calendar-feed"), 401)


async def test_a_deactivated_accounts_feed_stops(
    api: Any, client: httpx.AsyncClient, factories: Factories
) -> None:
    _, patient, _ = await _setup(factories)
    url = await _feed_url(api, await factories.token(patient), patient.id)
    admin = await factories.token(await factories.admin())
    assert (await api("DELETE", f"/users/{patient.id}", token=admin)).status_code == 204

    assert_problem(await _get_feed(client, url), 404)


async def test_unknown_feed_tokens_are_404(client: httpx.AsyncClient) -> None:
    for token in ("nope", "x" * 43, "%00"):
        assert_problem(await client.get(f"/calendar/{token}.ics"), 404)


async def test_a_refused_feed_token_is_audited_without_the_token(
    api: Any, client: httpx.AsyncClient, factories: Factories
) -> None:
    token = "0" * 127  # longer than any id column, and a secret if it were real
    assert_problem(await client.get(f"/calendar/{token}.ics"), 404)

    entries = await api(
        "GET",
        "/admin/audit-logs?action=access.denied",
        token=await factories.token(await factories.admin()),
    )
    [entry] = [e for e in entries.json()["items"] if e["changes"]["route"].startswith("/calendar")]
    assert entry["entity_id"] is None
    assert token not in str(entry)
