"""The patient portal over HTTP: find, book, see, move and cancel."""

from __future__ import annotations

from datetime import UTC, datetime, time

from sqlalchemy import select

from ehass.appointments.models import Appointment, Status
from tests.web.support import csrf_of, get, post_form, sign_in

# The suite's clock stands at Monday 2026-11-30 12:00 UTC.
WEDNESDAY_10 = "2026-12-02T10:00:00Z"  # beyond the 24-hour notice


async def _signed_in_patient(client, factories):
    patient = await factories.patient()
    await sign_in(client, patient)
    return patient


async def test_find_a_doctor_by_name_and_specialty_with_the_next_free_time(client, factories):
    await factories.doctor(name="Dr Hilda Heart", specialty="Cardiology")
    await factories.doctor(name="Dr Nils Nerve", specialty="Neurology")
    await _signed_in_patient(client, factories)

    by_name = await get(client, "/doctors", params={"q": "hilda"})
    assert "Dr Hilda Heart" in by_name.text and "Dr Nils Nerve" not in by_name.text
    assert "Next free: " in by_name.text
    assert "Mon 30 Nov 2026, 12:00" in by_name.text

    by_specialty = await get(client, "/doctors", params={"specialty": "neurology"})
    assert "Dr Nils Nerve" in by_specialty.text and "Dr Hilda Heart" not in by_specialty.text
    assert '<option value="Cardiology">' in by_specialty.text


async def test_the_week_is_shown_in_the_patients_zone_with_the_doctors_beside_it(client, factories):
    doctor = await factories.doctor(timezone="America/New_York")
    await _signed_in_patient(client, factories)
    client.cookies.set("ehass_tz", "Europe/Berlin")
    page = await get(client, f"/doctors/{doctor.doctor.id}")
    assert page.status_code == 200
    # 09:00 in New York on Tuesday 1 December is 15:00 in Berlin.
    assert 'value="2026-12-01T14:00:00Z"' in page.text
    assert '15:00 <span class="other-zone">(09:00 doctor\'s time)</span>' in page.text
    assert "the doctor works in <strong>America/New_York</strong>" in page.text


async def test_book_see_reschedule_and_cancel(client, factories, session):
    doctor = await factories.doctor()
    await _signed_in_patient(client, factories)
    week = f"/doctors/{doctor.doctor.id}"

    booked = await post_form(
        client,
        "/appointments",
        {"doctor_id": str(doctor.doctor.id), "scheduled_at": WEDNESDAY_10, "reason": "a cough"},
        from_page=week,
    )
    assert booked.status_code == 303, booked.text
    mine = await get(client, booked.headers["location"])
    assert "Your appointment is booked." in mine.text
    assert "Wed 02 Dec 2026, 10:00" in mine.text and "a cough" in mine.text
    appointment = await session.scalar(select(Appointment).where(Appointment.reason.is_not(None)))
    assert appointment is not None

    reschedule_page = await get(client, f"{week}?reschedule={appointment.id}")
    assert f'action="/appointments/{appointment.id}/reschedule"' in reschedule_page.text
    moved = await client.post(
        f"/appointments/{appointment.id}/reschedule",
        data={"scheduled_at": "2026-12-03T11:30:00Z", "csrf_token": csrf_of(reschedule_page)},
    )
    assert moved.status_code == 303, moved.text
    assert "Thu 03 Dec 2026, 11:30" in (await get(client, "/appointments")).text

    confirm = await get(client, f"/appointments/{appointment.id}/cancel")
    assert "Yes, cancel it" in confirm.text
    cancelled = await client.post(
        f"/appointments/{appointment.id}/cancel", data={"csrf_token": csrf_of(confirm)}
    )
    assert cancelled.status_code == 303
    after = await get(client, cancelled.headers["location"])
    assert "Your appointment is cancelled." in after.text
    assert "No upcoming appointments." in after.text
    assert "Cancelled" in after.text
    await session.refresh(appointment)
    assert appointment.status == Status.CANCELLED


