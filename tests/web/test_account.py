"""Browser sessions over plain HTTP: cookies, CSRF, CSP, sign-in and sign-out."""

from __future__ import annotations

import httpx
import pyotp

from ehass.auth.models import UserSession
from ehass.db import Database
from ehass.main import create_app
from tests.factories import PASSWORD
from tests.web.support import HTML, csrf_of, get, post_form, sign_in


def _set_cookie(response: httpx.Response, name: str) -> str:
    found = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    assert found, f"no {name} cookie set"
    return found[0]


async def test_pages_carry_a_strict_csp_and_the_api_keeps_its_own(client):
    page = await get(client, "/signin")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "unsafe-inline" not in policy
    assert "script-src 'self'" in policy and "form-action 'self'" in policy
    assert page.headers.get_list("content-security-policy") == [policy]
    assert page.headers["cache-control"] == "no-store"
    api = await client.get("/api/v1/doctors")
    assert api.headers["content-security-policy"].startswith("default-src 'none'")
    assert "form-action 'none'" in api.headers["content-security-policy"]


async def test_sign_in_sets_an_httponly_lax_cookie_and_lands_on_the_role_home(
    client, factories, session
):
    patient = await factories.patient()
    response = await post_form(client, "/signin", {"email": patient.email, "password": PASSWORD})
    assert response.status_code == 303
    assert response.headers["location"] == "/appointments"
    cookie = _set_cookie(response, "ehass_session").lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # plain HTTP here; see the HTTPS test
    home = await get(client, "/appointments")
    assert home.status_code == 200
    assert "My appointments" in home.text


