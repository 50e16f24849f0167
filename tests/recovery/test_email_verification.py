"""Email verification: a link at registration and on every change of address, and booking
that can be made to wait for it."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.factories import PASSWORD
from tests.problems import assert_problem
from tests.recovery.support import mail_to, text_of, token_in

AT = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)  # a Thursday, inside the doctor's hours
NEW_PASSWORD = "a brand new harbour passphrase 31"


async def _register(api, email: str) -> dict:
    response = await api(
        "POST",
        "/auth/register",
        json={
            "email": email,
            "password": PASSWORD,
            "name": "Barbara McClintock",
            "role": "patient",
            "date_of_birth": "1990-04-01",
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


async def _verify(api, token: str):
    return await api("POST", "/auth/verify-email", json={"token": token})


async def _me(api, user_id: int, token: str) -> dict:
    response = await api("GET", f"/users/{user_id}", token=token)
    assert response.status_code == 200, response.text
    return response.json()


async def test_registration_sends_a_link_that_verifies_the_address(api, worker, smtp):
    user = await _register(api, "Barbara@Example.org")
    assert user["email_verified"] is False
    [message] = await mail_to(worker, smtp, "barbara@example.org")
    assert message["Subject"] == "Confirm your email address"
    assert "Hello Barbara McClintock" in text_of(message)
    assert list(message.iter_attachments()) == []
    token = token_in(message, "verify-email")

    assert (await _verify(api, token)).status_code == 204

    login = await api("POST", "/auth/login", json={"email": user["email"], "password": PASSWORD})
    assert (await _me(api, user["id"], login.json()["access_token"]))["email_verified"] is True
    used = assert_problem(await _verify(api, token), 400)
    assert used == assert_problem(await _verify(api, "never-sent"), 400)
    assert used["type"] == "/problems/invalid-link"


async def test_a_verification_link_expires(api, worker, smtp, clock):
    await _register(api, "late@example.org")
    [message] = await mail_to(worker, smtp, "late@example.org")
    assert "within 72 hours" in text_of(message)
    clock.advance(hours=72)
    assert_problem(await _verify(api, token_in(message, "verify-email")), 400)


async def test_a_reset_link_is_no_verification_link(api, factories, worker, smtp):
    patient = await factories.patient()
    asked = await api("POST", "/auth/password-reset", json={"email": patient.email})
    assert asked.status_code == 202
    [message] = await mail_to(worker, smtp, patient.email)
    assert_problem(await _verify(api, token_in(message, "reset-password")), 400)


async def test_booking_waits_for_a_verified_address_when_the_setting_says_so(
    api_with, factories, worker, smtp
):
    strict = await api_with(require_verified_email=True)
    doctor = await factories.doctor()
    user = await _register(strict, "strict@example.org")
    tokens = (
        await strict("POST", "/auth/login", json={"email": user["email"], "password": PASSWORD})
    ).json()
    booking = {"doctor_id": doctor.doctor.id, "scheduled_at": AT.isoformat()}

    refused = assert_problem(
        await strict("POST", "/appointments", token=tokens["access_token"], json=booking), 403
    )
    assert refused["type"] == "/problems/email-not-verified"
    assert "verified email" in refused["detail"]

    [message] = await mail_to(worker, smtp, "strict@example.org")
    assert (await _verify(strict, token_in(message, "verify-email"))).status_code == 204
    booked = await strict("POST", "/appointments", token=tokens["access_token"], json=booking)
    assert booked.status_code == 201, booked.text


async def test_booking_needs_no_verified_address_by_default(api, factories):
    doctor = await factories.doctor()
    patient = await factories.patient()
    assert patient.email_verified is False
    booked = await api(
        "POST",
        "/appointments",
        token=await factories.token(patient),
        json={"doctor_id": doctor.doctor.id, "scheduled_at": AT.isoformat()},
    )
    assert booked.status_code == 201, booked.text


async def test_changing_the_address_unverifies_it_and_sends_a_new_link(
    api, factories, worker, smtp
):
    patient = await factories.patient(email_verified=True)
    token = await factories.token(patient)
    old_email = patient.email
    assert (await api("POST", "/auth/password-reset", json={"email": old_email})).status_code == 202
    [reset] = await mail_to(worker, smtp, old_email)

    changed = await api(
        "PUT", f"/users/{patient.id}", token=token, json={"email": "New@Example.org"}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["email_verified"] is False
    [message] = await mail_to(worker, smtp, "new@example.org")
    assert message["Subject"] == "Confirm your email address"
    # The reset link went to the old address: it proves nothing about the new one.
    assert_problem(
        await api(
            "POST",
            "/auth/password-reset/confirm",
            json={"token": token_in(reset, "reset-password"), "new_password": NEW_PASSWORD},
        ),
        400,
    )

    assert (await _verify(api, token_in(message, "verify-email"))).status_code == 204
    assert (await _me(api, patient.id, token))["email_verified"] is True


async def test_an_unchanged_address_stays_verified(api, factories, worker, smtp):
    patient = await factories.patient(email_verified=True)
    token = await factories.token(patient)
    same = await api("PUT", f"/users/{patient.id}", token=token, json={"email": patient.email})
    assert same.json()["email_verified"] is True
    assert await worker.run_once() == 0


async def test_verification_is_audited_and_limited_per_address(
    api, api_with, factories, worker, smtp
):
    admin_token = await factories.token(await factories.admin())
    user = await _register(api, "audited@example.org")
    [message] = await mail_to(worker, smtp, "audited@example.org")
    token = token_in(message, "verify-email")
    assert (await _verify(api, token)).status_code == 204

    response = await api(
        "GET", "/admin/audit-logs", token=admin_token, params={"action": "auth.email_verified"}
    )
    [entry] = response.json()["items"]
    assert (entry["entity"], entry["entity_id"], entry["actor_id"]) == (
        "user",
        user["id"],
        user["id"],
    )
    assert entry["changes"] == {"email_verified": {"before": False, "after": True}}
    assert token not in response.text

    limited = await api_with(recovery_per_address="2/hour")
    for _ in range(2):
        assert_problem(await _verify(limited, "a-guess"), 400)
    refused = assert_problem(await _verify(limited, "a-guess"), 429)
    assert int(refused["status"]) == 429