async def test_a_taken_time_is_refused_on_the_form_with_the_reason_kept(client, factories):
    doctor = await factories.doctor()
    other = await factories.patient()
    await factories.appointment(
        patient=other, doctor=doctor, at=datetime(2026, 12, 2, 10, tzinfo=UTC)
    )
    await _signed_in_patient(client, factories)
    refused = await post_form(
        client,
        "/appointments",
        {"doctor_id": str(doctor.doctor.id), "scheduled_at": WEDNESDAY_10, "reason": "my knee"},
        from_page=f"/doctors/{doctor.doctor.id}",
    )
    assert refused.status_code == 409
    assert "Another appointment holds this time." in refused.text
    assert ">my knee</textarea>" in refused.text
    assert f'value="{WEDNESDAY_10}"' not in refused.text  # no longer offered


async def test_no_time_chosen_is_an_error_beside_the_times(client, factories):
    doctor = await factories.doctor()
    await _signed_in_patient(client, factories)
    refused = await post_form(
        client,
        "/appointments",
        {"doctor_id": str(doctor.doctor.id), "scheduled_at": "", "reason": "x"},
        from_page=f"/doctors/{doctor.doctor.id}",
    )
    assert refused.status_code == 422
    assert 'id="scheduled_at-error">Choose a time.' in refused.text


async def test_the_notice_rule_is_explained_before_the_cancel_button_refuses(client, factories):
    doctor = await factories.doctor(weekly={day: [(time(8), time(17))] for day in range(7)})
    patient = await _signed_in_patient(client, factories)
    soon = await factories.appointment(
        patient=patient, doctor=doctor, at=datetime(2026, 12, 1, 9, tzinfo=UTC)
    )
    mine = await get(client, "/appointments")
    assert "can no longer be moved or cancelled online" in mine.text
    assert f"/appointments/{soon.id}/cancel" not in mine.text
    confirm = await get(client, f"/appointments/{soon.id}/cancel")
    assert "cannot be cancelled online" in confirm.text
    assert "Yes, cancel it" not in confirm.text
    refused = await client.post(
        f"/appointments/{soon.id}/cancel", data={"csrf_token": csrf_of(confirm)}
    )
    assert refused.status_code == 409
    assert "contact the practice" in refused.text


async def test_someone_elses_appointment_is_not_found(client, factories):
    doctor = await factories.doctor()
    other = await factories.patient()
    theirs = await factories.appointment(
        patient=other, doctor=doctor, at=datetime(2026, 12, 3, 10, tzinfo=UTC)
    )
    await _signed_in_patient(client, factories)
    response = await get(client, f"/appointments/{theirs.id}/cancel")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")


async def test_a_held_time_from_a_waitlist_offer_link_is_offered_and_booked(api, client, factories):
    doctor = await factories.doctor()
    patient = await _signed_in_patient(client, factories)
    hold = await api(
        "POST",
        "/holds",
        token=await factories.token(patient),
        json={"doctor_id": doctor.doctor.id, "scheduled_at": WEDNESDAY_10},
    )
    assert hold.status_code == 201
    page_path = f"/doctors/{doctor.doctor.id}?hold_id={hold.json()['id']}"

    page = await get(client, page_path)

    assert "Held for you until" in page.text
    assert f'id="slot-held" value="{WEDNESDAY_10}" checked' in page.text
    # The held time is not among the free times anyone sees.
    assert f'id="slot-{WEDNESDAY_10}"' not in page.text
    booked = await post_form(
        client,
        "/appointments",
        {"doctor_id": str(doctor.doctor.id), "scheduled_at": WEDNESDAY_10, "reason": ""},
        from_page=page_path,
    )
    assert booked.status_code == 303, booked.text
    after = await api("GET", f"/holds/{hold.json()['id']}", token=await factories.token(patient))
    assert after.json()["status"] == "booked"


async def test_someone_elses_hold_link_is_not_found(api, client, factories):
    doctor = await factories.doctor()
    holder = await factories.patient()
    hold = await api(
        "POST",
        "/holds",
        token=await factories.token(holder),
        json={"doctor_id": doctor.doctor.id, "scheduled_at": WEDNESDAY_10},
    )
    await _signed_in_patient(client, factories)

    page = await get(client, f"/doctors/{doctor.doctor.id}?hold_id={hold.json()['id']}")

    assert page.status_code == 404
