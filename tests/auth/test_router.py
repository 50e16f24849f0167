from __future__ import annotations

from datetime import timedelta

import pytest

from tests.factories import PASSWORD


async def test_register_patient_returns_the_user(api):
    response = await api(
        "POST",
        "/auth/register",
        json={
            "email": "New.Patient@Example.org",
            "password": "a long unusual passphrase",
            "name": "New Patient",
            "role": "patient",
            "date_of_birth": "1990-04-01",
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["email"] == "new.patient@example.org"
    assert body["role"] == "patient"
    assert body["is_active"] is True
    assert body["patient_id"] is not None and body["date_of_birth"] == "1990-04-01"
    assert body["doctor_id"] is None and body["specialty"] is None and body["timezone"] is None
    assert body["created_at"].endswith("Z") and len(body["created_at"]) == 20
    assert "password" not in response.text and "hash" not in response.text


async def test_register_doctor_defaults_to_utc(api):
    response = await api(
        "POST",
        "/auth/register",
        json={
            "email": "doc@example.org",
            "password": "a long unusual passphrase",
            "name": "Doc",
            "role": "doctor",
            "specialty": "Cardiology",
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["specialty"], body["timezone"], body["patient_id"]) == ("Cardiology", "UTC", None)
    assert body["doctor_id"] is not None


@pytest.mark.parametrize(
    ("change", "loc_hint"),
    [
        ({"role": "admin"}, "role"),
        ({"role": "nurse"}, "role"),
        ({"password": "short"}, "password"),
        ({"password": "x" * 129}, "password"),
        ({"password": "password1234"}, "password"),
        ({"email": "not-an-email"}, "email"),
        ({"date_of_birth": None}, None),
        ({"admin": True}, "admin"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
    ],
)
async def test_register_rejects_bad_input_with_422(api, change, loc_hint):
    body = {
        "email": "someone@example.org",
        "password": "a long unusual passphrase",
        "name": "Someone",
        "role": "patient",
        "date_of_birth": "1990-04-01",
    } | change
    response = await api("POST", "/auth/register", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 422 and problem["errors"]
    if loc_hint:
        assert any(loc_hint in map(str, e["loc"]) for e in problem["errors"]), problem
    assert "a long unusual passphrase" not in response.text


async def test_register_duplicate_email_is_409_in_any_case(api, factories):
    existing = await factories.patient()
    response = await api(
        "POST",
        "/auth/register",
        json={
            "email": existing.email.upper(),
            "password": "a long unusual passphrase",
            "name": "Copy",
            "role": "patient",
            "date_of_birth": "1990-04-01",
        },
    )
    assert response.status_code == 409
    assert response.json()["status"] == 409


async def test_login_returns_a_token_pair(api, factories):
    user = await factories.patient()
    response = await api("POST", "/auth/login", json={"email": user.email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 15 * 60
    session = await api("GET", "/auth/session", token=body["access_token"])
    assert session.status_code == 200
    info = session.json()
    assert info["user_id"] == user.id and info["role"] == "patient"
    assert info["expires_at"] > info["created_at"]


async def test_login_accepts_an_oauth2_form(client, factories):
    user = await factories.patient()
    response = await client.post(
        "/api/v1/auth/login", data={"username": user.email, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text


async def test_wrong_password_unknown_email_and_deactivated_answer_the_same_401(api, factories):
    user = await factories.patient()
    inactive = await factories.patient(is_active=False)
    answers = [
        await api("POST", "/auth/login", json={"email": user.email, "password": "wrong password!"}),
        await api(
            "POST", "/auth/login", json={"email": "nobody@example.org", "password": PASSWORD}
        ),
        await api("POST", "/auth/login", json={"email": inactive.email, "password": PASSWORD}),
    ]
    assert {r.status_code for r in answers} == {401}
    assert len({r.json()["detail"] for r in answers}) == 1


async def test_eleventh_login_after_ten_failures_is_429_even_with_right_password(api, factories):
    user = await factories.patient()
    for _ in range(10):
        r = await api(
            "POST", "/auth/login", json={"email": user.email, "password": "wrong password!"}
        )
        assert r.status_code == 401
    locked = await api("POST", "/auth/login", json={"email": user.email, "password": PASSWORD})
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) > 0
    other = await factories.patient()
    assert (
        await api("POST", "/auth/login", json={"email": other.email, "password": PASSWORD})
    ).status_code == 200


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "Bearer eyJhbGciOiJub25lIn0.e30."],
)
async def test_missing_or_bad_token_is_401_with_www_authenticate(client, header):
    headers = {"Authorization": header} if header else {}
    response = await client.get("/api/v1/auth/session", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_expired_access_token_is_401(api, factories, clock):
    token = await factories.token(await factories.patient())
    clock.advance(minutes=15, seconds=1)
    assert (await api("GET", "/auth/session", token=token)).status_code == 401


async def test_refresh_rotates_and_reuse_revokes_the_session(api, factories):
    pair = await factories.login(await factories.patient())
    first = await api("POST", "/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert first.status_code == 200
    rotated = first.json()
    assert rotated["refresh_token"] != pair["refresh_token"]
    assert (await api("GET", "/auth/session", token=rotated["access_token"])).status_code == 200

    reuse = await api("POST", "/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert reuse.status_code == 401
    # The whole session is revoked: the newest access and refresh tokens stop working.
    assert (await api("GET", "/auth/session", token=rotated["access_token"])).status_code == 401
    again = await api("POST", "/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert again.status_code == 401


async def test_unknown_refresh_token_is_401(api):
    response = await api("POST", "/auth/refresh", json={"refresh_token": "made-up"})
    assert response.status_code == 401


async def test_logout_revokes_access_and_refresh_tokens(api, factories):
    pair = await factories.login(await factories.patient())
    assert (await api("POST", "/auth/logout", token=pair["access_token"])).status_code == 204
    assert (await api("GET", "/auth/session", token=pair["access_token"])).status_code == 401
    refreshed = await api("POST", "/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 401


async def test_idle_session_cannot_refresh(api, factories, clock):
    pair = await factories.login(await factories.patient())
    clock.advance(minutes=30)
    response = await api("POST", "/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert response.status_code == 401


async def test_refresh_keeps_session_alive_until_absolute_lifetime(api, factories, clock):
    pair = await factories.login(await factories.patient())
    refresh_token = pair["refresh_token"]
    started = clock.now()
    while clock.now() - started < timedelta(hours=11, minutes=30):
        clock.advance(minutes=25)
        response = await api("POST", "/auth/refresh", json={"refresh_token": refresh_token})
        assert response.status_code == 200, clock.now() - started
        refresh_token = response.json()["refresh_token"]
        assert response.json()["expires_in"] <= 15 * 60
    clock.at = started + timedelta(hours=12)
    response = await api("POST", "/auth/refresh", json={"refresh_token": refresh_token})
    assert response.status_code == 401


async def test_session_list_and_revoke(api, factories):
    user = await factories.patient()
    phone = await factories.login(user)
    laptop = await factories.login(user)
    listed = await api("GET", "/auth/sessions", token=laptop["access_token"])
    assert listed.status_code == 200
    sessions = listed.json()["items"]
    assert len(sessions) == 2
    current = [s for s in sessions if s["current"]]
    assert len(current) == 1
    phone_session = next(s for s in sessions if not s["current"])["session_id"]

    revoked = await api("DELETE", f"/auth/sessions/{phone_session}", token=laptop["access_token"])
    assert revoked.status_code == 204
    assert (await api("GET", "/auth/session", token=phone["access_token"])).status_code == 401
    assert (await api("GET", "/auth/session", token=laptop["access_token"])).status_code == 200


async def test_cannot_revoke_someone_elses_session(api, factories):
    victim = await factories.login(await factories.patient())
    attacker = await factories.token(await factories.patient())
    victim_sid = (await api("GET", "/auth/session", token=victim["access_token"])).json()[
        "session_id"
    ]
    response = await api("DELETE", f"/auth/sessions/{victim_sid}", token=attacker)
    assert response.status_code == 404
    assert (await api("GET", "/auth/session", token=victim["access_token"])).status_code == 200


async def test_login_rehashes_a_password_stored_with_old_parameters(api, factories, session):
    from argon2 import PasswordHasher
    from sqlalchemy import select

    from ehass.core.passwords import needs_rehash
    from ehass.users.models import User

    old = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    user = await factories.patient(password_hash=old)
    assert needs_rehash(old)
    assert (await factories.login(user))["access_token"]
    stored = (
        await session.execute(
            select(User.password_hash)
            .where(User.id == user.id)
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    assert stored != old and not needs_rehash(stored)
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