async def test_the_cookie_is_secure_under_https(app, factories, client_ip):
    patient = await factories.patient()
    transport = httpx.ASGITransport(app=app, client=(client_ip, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as browser:
        page = await get(browser, "/signin")
        response = await browser.post(
            "/signin",
            data={"email": patient.email, "password": PASSWORD, "csrf_token": csrf_of(page)},
            headers=HTML,
        )
    assert response.status_code == 303
    assert "secure" in _set_cookie(response, "ehass_session").lower()


async def test_a_form_without_the_csrf_token_is_refused(client, factories, session):
    patient = await factories.patient()
    await get(client, "/signin")  # the pre-session cookie exists; only the token is missing
    refused = await client.post(
        "/signin", data={"email": patient.email, "password": PASSWORD}, headers=HTML
    )
    assert refused.status_code == 403
    assert "expired" in refused.text
    assert "ehass_session" not in refused.headers.get("set-cookie", "")

    wrong = await client.post(
        "/signin",
        data={"email": patient.email, "password": PASSWORD, "csrf_token": "forged"},
        headers=HTML,
    )
    assert wrong.status_code == 403


async def test_a_signed_in_form_needs_the_sessions_own_token(client, factories):
    patient = await factories.patient()
    anonymous_token = csrf_of(await get(client, "/signin"))
    await sign_in(client, patient)
    refused = await client.post("/signout", data={"csrf_token": anonymous_token}, headers=HTML)
    assert refused.status_code == 403
    assert (await get(client, "/appointments")).status_code == 200  # still signed in


async def test_wrong_password_keeps_the_email_and_says_why(client, factories):
    patient = await factories.patient()
    response = await post_form(
        client, "/signin", {"email": patient.email, "password": "not the password at all"}
    )
    assert response.status_code == 401
    assert "Invalid email or password." in response.text
    assert f'value="{patient.email}"' in response.text
    assert "Traceback" not in response.text


async def test_sign_out_ends_the_server_side_session(client, factories, session):
    patient = await factories.patient()
    await sign_in(client, patient)
    page = await get(client, "/appointments")
    response = await client.post("/signout", data={"csrf_token": csrf_of(page)}, headers=HTML)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/signin")
    ended = await session.scalar(
        UserSession.__table__.select()
        .with_only_columns(UserSession.revoked_reason)
        .where(UserSession.user_id == patient.id)
    )
    assert ended == "logout"
    again = await get(client, "/appointments")
    assert again.status_code == 303
    assert again.headers["location"] == "/signin?next=/appointments"


async def test_a_deactivated_user_is_signed_out_of_the_browser(client, factories, api):
    patient = await factories.patient()
    admin = await factories.admin()
    admin_token = await factories.token(admin)
    await sign_in(client, patient)
    assert (await get(client, "/appointments")).status_code == 200
    deactivated = await api("DELETE", f"/users/{patient.id}", token=admin_token)
    assert deactivated.status_code == 204, deactivated.text
    after = await get(client, "/appointments")
    assert after.status_code == 303
    assert after.headers["location"].startswith("/signin")


async def test_a_forged_cookie_is_not_a_session(client, factories, session):
    patient = await factories.patient()
    await sign_in(client, patient)
    session_id = client.cookies["ehass_session"].partition(".")[0]
    client.cookies.clear()
    client.cookies.set("ehass_session", f"{session_id}.not-the-mac")
    response = await get(client, "/appointments")
    assert response.status_code == 303


async def test_the_api_stays_bearer_only(client, factories):
    patient = await factories.patient()
    await sign_in(client, patient)
    response = await client.get("/api/v1/appointments")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_pages_are_not_opened_by_the_wrong_role(client, factories):
    doctor = await factories.doctor()
    await sign_in(client, doctor)
    response = await get(client, "/appointments")
    assert response.status_code == 403
    assert "for patients" in response.text


async def test_sign_up_keeps_typed_values_and_puts_errors_beside_fields(client, factories):
    taken = await factories.patient()
    response = await post_form(
        client,
        "/signup",
        {
            "name": "Nora Newcomer",
            "email": taken.email,
            "password": "short",
            "date_of_birth": "1991-02-03",
        },
    )
    assert response.status_code == 422
    assert 'value="Nora Newcomer"' in response.text
    assert 'value="1991-02-03"' in response.text
    assert 'id="password-error"' in response.text
    assert "short" not in response.text.split('id="password"')[1][:200]


async def test_sign_up_creates_a_patient_and_signs_them_in(client):
    response = await post_form(
        client,
        "/signup",
        {
            "name": "Nora Newcomer",
            "email": "nora@example.org",
            "password": "a long unusual passphrase",
            "date_of_birth": "1991-02-03",
        },
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"].startswith("/doctors")
    page = await get(client, "/doctors")
    assert page.status_code == 200
    assert "Find a doctor" in page.text


async def test_a_second_factor_is_asked_for_then_accepted(client, factories, api, clock):
    admin = await factories.admin()
    token = await factories.token(admin)
    enrolment = await api("POST", "/auth/mfa/enroll", token=token)
    totp = pyotp.TOTP(enrolment.json()["secret"])
    confirmed = await api(
        "POST", "/auth/mfa/confirm", token=token, json={"code": totp.at(clock.now())}
    )
    assert confirmed.status_code == 200, confirmed.text
    clock.advance(seconds=30)  # a code is accepted once: the next one is used below

    asked = await post_form(client, "/signin", {"email": admin.email, "password": PASSWORD})
    assert asked.status_code == 422
    assert 'id="otp-error"' in asked.text and f'value="{admin.email}"' in asked.text
    accepted = await client.post(
        "/signin",
        data={
            "email": admin.email,
            "password": PASSWORD,
            "otp": totp.at(clock.now()),
            "csrf_token": csrf_of(asked),
        },
        headers=HTML,
    )
    assert accepted.status_code == 303, accepted.text
    assert accepted.headers["location"] == "/admin/users"


async def test_the_sign_in_page_shares_the_tighter_limit_of_the_login_endpoint(
    settings, engine, sessionmaker, clock, client_ip
):
    tight = settings.model_copy(update={"rate_limit_auth_per_address": "2/minute"})
    app = create_app(tight, clock=clock, database=Database(engine, sessionmaker))
    transport = httpx.ASGITransport(app=app, client=(client_ip, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as browser:
        answers = [(await get(browser, "/signin")).status_code for _ in range(3)]
    await app.state.runtime.shared.close()
    assert answers == [200, 200, 429]


async def test_sign_in_returns_to_the_page_asked_for_but_never_to_another_site(client, factories):
    patient = await factories.patient()
    bounced = await get(client, "/doctors?q=smith")
    assert bounced.headers["location"] == "/signin?next=/doctors%3Fq%3Dsmith"
    page = await get(client, bounced.headers["location"])
    assert 'name="next" value="/doctors?q=smith"' in page.text
    back = await post_form(
        client,
        "/signin",
        {"email": patient.email, "password": PASSWORD, "next": "/doctors?q=smith"},
    )
    assert back.headers["location"] == "/doctors?q=smith"

    client.cookies.clear()
    for elsewhere in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        response = await post_form(
            client, "/signin", {"email": patient.email, "password": PASSWORD, "next": elsewhere}
        )
        assert response.headers["location"] == "/appointments", elsewhere
        client.cookies.clear()


async def test_the_web_manifest_makes_the_portal_installable(client):
    response = await client.get("/static/manifest.webmanifest")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/manifest+json")
    manifest = response.json()
    assert manifest["start_url"] == "/" and manifest["display"] == "standalone"
    sizes = {icon["sizes"] for icon in manifest["icons"]}
    assert {"192x192", "512x512"} <= sizes
    for icon in manifest["icons"]:
        assert (await client.get(icon["src"])).status_code == 200
    page = await get(client, "/")
    assert '<link rel="manifest" href="/static/manifest.webmanifest">' in page.text
