"""TOTP enrolment, login with a second factor, recovery codes, and mandatory MFA for staff."""

from __future__ import annotations

import pyotp
import pytest

from ehass.db import Database
from ehass.main import create_app
from tests.factories import PASSWORD


async def _enable(api, factories, user):
    token = await factories.token(user)
    enrolment = await api("POST", "/auth/mfa/enroll", token=token)
    assert enrolment.status_code == 200, enrolment.text
    body = enrolment.json()
    assert body["otpauth_uri"].startswith("otpauth://totp/EHASS:")
    assert body["qr_svg"].startswith("data:image/svg+xml")
    totp = pyotp.TOTP(body["secret"])
    return token, totp


def _code(totp, clock, steps=0):
    return totp.at(clock.now().timestamp() + 30 * steps)


async def test_enrol_confirm_and_log_in_with_a_code(api, factories, clock):
    user = await factories.patient()
    token, totp = await _enable(api, factories, user)
    wrong = await api("POST", "/auth/mfa/confirm", token=token, json={"code": "000000"})
    assert wrong.status_code == 422
    confirmed = await api(
        "POST", "/auth/mfa/confirm", token=token, json={"code": _code(totp, clock)}
    )
    assert confirmed.status_code == 200, confirmed.text
    assert len(confirmed.json()["recovery_codes"]) == 10

    without = await api("POST", "/auth/login", json={"email": user.email, "password": PASSWORD})
    assert without.status_code == 401
    assert without.json()["type"] == "/problems/mfa-required"

    clock.advance(seconds=30)
    code = _code(totp, clock)
    ok = await api(
        "POST", "/auth/login", json={"email": user.email, "password": PASSWORD, "otp": code}
    )
    assert ok.status_code == 200, ok.text
    replay = await api(
        "POST", "/auth/login", json={"email": user.email, "password": PASSWORD, "otp": code}
    )
    assert replay.status_code == 401  # a code is accepted once
    bad = await api(
        "POST", "/auth/login", json={"email": user.email, "password": PASSWORD, "otp": "123456"}
    )
    assert bad.status_code == 401
    wrong_password = await api(
        "POST", "/auth/login", json={"email": user.email, "password": "nope nope nope", "otp": code}
    )
    assert wrong_password.status_code == 401
    assert wrong_password.json()["type"] == "/problems/invalid-credentials"


async def test_recovery_codes_work_once(api, factories, clock):
    user = await factories.patient()
    token, totp = await _enable(api, factories, user)
    codes = (
        await api("POST", "/auth/mfa/confirm", token=token, json={"code": _code(totp, clock)})
    ).json()
    recovery = codes["recovery_codes"][3]
    login = {"email": user.email, "password": PASSWORD, "otp": recovery}
    assert (await api("POST", "/auth/login", json=login)).status_code == 200
    assert (await api("POST", "/auth/login", json=login)).status_code == 401


async def test_enrolling_twice_is_409_and_disable_needs_the_password(api, factories, clock):
    user = await factories.patient()
    token, totp = await _enable(api, factories, user)
    await api("POST", "/auth/mfa/confirm", token=token, json={"code": _code(totp, clock)})
    assert (await api("POST", "/auth/mfa/enroll", token=token)).status_code == 409
    refused = await api(
        "POST", "/auth/mfa/disable", token=token, json={"password": "wrong password"}
    )
    assert refused.status_code == 403
    disabled = await api("POST", "/auth/mfa/disable", token=token, json={"password": PASSWORD})
    assert disabled.status_code == 204
    login = await api("POST", "/auth/login", json={"email": user.email, "password": PASSWORD})
    assert login.status_code == 200


@pytest.fixture
async def staff_mfa_api(settings, engine, sessionmaker, clock, client_ip):
    import httpx

    app = create_app(
        settings.model_copy(update={"mfa_required_for_staff": True}),
        clock=clock,
        database=Database(engine, sessionmaker),
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(client_ip, 1)), base_url="http://t"
    ) as client:

        async def call(method, path, *, token=None, **kwargs):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return await client.request(method, f"/api/v1{path}", headers=headers, **kwargs)

        yield call
    await app.state.runtime.shared.close()


async def test_mandatory_mfa_confines_staff_to_enrolment(staff_mfa_api, factories, clock):
    api = staff_mfa_api
    doctor = await factories.doctor()
    login = await api("POST", "/auth/login", json={"email": doctor.email, "password": PASSWORD})
    assert login.status_code == 200
    pair = login.json()
    blocked = await api("GET", "/appointments", token=pair["access_token"])
    assert blocked.status_code == 403
    enrolment = (await api("POST", "/auth/mfa/enroll", token=pair["access_token"])).json()
    totp = pyotp.TOTP(enrolment["secret"])
    confirm = await api(
        "POST", "/auth/mfa/confirm", token=pair["access_token"], json={"code": _code(totp, clock)}
    )
    assert confirm.status_code == 200
    refreshed = (
        await api("POST", "/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    ).json()
    assert (await api("GET", "/appointments", token=refreshed["access_token"])).status_code == 200

    patient = await factories.patient()
    patient_login = await api(
        "POST", "/auth/login", json={"email": patient.email, "password": PASSWORD}
    )
    token = patient_login.json()["access_token"]
    assert (await api("GET", "/appointments", token=token)).status_code == 200  # patients exempt


async def test_a_code_with_odd_characters_is_a_422_not_a_crash(api, factories):
    user = await factories.patient()
    token, _ = await _enable(api, factories, user)
    response = await api("POST", "/auth/mfa/confirm", token=token, json={"code": "12345é"})
    assert response.status_code == 422
