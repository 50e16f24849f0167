"""The forgotten-password and email-verification pages, following the links of real mail."""

from __future__ import annotations

from sqlalchemy import select

from ehass.users.models import User
from tests.factories import PASSWORD
from tests.recovery.support import mail_to, token_in
from tests.web.support import csrf_of, get, post_form, sign_in

NEW_PASSWORD = "a brand new passphrase for 2027"


async def test_forgot_password_sends_a_link_that_sets_a_new_password(
    client, factories, worker, smtp
):
    patient = await factories.patient()
    signin = await get(client, "/signin")
    assert 'href="/forgot-password"' in signin.text

    asked = await post_form(client, "/forgot-password", {"email": patient.email})

    assert asked.status_code == 200
    assert "If an account uses that address" in asked.text
    [mail] = await mail_to(worker, smtp, patient.email)
    token = token_in(mail, "reset-password")
    form = await get(client, f"/reset-password?token={token}")
    assert form.status_code == 200
    assert f'name="token" value="{token}"' in form.text
    done = await client.post(
        "/reset-password",
        data={"token": token, "password": NEW_PASSWORD, "csrf_token": csrf_of(form)},
        headers={"Accept": "text/html"},
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/signin?reset=1"
    assert "Your new password is set" in (await get(client, "/signin?reset=1")).text
    await sign_in(client, patient, NEW_PASSWORD)

    form = await get(client, f"/reset-password?token={token}")
    again = await client.post(
        "/reset-password",
        data={"token": token, "password": NEW_PASSWORD, "csrf_token": csrf_of(form)},
        headers={"Accept": "text/html"},
    )
    assert again.status_code == 400
    assert 'href="/forgot-password"' in again.text  # ask for a new link


async def test_an_unknown_address_gets_the_same_page_and_no_mail(client, worker, smtp):
    asked = await post_form(client, "/forgot-password", {"email": "nobody@example.org"})

    assert asked.status_code == 200
    assert "If an account uses that address" in asked.text
    await worker.run_once()
    assert smtp.inbox.messages == []


async def test_a_weak_new_password_is_refused_beside_the_field_and_the_link_still_works(
    client, factories, worker, smtp
):
    patient = await factories.patient()
    await post_form(client, "/forgot-password", {"email": patient.email})
    [mail] = await mail_to(worker, smtp, patient.email)
    token = token_in(mail, "reset-password")
    form = await get(client, f"/reset-password?token={token}")

    weak = await client.post(
        "/reset-password",
        data={"token": token, "password": "password", "csrf_token": csrf_of(form)},
        headers={"Accept": "text/html"},
    )

    assert weak.status_code == 422
    assert 'id="password-error"' in weak.text
    assert 'value="password"' not in weak.text  # never sent back
    assert f'name="token" value="{token}"' in weak.text


async def test_the_verification_link_verifies_only_when_its_button_is_pressed(
    client, factories, session, worker, smtp
):
    # Registering through the pages sends the verification link.
    page = await get(client, "/signup")
    email = "new.patient@example.org"
    signed_up = await client.post(
        "/signup",
        data={
            "name": "New Patient",
            "email": email,
            "password": PASSWORD,
            "date_of_birth": "1990-04-01",
            "csrf_token": csrf_of(page),
        },
        headers={"Accept": "text/html"},
    )
    assert signed_up.status_code == 303
    [mail] = await mail_to(worker, smtp, email)
    token = token_in(mail, "verify-email")

    opened = await get(client, f"/verify-email?token={token}")

    assert opened.status_code == 200
    user = await session.scalar(
        select(User).where(User.email == email).execution_options(populate_existing=True)
    )
    assert user is not None and user.email_verified is False  # opening the link is not enough
    verified = await client.post(
        "/verify-email",
        data={"token": token, "csrf_token": csrf_of(opened)},
        headers={"Accept": "text/html"},
    )
    assert verified.status_code == 200
    assert "Your email address is verified" in verified.text
    await session.refresh(user)
    assert user.email_verified is True
    reused = await client.post(
        "/verify-email",
        data={"token": token, "csrf_token": csrf_of(opened)},
        headers={"Accept": "text/html"},
    )
    assert reused.status_code == 400


async def test_the_recovery_forms_refuse_a_missing_csrf_token(client, factories):
    patient = await factories.patient()
    await get(client, "/forgot-password")
    refused = await client.post(
        "/forgot-password", data={"email": patient.email}, headers={"Accept": "text/html"}
    )
    assert refused.status_code == 403
