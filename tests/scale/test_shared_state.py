"""What one instance does, the others know at once: sessions, counters, keys, holds, the
audit chain and live updates live in MariaDB and Redis, never in one process.

Each test seeds people of its own, talks from a loopback address of its own, and either
addresses instances directly (to be sure a request lands where it must) or goes through
nginx as a browser or app would. Appointments are on weekdays three days ahead or more:
the apps run on the real clock.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ehass.audit.models import AuditEntry
from tests.factories import PASSWORD
from tests.scale.conftest import AUTH_REQUESTS_PER_ADDRESS, LOGIN_FAILURES_PER_ACCOUNT
from tests.scale.deployment import (
    API,
    Call,
    Deployment,
    at,
    bearer,
    burst,
    client_address,
    iso,
    log_in,
    log_in_all,
    slot_day,
)
from tests.web.support import sign_in

PROBLEM_JSON = "application/problem+json"
SSE_TIMEOUT_SECONDS = 5.0


def _problem_type(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.text
    return response.json()["type"]


async def test_a_session_ended_on_one_instance_is_refused_by_all_at_once(
    deployment: Deployment,
) -> None:
    async with deployment.factories() as make:
        patient = await make.patient()
    async with deployment.clients(address=client_address(), nginx=True) as clients:
        a, b, c, front = clients
        pair = await log_in(a, patient)
        token = pair["access_token"]
        # Every instance has used the session, so any cache of "active" is warm.
        for client in clients:
            seen = await client.get(f"{API}/auth/session", headers=bearer(token))
            assert seen.status_code == 200, f"{client.base_url}: {seen.text}"

        logout = await b.post(f"{API}/auth/logout", headers=bearer(token))
        assert logout.status_code == 204, logout.text

        # No pause: the contract says "from then on, on every server instance".
        for client in (a, c, front, b):
            refused = await client.get(f"{API}/auth/session", headers=bearer(token))
            assert refused.status_code == 401, f"{client.base_url}: {refused.text}"
            assert refused.headers["www-authenticate"].startswith("Bearer")
        refresh = await c.post(f"{API}/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        assert refresh.status_code == 401, refresh.text


async def test_thirty_concurrent_bookings_of_one_slot_give_exactly_one_appointment(
    deployment: Deployment,
) -> None:
    doctor_id, patients = await deployment.doctor_and_patients(30)
    address = client_address()
    async with deployment.clients(address=address, nginx=True) as clients:
        tokens = await log_in_all(clients, patients)
    slot = at(slot_day(), 10)
    body = {"doctor_id": doctor_id, "scheduled_at": iso(slot)}
    # Round-robin over the three instances and nginx.
    targets = [*range(len(deployment.instances)), None]
    calls = [
        Call(targets[i % len(targets)], "POST", "/appointments", token, body)
        for i, token in enumerate(tokens)
    ]

    responses = await burst(deployment, calls, address=address)

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 409: 29}, [(r.status_code, r.text[:200]) for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert _problem_type(response) == "/problems/slot-unavailable"
    [winner] = [r.json() for r in responses if r.status_code == 201]
    rows = await deployment.appointments(doctor_id=doctor_id)
    assert [(a.id, a.patient_id, a.scheduled_at) for a in rows] == [
        (winner["id"], winner["patient_id"], slot)
    ]


async def test_failed_logins_for_one_account_are_counted_across_instances(
    deployment: Deployment,
) -> None:
    async with deployment.factories() as make:
        patient = await make.patient()
    wrong = {"email": patient.email, "password": "not the password at all"}
    async with deployment.clients(address=client_address(), nginx=True) as clients:
        instances = clients[:-1]
        for attempt in range(LOGIN_FAILURES_PER_ACCOUNT):
            failed = await instances[attempt % len(instances)].post(f"{API}/auth/login", json=wrong)
            assert failed.status_code == 401, f"attempt {attempt + 1}: {failed.text}"

        # Each instance saw only a third of the failures; the account is locked on all of
        # them, even with the right password.
        for client in clients:
            locked = await client.post(
                f"{API}/auth/login",
                json={"email": patient.email, "password": PASSWORD},
            )
            assert locked.status_code == 429, f"{client.base_url}: {locked.text}"
            assert int(locked.headers["retry-after"]) >= 1


async def test_requests_from_one_address_are_counted_across_instances(
    deployment: Deployment,
) -> None:
    """The ceiling on the token endpoints per client address, which nginx passes on in
    X-Forwarded-For: direct requests and proxied ones from that address share it."""
    junk = {"refresh_token": "not-a-refresh-token"}
    async with deployment.clients(address=client_address(), nginx=True) as clients:
        for n in range(AUTH_REQUESTS_PER_ADDRESS):
            refused = await clients[n % len(clients)].post(f"{API}/auth/refresh", json=junk)
            assert refused.status_code == 401, f"request {n + 1}: {refused.text}"
        for client in clients:
            limited = await client.post(f"{API}/auth/refresh", json=junk)
            assert limited.status_code == 429, f"{client.base_url}: {limited.text}"
            assert _problem_type(limited) == "/problems/rate-limited"
            assert int(limited.headers["retry-after"]) >= 1
    # Another address still has its whole budget.
    async with deployment.client(None, address=client_address()) as other:
        assert (await other.post(f"{API}/auth/refresh", json=junk)).status_code == 401


async def test_an_idempotency_key_answers_the_same_on_every_instance(
    deployment: Deployment,
) -> None:
    doctor_id, [patient] = await deployment.doctor_and_patients(1)
    assert patient.patient is not None
    address = client_address()
    first_slot, second_slot = at(slot_day(), 9), at(slot_day(), 11)
    async with deployment.clients(address=address, nginx=True) as clients:
        a, b, c, front = clients
        token = (await log_in(front, patient))["access_token"]
        key = {"Idempotency-Key": f"scale-{uuid.uuid4()}", **bearer(token)}
        body = {"doctor_id": doctor_id, "scheduled_at": iso(first_slot), "reason": "one"}

        first = await a.post(f"{API}/appointments", json=body, headers=key)
        assert first.status_code == 201, first.text
        for client in (b, c, front):
            again = await client.post(f"{API}/appointments", json=body, headers=key)
            assert again.status_code == 201, f"{client.base_url}: {again.text}"
            assert again.json() == first.json()
            assert again.headers["location"] == first.headers["location"]
        changed = await c.post(f"{API}/appointments", json={**body, "reason": "two"}, headers=key)
        assert changed.status_code == 422, changed.text

    # A new key used on every instance at the same moment: one booking, one answer.
    racing_key = (("Idempotency-Key", f"scale-{uuid.uuid4()}"),)
    body = {"doctor_id": doctor_id, "scheduled_at": iso(second_slot)}
    targets = [0, 1, 2, None] * 2
    responses = await burst(
        deployment,
        [Call(t, "POST", "/appointments", token, body, racing_key) for t in targets],
        address=address,
    )
    assert [r.status_code for r in responses] == [201] * len(targets), [r.text for r in responses]
    assert len({json.dumps(r.json(), sort_keys=True) for r in responses}) == 1

    rows = await deployment.appointments(patient_id=patient.patient.id)
    assert sorted(a.scheduled_at for a in rows) == [first_slot, second_slot]


async def test_a_hold_taken_on_one_instance_is_respected_by_the_others(
    deployment: Deployment,
) -> None:
    doctor_id, [holder, other] = await deployment.doctor_and_patients(2)
    slot = {"doctor_id": doctor_id, "scheduled_at": iso(at(slot_day(), 14))}
    async with deployment.clients(address=client_address()) as (a, b, c):
        holder_token = (await log_in(a, holder))["access_token"]
        other_token = (await log_in(b, other))["access_token"]
        hold = await a.post(f"{API}/holds", json=slot, headers=bearer(holder_token))
        assert hold.status_code == 201, hold.text

        taken = await b.post(f"{API}/appointments", json=slot, headers=bearer(other_token))
        assert taken.status_code == 409, taken.text
        assert _problem_type(taken) == "/problems/slot-held"
        booked = await c.post(f"{API}/appointments", json=slot, headers=bearer(holder_token))
        assert booked.status_code == 201, booked.text


async def test_concurrent_writes_through_every_instance_leave_one_unbroken_audit_chain(
    deployment: Deployment,
) -> None:
    patients_count = 12
    doctor_id, patients = await deployment.doctor_and_patients(patients_count)
    async with deployment.factories() as make:
        admin = await make.admin()
    address = client_address()
    targets = [0, 1, 2, None]
    async with deployment.client(None, address=address) as front:
        admin_token = (await log_in(front, admin))["access_token"]
        before = await _verify(front, admin_token)
        async with deployment.clients(address=address, nginx=True) as clients:
            tokens = await log_in_all(clients, patients)  # concurrent logins: 12 entries
        day = slot_day(1)
        bookings = [
            Call(
                targets[i % len(targets)],
                "POST",
                "/appointments",
                token,
                {
                    "doctor_id": doctor_id,
                    "scheduled_at": iso(at(day, 9 + i // 2, i % 2 * 30)),
                },
            )
            for i, token in enumerate(tokens)
        ]
        booked = await burst(deployment, bookings, address=address)
        assert [r.status_code for r in booked] == [201] * patients_count, [r.text for r in booked]
        logouts = [
            Call(targets[i % len(targets)], "POST", "/auth/logout", t) for i, t in enumerate(tokens)
        ]
        logged_out = await burst(deployment, logouts, address=address)
        assert [r.status_code for r in logged_out] == [204] * patients_count

        after = await _verify(front, admin_token)
    assert after["ok"] is True, after
    # Logins, bookings and session revocations: at least one entry each.
    assert after["checked"] >= before["checked"] + 3 * patients_count, (before, after)
    async with deployment.sessionmaker() as session:
        created = (
            await session.execute(
                select(AuditEntry.entity_id).where(AuditEntry.action == "appointment.create")
            )
        ).scalars()
        assert {str(r.json()["id"]) for r in booked} <= set(created)


async def _verify(client: httpx.AsyncClient, admin_token: str) -> dict[str, Any]:
    response = await client.get(f"{API}/admin/audit-logs/verify", headers=bearer(admin_token))
    assert response.status_code == 200, response.text
    return response.json()


async def _events(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """(event, data) of a text/event-stream, comments and heartbeats left out."""
    kind, data = "message", ""
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            kind = line.partition(":")[2].strip()
        elif line.startswith("data:"):
            data = line.partition(":")[2].strip()
        elif not line and data:
            yield kind, data
            kind, data = "message", ""


async def _next_event(
    response: httpx.Response, events: AsyncIterator[tuple[str, str]], what: str
) -> tuple[str, str]:
    try:
        async with asyncio.timeout(SSE_TIMEOUT_SECONDS):
            return await anext(events)
    except TimeoutError:
        pytest.fail(f"no event for {what} within {SSE_TIMEOUT_SECONDS:.0f} s on {response.url}")


async def test_a_live_page_on_one_instance_hears_of_a_booking_made_through_another(
    deployment: Deployment,
) -> None:
    doctor_id, [viewer, booker] = await deployment.doctor_and_patients(2)
    slot = iso(at(slot_day(), 15))
    live = f"/doctors/{doctor_id}/live"
    address = client_address()
    async with (
        deployment.client(0, address=address) as page,
        deployment.client(None, address=address) as page_via_nginx,
        deployment.client(1, address=address) as api,
    ):
        await sign_in(page, viewer)
        page_via_nginx.cookies = page.cookies  # the same browser, through the front
        token = (await log_in(api, booker))["access_token"]
        stream = {"Accept": "text/event-stream"}
        async with (
            page.stream("GET", live, headers=stream) as direct,
            page_via_nginx.stream("GET", live, headers=stream) as proxied,
        ):
            listeners = [_events(direct), _events(proxied)]
            for response, events in zip((direct, proxied), listeners, strict=True):
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                assert await _next_event(response, events, "the stream's start") == ("ready", "{}")

            booked = await api.post(
                f"{API}/appointments",
                json={"doctor_id": doctor_id, "scheduled_at": slot},
                headers=bearer(token),
            )
            assert booked.status_code == 201, booked.text

            for response, events in zip((direct, proxied), listeners, strict=True):
                kind, data = await _next_event(response, events, "the booking on instance 1")
                assert kind == "slots"
                assert json.loads(data) == {
                    "doctor_id": doctor_id,
                    "taken": [slot],
                    "freed": [],
                }
