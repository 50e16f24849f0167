"""Booking, moving and cancelling send mail through a real SMTP server, with a calendar
entry that calendar apps update in place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ehass.core.clock import FrozenClock
from ehass.notifications.models import DeliveryStatus, Notification, NotificationKind
from ehass.notifications.worker import Worker
from tests.factories import Factories
from tests.notifications.conftest import SmtpServer, calendar_of

AT = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)  # Thursday, 11:00 in Berlin
REASON = "recurring chest pain"


async def _book(api: Any, token: str, doctor: Any, at: datetime = AT) -> dict[str, Any]:
    response = await api(
        "POST",
        "/appointments",
        token=token,
        json={"doctor_id": doctor.doctor.id, "scheduled_at": at.isoformat(), "reason": REASON},
    )
    assert response.status_code == 201, response.text
    return response.json()


async def _people(factories: Factories) -> tuple[Any, Any, str]:
    doctor = await factories.doctor(timezone="Europe/Berlin", name="Dr Ada Lovelace")
    patient = await factories.patient(name="Grace Hopper")
    return doctor, patient, await factories.token(patient)


def _text(message: Any) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


async def test_a_booking_confirms_to_both_people_with_an_invitation(
    api: Any, factories: Factories, worker: Worker, smtp: SmtpServer
) -> None:
    doctor, patient, token = await _people(factories)
    appointment = await _book(api, token, doctor)

    assert await worker.run_once() == 2

    [to_patient] = smtp.inbox.to(patient.email)
    [to_doctor] = smtp.inbox.to(doctor.email)
    assert to_patient["Subject"] == "Appointment confirmed"
    assert "Dr Ada Lovelace" in _text(to_patient)
    assert "Thursday 03 December 2026 at 11:00 (Europe/Berlin)" in _text(to_patient)
    assert "Grace Hopper" in _text(to_doctor)
    method, calendar = calendar_of(to_patient)
    assert method == "REQUEST"
    assert calendar["METHOD"] == "REQUEST"
    [event] = calendar.walk("VEVENT")
    assert str(event["UID"]) == f"appointment-{appointment['id']}@ehass.localhost"
    assert event["SEQUENCE"] == 0
    assert event.decoded("DTSTART") == AT
    assert event["DTSTART"].params["TZID"] == "Europe/Berlin"
    assert event.decoded("DTEND") == AT + timedelta(minutes=30)
    assert [tz["TZID"] for tz in calendar.walk("VTIMEZONE")] == ["Europe/Berlin"]


async def test_no_message_carries_the_reason_or_the_specialty(
    api: Any, factories: Factories, worker: Worker, smtp: SmtpServer
) -> None:
    doctor = await factories.doctor(specialty="Oncology")
    patient = await factories.patient()
    await _book(api, await factories.token(patient), doctor)

    await worker.run_once()

    assert len(smtp.inbox.messages) == 2
    for message in smtp.inbox.messages:
        raw = message.as_string()
        assert REASON not in raw
        assert "Oncology" not in raw
        assert "Oncology" not in message["Subject"]


async def test_a_move_then_a_cancellation_update_the_same_calendar_event(
    api: Any, factories: Factories, worker: Worker, smtp: SmtpServer
) -> None:
    doctor, patient, token = await _people(factories)
    appointment = await _book(api, token, doctor)
    moved_to = AT + timedelta(hours=2)
    path = f"/appointments/{appointment['id']}"
    response = await api("PUT", path, token=token, json={"scheduled_at": moved_to.isoformat()})
    assert response.status_code == 200, response.text
    assert (await api("DELETE", path, token=token)).status_code == 200

    await worker.run_once()

    mails = smtp.inbox.to(patient.email)
    assert [m["Subject"] for m in mails] == [
        "Appointment confirmed",
        "Appointment moved",
        "Appointment cancelled",
    ]
    uids, sequences, methods = set(), [], []
    for message in mails:
        method, calendar = calendar_of(message)
        [event] = calendar.walk("VEVENT")
        uids.add(str(event["UID"]))
        sequences.append(event["SEQUENCE"])
        methods.append(method)
    assert uids == {f"appointment-{appointment['id']}@ehass.localhost"}
    assert sequences == [0, 1, 2]
    assert methods == ["REQUEST", "REQUEST", "CANCEL"]
    moved_event = calendar_of(mails[1])[1].walk("VEVENT")[0]
    assert moved_event.decoded("DTSTART") == moved_to
    assert "from Thursday 03 December 2026 at 11:00" in _text(mails[1])
    assert "to Thursday 03 December 2026 at 13:00" in _text(mails[1])
    assert calendar_of(mails[2])[1].walk("VEVENT")[0]["STATUS"] == "CANCELLED"
    assert "cancelled by the patient" in _text(mails[2])
    assert len({m["Message-ID"] for m in smtp.inbox.messages}) == len(smtp.inbox.messages)


async def test_each_message_names_the_request_that_caused_it(
    api: Any, factories: Factories, worker: Worker, smtp: SmtpServer
) -> None:
    doctor, _patient, token = await _people(factories)
    response = await api(
        "POST",
        "/appointments",
        token=token,
        headers={"X-Request-ID": "booking-request-42"},
        json={"doctor_id": doctor.doctor.id, "scheduled_at": AT.isoformat()},
    )
    assert response.status_code == 201

    await worker.run_once()

    assert {m["X-EHASS-Request-ID"] for m in smtp.inbox.messages} == {"booking-request-42"}


async def test_a_refused_booking_queues_nothing(
    api: Any, factories: Factories, session: AsyncSession, worker: Worker
) -> None:
    doctor, patient, token = await _people(factories)
    await _book(api, token, doctor)
    other = await factories.patient()
    response = await api(
        "POST",
        "/appointments",
        token=await factories.token(other),
        json={"doctor_id": doctor.doctor.id, "scheduled_at": AT.isoformat()},
    )
    assert response.status_code == 409

    users = set((await session.scalars(select(Notification.user_id))).all())
    assert users == {doctor.id, patient.id}


async def test_deactivating_a_doctor_tells_the_patient_why(
    api: Any, factories: Factories, worker: Worker, smtp: SmtpServer
) -> None:
    doctor, patient, token = await _people(factories)
    await _book(api, token, doctor)
    admin = await factories.admin()
    response = await api("DELETE", f"/users/{doctor.id}", token=await factories.token(admin))
    assert response.status_code == 204

    await worker.run_once()

    subjects = [m["Subject"] for m in smtp.inbox.to(patient.email)]
    assert subjects == ["Appointment confirmed", "Appointment cancelled"]
    assert "because an account was closed" in _text(smtp.inbox.to(patient.email)[1])
    # The closed account gets the booking notice it had already, and nothing after.
    assert [m["Subject"] for m in smtp.inbox.to(doctor.email)] == ["Appointment confirmed"]


async def test_without_smtp_messages_go_to_the_log(
    api: Any, factories: Factories, app: Any, engine: Any, sessionmaker: Any, session: AsyncSession
) -> None:
    from ehass.db import Database
    from ehass.notifications.delivery import LogMailer

    doctor, _patient, token = await _people(factories)
    await _book(api, token, doctor)
    worker = Worker(Database(engine, sessionmaker), app.state.runtime, LogMailer())

    assert await worker.run_once() == 2

    statuses = (
        await session.scalars(
            select(Notification.status).where(Notification.kind == NotificationKind.BOOKED)
        )
    ).all()
    assert list(statuses) == [DeliveryStatus.LOGGED, DeliveryStatus.LOGGED]


# --- reminders --------------------------------------------------------------------------


async def test_a_reminder_goes_24_hours_before_and_only_then(
    api: Any, factories: Factories, worker: Worker, smtp: SmtpServer, clock: FrozenClock
) -> None:
    doctor, patient, token = await _people(factories)
    await _book(api, token, doctor)
    await worker.run_once()

    clock.at = AT - timedelta(hours=24, seconds=1)
    await worker.run_once()
    assert [m["Subject"] for m in smtp.inbox.to(patient.email)] == ["Appointment confirmed"]

    clock.at = AT - timedelta(hours=24)
    await worker.run_once()
    reminder = smtp.inbox.to(patient.email)[-1]
    assert reminder["Subject"] == "Reminder: your appointment on Thu 03 Dec 2026 at 11:00"
    assert "Thursday 03 December 2026 at 11:00 (Europe/Berlin)" in _text(reminder)
    assert calendar_of(reminder)[0] == "REQUEST"
    # Reminders go to the patient only.
    assert len(smtp.inbox.to(doctor.email)) == 1


async def test_a_moved_appointment_is_reminded_at_its_new_time_only(
    api: Any, factories: Factories, worker: Worker, smtp: SmtpServer, clock: FrozenClock
) -> None:
    doctor, _patient, token = await _people(factories)
    appointment = await _book(api, token, doctor)
    later = AT + timedelta(days=1)
    response = await api(
        "PUT",
        f"/appointments/{appointment['id']}",
        token=token,
        json={"scheduled_at": later.isoformat()},
    )
    assert response.status_code == 200

    clock.at = AT - timedelta(hours=23)
    await worker.run_once()
    assert not any(m["Subject"].startswith("Reminder") for m in smtp.inbox.messages)

    clock.at = later - timedelta(hours=23)
    await worker.run_once()
    reminders = [m for m in smtp.inbox.messages if m["Subject"].startswith("Reminder")]
    assert [m["Subject"] for m in reminders] == [
        "Reminder: your appointment on Fri 04 Dec 2026 at 11:00"
    ]


async def test_a_cancelled_appointment_is_never_reminded(
    api: Any, factories: Factories, worker: Worker, smtp: SmtpServer, clock: FrozenClock
) -> None:
    doctor, _patient, token = await _people(factories)
    appointment = await _book(api, token, doctor)
    response = await api("DELETE", f"/appointments/{appointment['id']}", token=token)
    assert response.status_code == 200

    clock.at = AT - timedelta(hours=1)
    await worker.run_once()

    assert not any(m["Subject"].startswith("Reminder") for m in smtp.inbox.messages)


async def test_a_stale_reminder_is_dropped_even_if_its_row_was_missed(
    factories: Factories, session: AsyncSession, worker: Worker, smtp: SmtpServer, clock: Any
) -> None:
    """The worker checks the appointment itself: a reminder whose SEQUENCE is behind the
    appointment's never goes out, whatever the outbox row says."""
    doctor, patient, _ = await _people(factories)
    appointment = await factories.appointment(patient=patient, doctor=doctor, at=AT)
    appointment.sequence = 3
    session.add(
        Notification(
            kind=NotificationKind.REMINDER,
            status=DeliveryStatus.PENDING,
            user_id=patient.id,
            appointment_id=appointment.id,
            message_id="<stale@ehass.localhost>",
            payload={"sequence": 2, "to": patient.email},
            due_at=clock.now(),
            attempts=0,
            created_at=clock.now(),
        )
    )
    await session.flush()

    assert await worker.run_once() == 0

    row = await session.scalar(select(Notification).execution_options(populate_existing=True))
    assert row is not None and row.status == DeliveryStatus.CANCELLED
    assert smtp.inbox.messages == []


async def test_erasing_a_person_erases_what_their_messages_said(
    api: Any, factories: Factories, session: AsyncSession
) -> None:
    doctor, patient, token = await _people(factories)
    await _book(api, token, doctor)
    admin = await factories.token(await factories.admin())
    assert (await api("DELETE", f"/users/{patient.id}", token=admin)).status_code == 204
    assert (await api("POST", f"/admin/users/{patient.id}/erase", token=admin)).status_code == 200

    rows = (
        await session.scalars(
            select(Notification)
            .where(Notification.user_id == patient.id)
            .execution_options(populate_existing=True)
        )
    ).all()
    assert rows, "the booking queued messages for the patient"
    assert all(row.payload == {"erased": True} for row in rows)
    assert DeliveryStatus.PENDING not in {row.status for row in rows}
