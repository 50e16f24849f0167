"""Authentication reads the session's account from the shared cache, binds the token to it,
and sees logouts, deactivations and account changes made on another instance at once.

Two apps share one Redis in the MariaDB+Redis run, and the process's in-process stand-in on
SQLite; either way they are two instances with separate runtimes and signers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import jwt
import pyotp
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ehass.audit import sealer
from ehass.audit.models import AuditEntry
from ehass.auth import service as auth_service
from ehass.auth import session_cache
from ehass.core.principal import Role
from ehass.db import Database
from ehass.main import create_app
from ehass.users.models import User
from tests.factories import PASSWORD
from tests.problems import assert_problem
from tests.test_query_counts import counted

Api = Callable[..., Awaitable[httpx.Response]]


@pytest.fixture
async def other_api(settings, engine, sessionmaker, clock, client_ip) -> AsyncIterator[Api]:
    """A second instance: its own app, runtime and token signer, the same database and
    shared state."""
    app = create_app(settings, clock=clock, database=Database(engine, sessionmaker))
    transport = httpx.ASGITransport(app=app, client=(client_ip, 2))
    async with httpx.AsyncClient(transport=transport, base_url="http://other") as client:

        async def call(
            method: str, path: str, *, token: str | None = None, **kwargs: Any
        ) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return await client.request(method, f"/api/v1{path}", headers=headers, **kwargs)

        yield call
    await app.state.runtime.shared.close()


def _forged(settings, token: str, **claims: Any) -> str:
    """The token re-signed with the (test) secret after changing some claims: what someone
    who learnt the secret could make."""
    secret = settings.secret_key.get_secret_value()
    payload = jwt.decode(token, options={"verify_signature": False})
    return jwt.encode(payload | claims, secret, algorithm="HS256")


async def _denials(session) -> list[int]:
    await sealer.seal_committed(session)  # the request appended them; the chain has them now
    rows = await session.scalars(select(AuditEntry).where(AuditEntry.action == "access.denied"))
    return [row.changes["status"] for row in rows]


async def test_a_token_claiming_admin_on_a_patients_session_is_refused(
    api, factories, settings, session
):
    patient = await factories.patient()
    token = await factories.token(patient)
    assert (await api("GET", "/users", token=token)).status_code == 403
    forged = _forged(settings, token, role="admin")

    response = await api("GET", "/users", token=forged)

    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert await _denials(session) == [403, 401]  # audited like every other 401


@pytest.mark.parametrize(
    "claims",
    [{"sub": "other"}, {"pid": None}, {"pid": 987654}, {"did": 1}],
    ids=["sub", "no-pid", "other-pid", "did"],
)
async def test_a_token_naming_another_account_than_its_session_is_refused(
    api, factories, settings, claims
):
    patient = await factories.patient()
    victim = await factories.admin()
    token = await factories.token(patient)
    assert (await api("GET", "/appointments", token=token)).status_code == 200
    changes = {"sub": str(victim.id)} if claims == {"sub": "other"} else claims

    response = await api("GET", "/appointments", token=_forged(settings, token, **changes))

    assert_problem(response, 401)
    # The genuine token still works: a forgery does not end the session.
    assert (await api("GET", "/appointments", token=token)).status_code == 200


async def test_the_principal_comes_from_the_account(api, factories):
    doctor = await factories.doctor()
    token = await factories.token(doctor)
    body = (await api("GET", "/auth/session", token=token)).json()
    assert (body["user_id"], body["role"]) == (doctor.id, "doctor")


async def test_a_logout_on_one_instance_is_refused_on_the_other_at_once(api, other_api, factories):
    patient = await factories.patient()
    token = await factories.token(patient)
    assert (await other_api("GET", "/appointments", token=token)).status_code == 200  # cached
    assert (await api("POST", "/auth/logout", token=token)).status_code == 204

    assert_problem(await other_api("GET", "/appointments", token=token), 401)
    assert_problem(await api("GET", "/appointments", token=token), 401)


async def test_a_deactivation_is_seen_by_the_other_instance_at_once(api, other_api, factories):
    admin_token = await factories.token(await factories.admin())
    patient = await factories.patient()
    pair = await factories.login(patient)
    assert (await other_api("GET", "/appointments", token=pair["access_token"])).status_code == 200

    assert (await api("DELETE", f"/users/{patient.id}", token=admin_token)).status_code == 204

    assert_problem(await other_api("GET", "/appointments", token=pair["access_token"]), 401)
    refreshed = await other_api(
        "POST", "/auth/refresh", json={"refresh_token": pair["refresh_token"]}
    )
    assert_problem(refreshed, 401)


async def test_a_role_change_is_seen_by_the_other_instance_at_once(
    app, other_api, factories, session
):
    """No endpoint changes a role today (the API refuses it); a service that does calls
    `session_cache.account_changed` after its change, as this test does."""
    doctor = await factories.doctor()
    pair = await factories.login(doctor)
    token = pair["access_token"]
    assert (await other_api("GET", "/users", token=token)).status_code == 403  # cached: doctor

    await session.execute(update(User).where(User.id == doctor.id).values(role=Role.ADMIN))
    await session_cache.account_changed(session, app.state.runtime, user_id=doctor.id)

    # The old token says "doctor", the account now says "admin": it no longer matches.
    assert_problem(await other_api("GET", "/users", token=token), 401)
    renewed = await other_api(
        "POST", "/auth/refresh", json={"refresh_token": pair["refresh_token"]}
    )
    assert renewed.status_code == 200, renewed.text
    assert (
        await other_api("GET", "/users", token=renewed.json()["access_token"])
    ).status_code == 200


async def test_a_cache_hit_runs_no_statement_and_opens_no_connection(
    app, api, factories, engine: AsyncEngine, sessionmaker
):
    patient = await factories.patient()
    token = await factories.token(patient)
    assert (await api("GET", "/appointments", token=token)).status_code == 200  # warm

    async with sessionmaker() as fresh:
        with counted(engine) as statements:
            principal = await auth_service.authenticate(fresh, app.state.runtime, token=token)
        assert not fresh.in_transaction()  # no connection was checked out
    assert statements == []
    assert (principal.user_id, principal.role, principal.patient_id) == (
        patient.id,
        Role.PATIENT,
        patient.patient.id,
    )


async def test_a_miss_costs_one_statement(app, factories, engine: AsyncEngine, sessionmaker):
    patient = await factories.patient()
    pair = await factories.login(patient)
    async with sessionmaker() as fresh:
        with counted(engine) as statements:
            await auth_service.authenticate(fresh, app.state.runtime, token=pair["access_token"])
    assert len(statements) == 1, statements
    assert "JOIN" in statements[0].upper()


async def test_an_expired_token_is_refused_though_its_signature_was_checked_before(
    api, factories, clock, settings
):
    patient = await factories.patient()
    token = await factories.token(patient)
    assert (await api("GET", "/appointments", token=token)).status_code == 200
    clock.advance(minutes=settings.access_token_minutes)
    assert_problem(await api("GET", "/appointments", token=token), 401)
    clock.advance(minutes=-1)  # not that way round either: an expired entry is dropped
    assert (await api("GET", "/appointments", token=token)).status_code == 200


async def test_a_removed_second_factor_confines_staff_at_once(staff_mfa_apis, factories, clock):
    """With MFA mandatory for staff, a factor removed on one instance confines the staff
    member's tokens to enrolment on the other, though the token says otherwise."""
    first, second = staff_mfa_apis
    doctor = await factories.doctor()
    pair = (
        await first("POST", "/auth/login", json={"email": doctor.email, "password": PASSWORD})
    ).json()
    enrolment = (await first("POST", "/auth/mfa/enroll", token=pair["access_token"])).json()
    code = pyotp.TOTP(enrolment["secret"]).at(clock.now())
    confirm = await first(
        "POST", "/auth/mfa/confirm", token=pair["access_token"], json={"code": code}
    )
    assert confirm.status_code == 200, confirm.text
    refreshed = (
        await first("POST", "/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    ).json()
    token = refreshed["access_token"]
    assert (await second("GET", "/appointments", token=token)).status_code == 200

    disabled = await first("POST", "/auth/mfa/disable", token=token, json={"password": PASSWORD})
    assert disabled.status_code == 204, disabled.text

    assert_problem(await second("GET", "/appointments", token=token), 403)


@pytest.fixture
async def staff_mfa_apis(settings, engine, sessionmaker, clock, client_ip):
    """Two instances that make a second factor mandatory for staff."""
    mfa_settings = settings.model_copy(update={"mfa_required_for_staff": True})
    apps = [
        create_app(mfa_settings, clock=clock, database=Database(engine, sessionmaker))
        for _ in range(2)
    ]
    clients = [
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=(client_ip, n)), base_url="http://t"
        )
        for n, app in enumerate(apps)
    ]

    def caller(client: httpx.AsyncClient) -> Api:
        async def call(method, path, *, token=None, **kwargs):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return await client.request(method, f"/api/v1{path}", headers=headers, **kwargs)

        return call

    yield [caller(c) for c in clients]
    for client, app in zip(clients, apps, strict=True):
        await client.aclose()
        await app.state.runtime.shared.close()
