"""Everyone's own profile page: details, password, data download."""

from __future__ import annotations

import json

from tests.factories import PASSWORD
from tests.web.support import get, post_form, sign_in

NEW_PASSWORD = "another long unusual passphrase"


async def test_details_are_changed_and_refusals_keep_what_was_typed(client, factories):
    patient = await factories.patient()
    other = await factories.patient()
    await sign_in(client, patient)
    saved = await post_form(
        client,
        "/profile",
        {"name": "Renamed Person", "email": "renamed@example.org"},
        from_page="/profile",
    )
    assert saved.status_code == 303
    page = await get(client, saved.headers["location"])
    assert "Your details are saved." in page.text and 'value="Renamed Person"' in page.text

    taken = await post_form(
        client, "/profile", {"name": "Renamed Again", "email": other.email}, from_page="/profile"
    )
    assert taken.status_code == 422
    assert "already exists" in taken.text and 'value="Renamed Again"' in taken.text


async def test_a_password_change_needs_the_current_one_and_keeps_this_session(client, factories):
    doctor = await factories.doctor()
    await sign_in(client, doctor)
    wrong = await post_form(
        client,
        "/profile/password",
        {"current_password": "not it at all", "password": NEW_PASSWORD},
        from_page="/profile",
    )
    assert wrong.status_code == 422
    assert "current_password is missing or wrong" in wrong.text
    changed = await post_form(
        client,
        "/profile/password",
        {"current_password": PASSWORD, "password": NEW_PASSWORD},
        from_page="/profile",
    )
    assert changed.status_code == 303
    assert (await get(client, "/doctor/schedule")).status_code == 200  # still signed in


async def test_my_data_downloads_as_json(client, factories):
    patient = await factories.patient()
    await sign_in(client, patient)
    response = await get(client, "/profile/export")
    assert response.status_code == 200
    assert "attachment" in response.headers["content-disposition"]
    assert json.loads(response.text)["user"]["email"] == patient.email
