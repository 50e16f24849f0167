"""Journeys in a real browser (Chromium via Playwright) against real `ehass serve` processes."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.factories import PASSWORD
from tests.web.browser import DESKTOP, Site, require_axe, screenshot, sign_in


def _tag() -> str:
    return uuid.uuid4().hex[:6]


def _next_week() -> str:
    return (datetime.now(UTC).date() + timedelta(days=7)).isoformat()


def _expect():
    from playwright.async_api import expect

    return expect


async def test_a_patient_signs_up_finds_a_doctor_books_moves_and_cancels(site: Site, new_context):
    expect = _expect()
    name = f"Dr Journey {_tag()}"
    await site.seed(
        lambda f: f.doctor(name=name, specialty="Cardiology", timezone="America/New_York")
    )
    page = await (await new_context(timezone_id="Europe/Berlin")).new_page()

    await page.goto(site.url("/signup"))
    await page.get_by_label("Full name").fill("Pia Journey")
    await page.get_by_label("Email address").fill(f"pia-{_tag()}@example.org")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_label("Date of birth").fill("1990-04-01")
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_text("Your account is ready")).to_be_visible()

    await page.get_by_label("Name", exact=True).fill(name.split()[-1])
    await page.get_by_role("button", name="Search").click()
    await expect(page.get_by_role("heading", name=name)).to_be_visible()
    await expect(page.get_by_text("Next free:")).to_be_visible()
    await page.get_by_role("link", name=f"See free times of {name}").click()
    await expect(page.get_by_text("the doctor works in America/New_York")).to_be_visible()
    await expect(page.get_by_text("Times are shown in Europe/Berlin")).to_be_visible()

    await page.get_by_role("link", name="Next week").click()
    first = page.locator(".slot label").first
    assert "doctor's time" in (await first.text_content() or "")
    await first.click()
    await page.get_by_label("Reason for the visit").fill("Chest pain when running")
    await page.get_by_role("button", name="Book this time").click()
    await expect(page.get_by_text("Your appointment is booked.")).to_be_visible()
    await expect(page.get_by_text("Chest pain when running")).to_be_visible()
    await expect(page.get_by_text(name)).to_be_visible()

    await page.get_by_role("link", name="Reschedule").click()
    await page.get_by_role("link", name="Next week").click()
    await page.locator(".slot label").nth(3).click()
    await page.get_by_role("button", name="Move appointment").click()
    await expect(page.get_by_text("Your appointment has been moved.")).to_be_visible()

    await page.get_by_role("link", name="Cancel").click()
    await expect(page.get_by_text("up to 24 hours before they start")).to_be_visible()
    await page.get_by_role("button", name="Yes, cancel it").click()
    await expect(page.get_by_text("Your appointment is cancelled.")).to_be_visible()
    await expect(page.get_by_text("No upcoming appointments.")).to_be_visible()


async def test_a_doctor_sets_availability_and_sees_a_booking_appear(site: Site, new_context):
    expect = _expect()
    doctor = await site.seed(lambda f: f.doctor(weekly={}))
    patient = await site.seed(lambda f: f.patient(name=f"Pat Booker {_tag()}"))
    page = await (await new_context(viewport=DESKTOP)).new_page()
    await sign_in(page, site, doctor.email)
    await expect(page.get_by_role("heading", name="Today")).to_be_visible()

    await page.get_by_role("link", name="Availability").click()
    for day in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"):
        await page.get_by_label(day).fill("00:00-23:30")
    await page.get_by_label("Length of one appointment").select_option("30")
    await page.get_by_role("button", name="Preview").click()
    await expect(page.get_by_text("Preview: free times in the next 7 days")).to_be_visible()
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_text("Your availability is saved.")).to_be_visible()

    await page.get_by_role("link", name="Schedule").click()
    await page.get_by_role("link", name="Next 7 days").click()
    await expect(page.get_by_text("No appointments in the next 7 days.")).to_be_visible()
    await expect(page.locator("[data-live-schedule][data-live='on']")).to_have_count(1)

    async with httpx.AsyncClient(base_url=site.url("")) as api:
        login = await api.post(
            "/api/v1/auth/login", json={"email": patient.email, "password": PASSWORD}
        )
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        free = await api.get(f"/api/v1/doctors/{doctor.doctor.id}/availability")
        start = free.json()["slots"][1]["start"]
        booked = await api.post(
            "/api/v1/appointments",
            headers=headers,
            json={"doctor_id": doctor.doctor.id, "scheduled_at": start, "reason": "Follow-up"},
        )
        assert booked.status_code == 201, booked.text

    await expect(page.get_by_text("A new booking has arrived.")).to_be_visible()  # no reload
    await page.get_by_role("link", name="Show the updated schedule").click()
    await expect(page.get_by_role("cell", name=patient.name, exact=True)).to_be_visible()
    await expect(page.get_by_role("cell", name="Follow-up", exact=True)).to_be_visible()


async def test_an_admin_deactivates_a_user_who_is_then_signed_out(site: Site, new_context):
    expect = _expect()
    admin = await site.seed(lambda f: f.admin())
    patient = await site.seed(lambda f: f.patient(name=f"Dee Activated {_tag()}"))
    theirs = await (await new_context()).new_page()
    await sign_in(theirs, site, patient.email)
    await expect(theirs.get_by_role("heading", name="My appointments")).to_be_visible()

    page = await (await new_context(viewport=DESKTOP)).new_page()
    await sign_in(page, site, admin.email)
    await page.get_by_label("Name or email").fill(patient.email)
    await page.get_by_role("button", name="Filter").click()
    await page.get_by_role("link", name=f"Deactivate {patient.name}").click()
    await expect(page.get_by_text("signed out everywhere")).to_be_visible()
    await page.get_by_role("button", name="Yes, deactivate").click()
    await expect(page.get_by_text("deactivated and signed out")).to_be_visible()

    await theirs.reload()
    await expect(theirs.get_by_role("heading", name="Sign in")).to_be_visible()
    assert "/signin" in theirs.url


async def test_a_slot_booked_in_one_browser_vanishes_live_from_another(site: Site, new_context):
    expect = _expect()
    doctor = await site.seed(lambda f: f.doctor())
    first = await site.seed(lambda f: f.patient())
    second = await site.seed(lambda f: f.patient())
    week = f"/doctors/{doctor.doctor.id}?week={_next_week()}"
    # With Redis the two pages are served by different processes.
    pages = []
    for index, patient in enumerate((first, second)):
        page = await (await new_context()).new_page()
        await sign_in(page, site, patient.email, server=index)
        await page.goto(site.url(week, server=index))
        await expect(page.locator("[data-live='on']")).to_have_count(1)
        pages.append(page)
    booker, watcher = pages

    slot = booker.locator(".slot").first
    start = await slot.get_attribute("data-slot")
    await expect(watcher.locator(f"[data-slot='{start}']")).to_have_count(1)
    await slot.locator("label").click()
    await booker.get_by_role("button", name="Book this time").click()
    await expect(booker.get_by_text("Your appointment is booked.")).to_be_visible()

    await expect(watcher.locator(f"[data-slot='{start}']")).to_have_count(0)
    await expect(watcher.locator("#live-status")).to_contain_text("was just taken")


async def test_booking_with_the_keyboard_alone(site: Site, new_context):
    expect = _expect()
    doctor = await site.seed(lambda f: f.doctor())
    patient = await site.seed(lambda f: f.patient())
    page = await (await new_context()).new_page()
    await page.goto(site.url("/signin"))
    await page.keyboard.press("Tab")  # the skip link comes first and is visible on focus
    skip = page.get_by_role("link", name="Skip to main content")
    await expect(skip).to_be_focused()
    assert await skip.evaluate("e => e.getBoundingClientRect().left >= 0")
    await page.keyboard.press("Enter")
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Email address")).to_be_focused()
    await page.keyboard.type(patient.email)
    await page.keyboard.press("Tab")
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="My appointments")).to_be_visible()

    await page.goto(site.url(f"/doctors/{doctor.doctor.id}?week={_next_week()}"))
    for _ in range(40):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.type === 'radio'"):
            break
    else:
        pytest.fail("no free time could be reached with Tab")
    focused_label = page.locator(".slot input:focus + label")
    outline = await focused_label.evaluate("e => getComputedStyle(e).outlineStyle")
    assert outline not in ("", "none"), "the focused time has no visible focus indicator"
    await page.keyboard.press("ArrowRight")  # the next time, chosen
    chosen = await page.evaluate("document.activeElement.value")
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Reason for the visit")).to_be_focused()
    await page.keyboard.type("Booked without a mouse")
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name="Book this time")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.get_by_text("Your appointment is booked.")).to_be_visible()
    await expect(page.get_by_text("Booked without a mouse")).to_be_visible()
    assert chosen.endswith("Z")


SHOT_NAMES = {"/": "home"}


def _shot_name(path: str) -> str:
    """`/doctors/12` -> `doctors-id`, `/appointments/3/cancel` -> `appointments-id-cancel`."""
    parts = path.split("?")[0].strip("/").split("/")
    return "-".join("id" if part.isdigit() else part for part in parts)


async def test_no_serious_accessibility_violations_on_the_main_pages(site: Site, new_context):
    axe = require_axe()
    admin = await site.seed(lambda f: f.admin())
    doctor = await site.seed(
        lambda f: f.doctor(name="Dr Rosalind Franklin", specialty="Cardiology")
    )
    patient = await site.seed(lambda f: f.patient(name="Pat Patient"))
    soon = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=3)
    appointment = await site.seed(
        lambda f: f.appointment(patient=patient, doctor=doctor, at=soon, reason="Check-up")
    )
    pages = {
        None: ["/", "/signin", "/signup", "/forgot-password", "/reset-password?token=x"],
        patient: [
            "/doctors",
            f"/doctors/{doctor.doctor.id}",
            "/appointments",
            f"/appointments/{appointment.id}/cancel",
            "/profile",
        ],
        doctor: ["/doctor/schedule?span=week", "/doctor/availability"],
        admin: ["/admin/users", "/admin/audit", "/admin/health"],
    }
    failures = {}
    for person, paths in pages.items():
        # bypass_csp lets the test inject axe-core; the journeys above run under the CSP.
        page = await (await new_context(bypass_csp=True)).new_page()
        if person is not None:
            await sign_in(page, site, person.email)
        for path in paths:
            await page.goto(site.url(path))
            await page.add_script_tag(content=axe)
            result = await page.evaluate(
                "async () => await axe.run(document, {runOnly: {type: 'tag', values: "
                "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']}})"
            )
            serious = [
                {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]]}
                for v in result["violations"]
                if v["impact"] in ("serious", "critical")
            ]
            if serious:
                failures[path] = serious
            await screenshot(page, SHOT_NAMES.get(path.split("?")[0], "") or _shot_name(path))
    assert not failures, json.dumps(failures, indent=2)


async def test_a_patient_who_forgot_their_password_resets_it_from_the_email(
    site: Site, new_context
):
    expect = _expect()
    tag = _tag()
    patient = await site.seed(lambda f: f.patient(email=f"forgot-{tag}@example.org"))
    page = await (await new_context()).new_page()

    await page.goto(site.url("/signin"))
    await page.get_by_role("link", name="Forgot your password?").click()
    await page.get_by_label("Email address").fill(patient.email)
    await page.get_by_role("button", name="Send me a link").click()
    await expect(page.get_by_text("If an account uses that address")).to_be_visible()

    link = await _link_mailed_to(site, patient.email, "reset-password")
    await page.goto(link.replace("http://127.0.0.1:8000", site.url("")))
    await page.get_by_label("New password").fill("a brand new passphrase for 2027")
    await page.get_by_role("button", name="Set my password").click()
    await expect(page.get_by_text("Your new password is set")).to_be_visible()
    await page.get_by_label("Email address").fill(patient.email)
    await page.get_by_label("Password").fill("a brand new passphrase for 2027")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="My appointments")).to_be_visible()


async def _link_mailed_to(site: Site, address: str, page: str) -> str:
    import asyncio
    import re

    for _ in range(150):  # the servers' workers poll every 0.2 s
        for message in site.inbox.to(address):
            text = message.get_body(preferencelist=("plain",)).get_content()
            if found := re.search(rf"http://\S+/{page}\?token=[A-Za-z0-9_-]+", text):
                return found.group(0)
        await asyncio.sleep(0.1)
    raise AssertionError(f"no /{page} link mailed to {address}\n{site.logs()}")
