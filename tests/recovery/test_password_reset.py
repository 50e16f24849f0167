"""Forgotten passwords: a single-use link by email, received on a real SMTP server."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import httpx

from ehass.auth.recovery import RESET_REQUEST_SECONDS
from tests.factories import PASSWORD
from tests.problems import assert_problem
from tests.recovery.support import mail_to, text_of, token_in

NEW_PASSWORD = "a brand new harbour passphrase 31"


async def _ask(api, email: str) -> httpx.Response:
    return await api("POST", "/auth/password-reset", json={"email": email})


async def _confirm(api, token: str, password: str = NEW_PASSWORD) -> httpx.Response:
    return await api(
        "POST", "/auth/password-reset/confirm", json={"token": token, "new_password": password}
    )


async def _reset_token(api, worker, smtp, user) -> str:
    assert (await _ask(api, user.email)).status_code == 202
    return token_in((await mail_to(worker, smtp, user.email))[-1], "reset-password")


async def _login(api, email: str, password: str) -> httpx.Response:
    return await api("POST", "/auth/login", json={"email": email, "password": password})


async def test_the_emailed_link_sets_a_new_password_and_ends_every_session(
    api, factories, worker, smtp
):
    patient = await factories.patient(name="Rosalind Franklin")
    before = await factories.login(patient)

    asked = await _ask(api, patient.email.upper())
    assert asked.status_code == 202
    [message] = await mail_to(worker, smtp, patient.email)
    assert message["Subject"] == "Reset your password"
    assert "Hello Rosalind Franklin" in text_of(message)
    assert "within 30 minutes" in text_of(message)
    assert list(message.iter_attachments()) == []  # no calendar file
    token = token_in(message, "reset-password")
    assert len(token) >= 43  # 32 random bytes

    assert (await _confirm(api, token)).status_code == 204

    assert_problem(await api("GET", "/auth/session", token=before["access_token"]), 401)
    refreshed = await api("POST", "/auth/refresh", json={"refresh_token": before["refresh_token"]})
    assert_problem(refreshed, 401)
    assert_problem(await _login(api, patient.email, PASSWORD), 401)
    assert (await _login(api, patient.email, NEW_PASSWORD)).status_code == 200


async def test_an_unknown_or_inactive_address_gets_the_same_answer_and_no_mail(
    api, factories, worker, smtp
):
    known = await factories.patient()
    inactive = await factories.patient(is_active=False)
    answers, durations = [], []
    for email in (f"nobody-{uuid.uuid4().hex}@example.org", inactive.email, known.email):
        started = time.monotonic()
        answers.append(await _ask(api, email))
        durations.append(time.monotonic() - started)

    assert [a.status_code for a in answers] == [202, 202, 202]
    assert answers[0].json() == answers[1].json() == answers[2].json()
    assert answers[0].json()["detail"]
    # Every answer waits out the same minimum, so the work done for a known address (the
    # link, the message) does not show in the time taken.
    assert min(durations) >= RESET_REQUEST_SECONDS
    assert await worker.run_once() == 1
    assert [m["To"] for m in smtp.inbox.messages] == [known.email]


async def test_a_link_works_only_once(api, factories, worker, smtp):
    patient = await factories.patient()
    token = await _reset_token(api, worker, smtp, patient)
    assert (await _confirm(api, token)).status_code == 204

    again = assert_problem(await _confirm(api, token, "yet another fine passphrase 8"), 400)
    unknown = assert_problem(await _confirm(api, "not-a-token-we-ever-sent"), 400)
    assert again["type"] == "/problems/invalid-link"
    assert again == unknown  # used and unknown links are refused alike
    assert (await _login(api, patient.email, NEW_PASSWORD)).status_code == 200


async def test_a_link_expires_after_thirty_minutes(api, factories, worker, smtp, clock):
    patient = await factories.patient()
    token = await _reset_token(api, worker, smtp, patient)
    clock.at = clock.now() + timedelta(minutes=30)
    expired = assert_problem(await _confirm(api, token), 400)
    assert expired["type"] == "/problems/invalid-link"

    fresh = await _reset_token(api, worker, smtp, patient)
    clock.at = clock.now() + timedelta(minutes=29, seconds=59)
    assert (await _confirm(api, fresh)).status_code == 204


async def test_the_expiry_is_a_setting(api_with, factories, worker, smtp, clock):
    api = await api_with(password_reset_minutes=10)
    patient = await factories.patient()
    token = await _reset_token(api, worker, smtp, patient)
    assert "within 10 minutes" in text_of(smtp.inbox.to(patient.email)[-1])
    clock.advance(minutes=10)
    assert_problem(await _confirm(api, token), 400)


async def test_asking_again_replaces_the_previous_link(api, factories, worker, smtp):
    patient = await factories.patient()
    first = await _reset_token(api, worker, smtp, patient)
    second = await _reset_token(api, worker, smtp, patient)
    assert first != second and len(smtp.inbox.to(patient.email)) == 2

    assert_problem(await _confirm(api, first), 400)
    assert (await _confirm(api, second)).status_code == 204


async def test_the_new_password_must_meet_the_policy(api, factories, worker, smtp):
    patient = await factories.patient()
    token = await _reset_token(api, worker, smtp, patient)
    for weak in ("short", "password1234"):
        problem = assert_problem(await _confirm(api, token, weak), 422)
        assert problem["errors"][0]["loc"] == ["body", "new_password"]
        assert weak not in str(problem)
    # A refused password does not use the link up.
    assert (await _confirm(api, token)).status_code == 204


async def test_a_deactivated_account_cannot_use_its_link(api, factories, worker, smtp):
    admin = await factories.admin()
    patient = await factories.patient()
    token = await _reset_token(api, worker, smtp, patient)
    deactivated = await api("DELETE", f"/users/{patient.id}", token=await factories.token(admin))
    assert deactivated.status_code == 204
    assert_problem(await _confirm(api, token), 400)


async def test_a_reset_also_verifies_the_address(api, factories, worker, smtp):
    patient = await factories.patient()
    assert patient.email_verified is False
    token = await _reset_token(api, worker, smtp, patient)
    assert (await _confirm(api, token)).status_code == 204
    pair = (await _login(api, patient.email, NEW_PASSWORD)).json()
    me = await api("GET", f"/users/{patient.id}", token=pair["access_token"])
    assert me.json()["email_verified"] is True


async def test_requests_are_limited_per_email_whatever_the_address(api, api_with, factories):
    patient = await factories.patient()
    unknown = f"nobody-{uuid.uuid4().hex}@example.org"
    for email in (patient.email, unknown):
        for _ in range(5):
            assert (await _ask(api, email)).status_code == 202
        # From another address too: the limit belongs to the email.
        elsewhere = await api_with()
        refused = assert_problem(await _ask(elsewhere, email), 429)
        assert int((await _ask(elsewhere, email)).headers["retry-after"]) > 0
        assert refused["type"] == "/problems/rate-limited"


async def test_requests_are_limited_per_address(api_with, factories, worker, smtp):
    api = await api_with(recovery_per_address="3/hour")
    for _ in range(3):
        assert (await _ask(api, f"n-{uuid.uuid4().hex}@example.org")).status_code == 202
    refused = assert_problem(await _ask(api, f"n-{uuid.uuid4().hex}@example.org"), 429)
    assert "address" in refused["detail"]

    patient = await factories.patient()
    token = await _reset_token(await api_with(), worker, smtp, patient)
    for _ in range(3):
        assert_problem(await _confirm(api, "guess-" + uuid.uuid4().hex), 400)
    assert_problem(await _confirm(api, token), 429)  # even the right token, from there


async def test_requests_and_resets_are_audited_without_secrets(api, factories, worker, smtp):
    admin_token = await factories.token(await factories.admin())
    patient = await factories.patient()
    await factories.login(patient)
    await _ask(api, f"nobody-{uuid.uuid4().hex}@example.org")
    token = await _reset_token(api, worker, smtp, patient)
    assert (await _confirm(api, token)).status_code == 204

    async def entries(action: str) -> list[dict]:
        response = await api(
            "GET", "/admin/audit-logs", token=admin_token, params={"action": action}
        )
        assert response.status_code == 200, response.text
        return response.json()["items"]

    requested = await entries("auth.password_reset_requested")
    assert sorted(e["changes"]["outcome"] for e in requested) == ["sent", "unknown_email"]
    [sent] = [e for e in requested if e["changes"]["outcome"] == "sent"]
    assert (sent["entity"], sent["entity_id"]) == ("user", patient.id)
    [reset] = await entries("auth.password_reset")
    assert (reset["entity_id"], reset["actor_id"]) == (patient.id, patient.id)
    assert reset["changes"]["password"] == {"before": "[redacted]", "after": "[redacted]"}
    revoked = await entries("session.revoke")
    assert any(e["changes"]["revoked_reason"]["after"] == "password_reset" for e in revoked)
    trail = str([*requested, reset])
    assert token not in trail and NEW_PASSWORD not in trail and patient.email not in trail
