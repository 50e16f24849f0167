"""The waitlist: a freed slot goes to the first patient in line as a hold and a message;
if they let it run out, the next patient gets it."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ehass.core.clock import FrozenClock
from ehass.notifications.models import Notification, NotificationKind
from ehass.notifications.worker import Worker
from tests.factories import Factories
from tests.notifications.conftest import SmtpServer
from tests.problems import assert_problem

DAY = date(2026, 12, 3)
AT = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


async def _one_slot_doctor(factories: Factories) -> Any:
    """A doctor whose only working time in the week of DAY is 10:00-10:30 on DAY."""
    return await factories.doctor(weekly={}, overrides={DAY: [(time(10), time(10, 30))]})


async def _join(api: Any, token: str, doctor: Any, **body: Any) -> Any:
    return await api(
        "POST",
        "/waitlist",
        token=token,
        json={
            "doctor_id": doctor.doctor.id,
            "from_date": "2026-12-01",
            "to_date": "2026-12-05",
            **body,
        },
    )


async def _status(api: Any, token: str) -> list[str]:
    response = await api("GET", "/waitlist", token=token)
    assert response.status_code == 200
    return [entry["status"] for entry in response.json()["items"]]


async def _cancelled_slot_with_two_waiting(
    api: Any, factories: Factories
) -> tuple[Any, str, str, Any]:
    doctor = await _one_slot_doctor(factories)
    booker = await factories.patient()
    appointment = await factories.appointment(patient=booker, doctor=doctor, at=AT)
    first = await factories.patient(name="First In Line")
    second = await factories.patient(name="Second In Line")
    first_token, second_token = await factories.token(first), await factories.token(second)
    assert (await _join(api, first_token, doctor)).status_code == 201
    assert (await _join(api, second_token, doctor)).status_code == 201
    cancel = await api(
        "DELETE", f"/appointments/{appointment.id}", token=await factories.token(booker)
    )
    assert cancel.status_code == 200
    return doctor, first_token, second_token, first


async def test_a_cancelled_slot_is_held_for_the_first_in_line_who_is_told_and_books_it(
    api: Any,
    factories: Factories,
    session: AsyncSession,
    worker: Worker,
    smtp: SmtpServer,
) -> None:
    doctor, first_token, second_token, first = await _cancelled_slot_with_two_waiting(
        api, factories
    )

    assert await _status(api, first_token) == ["offered"]
    assert await _status(api, second_token) == ["waiting"]
    taken = await api(
        "POST",
        "/appointments",
        token=second_token,
        json={"doctor_id": doctor.doctor.id, "scheduled_at": AT.isoformat()},
    )
    assert assert_problem(taken, 409)["type"] == "/problems/slot-held"

    await worker.run_once()
    [offer] = [m for m in smtp.inbox.to(first.email) if "opened up" in m["Subject"]]
    text = offer.get_body(preferencelist=("plain",)).get_content()
    assert "Thursday 03 December 2026 at 10:00 (UTC)" in text
    hold_id = int(text.split("hold_id=")[1].split()[0])

    booked = await api(
        "POST",
        "/appointments",
        token=first_token,
        json={"doctor_id": doctor.doctor.id, "scheduled_at": AT.isoformat(), "hold_id": hold_id},
    )
    assert booked.status_code == 201, booked.text
    assert await _status(api, first_token) == []  # booked: no longer waiting
    kinds = (await session.scalars(select(Notification.kind))).all()
    assert NotificationKind.WAITLIST_OFFER in kinds


async def test_an_offer_left_to_run_out_goes_to_the_next_in_line_once(
    api: Any, factories: Factories, worker: Worker, clock: FrozenClock
) -> None:
    doctor, first_token, second_token, _ = await _cancelled_slot_with_two_waiting(api, factories)

    clock.advance(minutes=5)
    await worker.run_waitlist()

    assert await _status(api, first_token) == ["waiting"]
    assert await _status(api, second_token) == ["offered"]

    clock.advance(minutes=5)
    await worker.run_waitlist()

    # Both let this slot go: nobody is offered it again, and it is free for anyone.
    assert await _status(api, first_token) == ["waiting"]
    assert await _status(api, second_token) == ["waiting"]
    availability = await api(
        "GET", f"/doctors/{doctor.doctor.id}/availability?from=2026-12-03T00:00:00Z"
    )
    assert [s["start"] for s in availability.json()["slots"]] == ["2026-12-03T10:00:00Z"]


async def test_new_working_hours_are_offered_to_waiting_patients(
    api: Any, factories: Factories, worker: Worker
) -> None:
    doctor = await factories.doctor(weekly={}, overrides={DAY: []})
    token = await factories.token(await factories.patient())
    assert (await _join(api, token, doctor)).status_code == 201
    await worker.run_waitlist()
    assert await _status(api, token) == ["waiting"]

    replaced = await api(
        "POST",
        f"/doctors/{doctor.doctor.id}/availability",
        token=await factories.token(doctor),
        json={
            "timezone": "UTC",
            "slot_minutes": 30,
            "weekly": [],
            "overrides": [{"date": "2026-12-04", "windows": [{"start": "14:00", "end": "15:00"}]}],
        },
    )
    assert replaced.status_code == 200, replaced.text
    await worker.run_waitlist()

    assert await _status(api, token) == ["offered"]


async def test_joining_checks_the_range_and_the_caller(
    api: Any, factories: Factories, clock: FrozenClock
) -> None:
    doctor = await _one_slot_doctor(factories)
    token = await factories.token(await factories.patient())

    assert_problem(
        await _join(api, token, doctor, to_date="2026-11-30", from_date="2026-12-02"), 422
    )
    assert_problem(
        await _join(api, token, doctor, from_date="2026-11-01", to_date="2026-11-02"), 422
    )
    assert_problem(await _join(api, token, doctor, to_date="2027-03-01"), 422)
    assert_problem(await _join(api, token, doctor, from_date="12/01/2026"), 422)
    assert_problem(await _join(api, await factories.token(doctor), doctor), 403)
    assert_problem(await api("POST", "/waitlist", json={}), 401)
    assert (await _join(api, token, doctor)).status_code == 201
    again = await _join(api, token, doctor)
    assert assert_problem(again, 409)["type"] == "/problems/already-waiting"


async def test_leaving_the_waitlist(api: Any, factories: Factories) -> None:
    doctor = await _one_slot_doctor(factories)
    token = await factories.token(await factories.patient())
    entry = (await _join(api, token, doctor)).json()
    stranger = await factories.token(await factories.patient())

    assert_problem(await api("DELETE", f"/waitlist/{entry['id']}", token=stranger), 404)
    assert (await api("DELETE", f"/waitlist/{entry['id']}", token=token)).status_code == 204
    assert await _status(api, token) == []
    assert (await _join(api, token, doctor)).status_code == 201  # may join again


async def test_an_offer_that_ran_out_frees_the_slot_even_before_the_worker_passes(
    api: Any, factories: Factories, clock: FrozenClock
) -> None:
    doctor, first_token, _, _ = await _cancelled_slot_with_two_waiting(api, factories)
    clock.advance(minutes=5)
    passer_by = await factories.token(await factories.patient())

    hold = await api(
        "POST",
        "/holds",
        token=passer_by,
        json={"doctor_id": doctor.doctor.id, "scheduled_at": AT.isoformat()},
    )

    assert hold.status_code == 201, hold.text
    assert await _status(api, first_token) == ["waiting"]
