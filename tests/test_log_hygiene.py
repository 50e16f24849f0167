"""A real server's logs never hold a password, a token, a date of birth or a reason."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx

from tests.servers import database_of_its_own, running_servers, server_env, wait_ready

PASSWORD = "Quintessential Lemur 77"
NEW_PASSWORD = "Obsidian Harbour Lights 19"
BIRTH = "1971-06-28"
REASON = "persistent wheezing at night"


async def test_logs_hold_no_secrets_or_health_data(settings, tmp_path):
    async with database_of_its_own(settings, tmp_path, "logs") as (url, _):
        env = server_env(
            {
                "EHASS_DATABASE_URL": url,
                "EHASS_SECRET_KEY": "log-test-secret-key-that-is-long-enough-0123456789",
                "EHASS_ENV": "test",
                "EHASS_LOG_LEVEL": "DEBUG",
                "EHASS_REDIS_KEY_PREFIX": f"ehass-logs-{uuid.uuid4().hex[:8]}",
                # No SMTP server: messages go to this log, which must not give their links away.
                "EHASS_EMBEDDED_WORKER": "true",
            }
        )
        with running_servers(1, env=env, log_dir=tmp_path) as (server,):
            await wait_ready(server)
            async with httpx.AsyncClient(base_url=f"{server.base_url}/api/v1", timeout=30) as api:
                secrets_seen = await _walk_through(api)
                log = await _once_mailed(server.log_path, "Reset your password")
    assert "request" in log and "auth.login" in log  # the log is really there
    for value in [PASSWORD, NEW_PASSWORD, BIRTH, REASON, *secrets_seen]:
        assert value not in log, f"{value[:12]}... leaked into the log"
    assert "Confirm your email address" in log  # the registrations' verification links
    links = re.findall(r"token=([^\s&\"\\]+)", log)
    assert links and set(links) == {"[redacted]"}, "a single-use link leaked into the log"


async def _once_mailed(log_path: Path, subject: str) -> str:
    """The log, once the embedded worker has written the message with `subject` to it."""
    for _ in range(150):
        log = await anyio.Path(log_path).read_text()
        if subject in log:
            return log
        await anyio.sleep(0.2)
    raise AssertionError(f"{subject!r} never reached the log")


async def _walk_through(api: httpx.AsyncClient) -> list[str]:
    doctor = await api.post(
        "/auth/register",
        json={
            "email": "doc@logs.example",
            "password": PASSWORD,
            "name": "Doc",
            "role": "doctor",
            "specialty": "GP",
        },
    )
    assert doctor.status_code == 201
    doctor_tokens = (
        await api.post("/auth/login", json={"email": "doc@logs.example", "password": PASSWORD})
    ).json()
    hours = [
        {"day": d, "start": "00:00", "end": "23:30"}
        for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    ]
    availability = await api.post(
        f"/doctors/{doctor.json()['doctor_id']}/availability",
        json={"timezone": "UTC", "slot_minutes": 30, "weekly": hours},
        headers={"Authorization": f"Bearer {doctor_tokens['access_token']}"},
    )
    assert availability.status_code == 200, availability.text
    patient = await api.post(
        "/auth/register",
        json={
            "email": "pat@logs.example",
            "password": PASSWORD,
            "name": "Pat",
            "role": "patient",
            "date_of_birth": BIRTH,
        },
    )
    assert patient.status_code == 201
    await api.post("/auth/login", json={"email": "pat@logs.example", "password": "wrong guess 12"})
    tokens = (
        await api.post("/auth/login", json={"email": "pat@logs.example", "password": PASSWORD})
    ).json()
    refreshed = (
        await api.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    ).json()
    auth = {"Authorization": f"Bearer {refreshed['access_token']}"}
    slot = (datetime.now(UTC) + timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    booked = await api.post(
        "/appointments",
        json={
            "doctor_id": doctor.json()["doctor_id"],
            "scheduled_at": slot.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "reason": REASON,
        },
        headers=auth,
    )
    assert booked.status_code == 201, booked.text
    changed = await api.put(
        f"/users/{patient.json()['id']}",
        json={"password": NEW_PASSWORD, "current_password": PASSWORD, "date_of_birth": BIRTH},
        headers=auth,
    )
    assert changed.status_code == 200, changed.text
    weak = await api.put(
        f"/users/{patient.json()['id']}",
        json={"password": "short", "current_password": NEW_PASSWORD},
        headers=auth,
    )
    assert weak.status_code == 422
    reset = await api.post("/auth/password-reset", json={"email": "pat@logs.example"})
    assert reset.status_code == 202
    return [
        tokens["access_token"],
        tokens["refresh_token"],
        refreshed["access_token"],
        refreshed["refresh_token"],
        doctor_tokens["access_token"],
    ]
