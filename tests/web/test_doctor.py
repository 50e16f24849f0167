"""The doctor dashboard over HTTP: schedule, outcomes, cancelling, the availability editor."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from ehass.appointments.models import Status
from ehass.availability.models import WeeklyWindow
from tests.web.support import csrf_of, get, post_form, sign_in

WEEKLY = {
    "mon": "09:00-12:00, 13:00-17:00",
    "tue": "09:00-17:00",
    "wed": "",
    "thu": "",
    "fri": "",
    "sat": "",
    "sun": "",
}


async def test_todays_schedule_names_the_patients_and_records_outcomes(
    client, factories, clock, session
):
    doctor = await factories.doctor()
    ada = await factories.patient(name="Ada Patient")
    started = await factories.appointment(
        patient=ada,
        doctor=doctor,
        at=datetime(2026, 11, 30, 11, 30, tzinfo=UTC),
        reason="sore throat",
    )
    later = await factories.appointment(
        patient=await factories.patient(name="Bo Later"),
        doctor=doctor,
        at=datetime(2026, 11, 30, 15, tzinfo=UTC),
    )
    await sign_in(client, doctor)
    page = await get(client, "/doctor/schedule")
    assert page.status_code == 200
    assert "Ada Patient" in page.text and "sore throat" in page.text and "Bo Later" in page.text
    assert f"/doctor/appointments/{started.id}/outcome" in page.text
    assert f"/doctor/appointments/{later.id}/outcome" not in page.text  # not started yet

    done = await client.post(
        f"/doctor/appointments/{started.id}/outcome",
        data={"status": "no_show", "csrf_token": csrf_of(page)},
    )
    assert done.status_code == 303
    await session.refresh(started)
    assert started.status == Status.NO_SHOW

    confirm = await get(client, f"/doctor/appointments/{later.id}/cancel")
    assert "Bo Later" in confirm.text
    cancelled = await client.post(
        f"/doctor/appointments/{later.id}/cancel", data={"csrf_token": csrf_of(confirm)}
    )
    assert cancelled.status_code == 303
    await session.refresh(later)
    assert later.status == Status.CANCELLED


async def test_the_editor_shows_the_current_hours(client, factories):
    doctor = await factories.doctor(timezone="Europe/Berlin")
    await sign_in(client, doctor)
    page = await get(client, "/doctor/availability")
    assert page.status_code == 200
    assert 'id="mon" name="mon" type="text" value="09:00-17:00"' in page.text
    assert "<option selected>Europe/Berlin</option>" in page.text


async def test_preview_saves_nothing_and_save_replaces_the_hours(client, factories, session):
    doctor = await factories.doctor()
    await sign_in(client, doctor)
    form = {"timezone": "UTC", "slot_minutes": "60", "overrides": "2026-12-01: off", **WEEKLY}
    preview = await post_form(client, "/doctor/availability", {**form, "action": "preview"})
    assert preview.status_code == 200
    assert "Preview: free times in the next 7 days" in preview.text
    assert "Mon 30 Nov</strong>: 4 slots, 13:00 to 17:00" in preview.text
    assert "Tue 01 Dec" not in preview.text  # the day off
    assert (
        await session.scalar(
            select(WeeklyWindow.id).where(
                WeeklyWindow.doctor_id == doctor.doctor.id, WeeklyWindow.weekday == 4
            )
        )
        is not None
    )  # Friday still open: nothing saved

    saved = await post_form(client, "/doctor/availability", {**form, "action": "save"})
    assert saved.status_code == 303
    page = await get(client, saved.headers["location"])
    assert "Your availability is saved." in page.text
    assert 'value="09:00-12:00, 13:00-17:00"' in page.text
    assert "2026-12-01: off" in page.text


async def test_saving_hours_that_leave_bookings_outside_asks_first(client, factories, session):
    doctor = await factories.doctor()
    patient = await factories.patient(name="Cleo Conflict")
    await factories.appointment(
        patient=patient, doctor=doctor, at=datetime(2026, 12, 4, 10, tzinfo=UTC)
    )
    await sign_in(client, doctor)
    form = {"timezone": "UTC", "slot_minutes": "30", "overrides": "", **WEEKLY}
    first = await post_form(client, "/doctor/availability", {**form, "action": "save"})
    assert first.status_code == 200  # not saved: the conflict is shown first
    assert "1 booked appointment falls outside these hours" in first.text
    assert "Cleo Conflict" in first.text
    assert "Save anyway" in first.text
    again = await client.post(
        "/doctor/availability",
        data={
            **form,
            "action": "save",
            "confirm_conflicts": first.text.split('name="confirm_conflicts" value="')[1].split('"')[
                0
            ],
            "csrf_token": csrf_of(first),
        },
    )
    assert again.status_code == 303


async def test_malformed_hours_are_errors_beside_their_fields(client, factories):
    doctor = await factories.doctor()
    await sign_in(client, doctor)
    form = {
        **WEEKLY,
        "tue": "nine to five",
        "timezone": "Mars/Olympus",
        "slot_minutes": "30",
        "overrides": "Christmas: off",
        "action": "save",
    }
    refused = await post_form(client, "/doctor/availability", form)
    assert refused.status_code == 422
    assert 'id="tue-error"' in refused.text and 'value="nine to five"' in refused.text
    assert 'id="timezone-error"' in refused.text
    assert "Line 1: write a date" in refused.text

    overlapping = await post_form(
        client,
        "/doctor/availability",
        {
            **WEEKLY,
            "mon": "09:00-12:00, 11:00-13:00",
            "timezone": "UTC",
            "slot_minutes": "30",
            "overrides": "",
            "action": "save",
        },
    )
    assert overlapping.status_code == 422
    assert "mon:" in overlapping.text
