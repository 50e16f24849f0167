"""Live slot changes: the ORM hook, the bus, and the event stream of real servers."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

from ehass.appointments.models import Appointment, Status
from ehass.users.models import User
from ehass.web.events import SlotChange, SlotEvents, _current_bus, listen_to_the_orm

WEDNESDAY_10 = "2026-12-02T10:00:00Z"


async def test_booking_moving_and_cancelling_are_published_after_commit(app, factories, api):
    doctor = await factories.doctor()
    patient = await factories.patient()
    token = await factories.token(patient)
    bus: SlotEvents = app.state.slot_events
    bus.publisher = None  # this process's subscribers only, even when Redis is configured
    async with bus.subscribe(doctor.doctor.id) as queue:
        booked = await api(
            "POST",
            "/appointments",
            token=token,
            json={"doctor_id": doctor.doctor.id, "scheduled_at": WEDNESDAY_10},
        )
        assert booked.status_code == 201, booked.text
        change = await asyncio.wait_for(queue.get(), 5)
        assert change == SlotChange(doctor.doctor.id, taken=(WEDNESDAY_10,))

        appointment_id = booked.json()["id"]
        moved = await api(
            "PUT",
            f"/appointments/{appointment_id}",
            token=token,
            json={"scheduled_at": "2026-12-02T10:30:00Z"},
        )
        assert moved.status_code == 200, moved.text
        change = await asyncio.wait_for(queue.get(), 5)
        assert change.freed == (WEDNESDAY_10,) and change.taken == ("2026-12-02T10:30:00Z",)

        cancelled = await api("DELETE", f"/appointments/{appointment_id}", token=token)
        assert cancelled.status_code == 200
        change = await asyncio.wait_for(queue.get(), 5)
        assert change.freed == ("2026-12-02T10:30:00Z",) and change.taken == ()

        # With an Idempotency-Key: one message, after the commit; a replay sends none.
        keyed = {"Idempotency-Key": "live-key-1"}
        body = {"doctor_id": doctor.doctor.id, "scheduled_at": WEDNESDAY_10}
        booked = await api("POST", "/appointments", token=token, json=body, headers=keyed)
        assert booked.status_code == 201, booked.text
        change = await asyncio.wait_for(queue.get(), 5)
        assert change == SlotChange(doctor.doctor.id, taken=(WEDNESDAY_10,))
        replayed = await api("POST", "/appointments", token=token, json=body, headers=keyed)
        assert replayed.status_code == 201 and replayed.json() == booked.json()
        await asyncio.sleep(0.1)
        assert queue.empty()


def _appointment(patient: User, doctor: User, at: datetime) -> Appointment:
    assert patient.patient is not None and doctor.doctor is not None
    return Appointment(
        patient_id=patient.patient.id,
        doctor_id=doctor.doctor.id,
        scheduled_at=at,
        ends_at=at + timedelta(minutes=30),
        status=Status.SCHEDULED,
        created_at=at,
        updated_at=at,
    )


async def test_only_the_outer_commit_publishes_and_a_savepoint_rollback_keeps_the_rest(
    factories, sessionmaker
):
    """SQLAlchemy fires after_commit when a savepoint is released and after_rollback when
    one is rolled back; neither may publish, nor lose what the outer transaction holds."""
    doctor = await factories.doctor()
    patient = await factories.patient()
    other = await factories.patient()
    listen_to_the_orm()
    bus = SlotEvents()
    token = _current_bus.set(bus)
    try:
        async with bus.subscribe(doctor.doctor.id) as queue:
            async with sessionmaker() as session:
                session.add(_appointment(patient, doctor, datetime(2026, 12, 2, 9, tzinfo=UTC)))
                await session.flush()
                async with session.begin_nested():  # released: not yet committed
                    session.add(_appointment(other, doctor, datetime(2026, 12, 2, 10, tzinfo=UTC)))
                await asyncio.sleep(0.1)
                assert queue.empty()
                with contextlib.suppress(RuntimeError):
                    async with session.begin_nested():  # rolled back: only its own change goes
                        session.add(
                            _appointment(patient, doctor, datetime(2026, 12, 2, 11, tzinfo=UTC))
                        )
                        await session.flush()
                        raise RuntimeError
                await session.commit()
            change = await asyncio.wait_for(queue.get(), 5)
            assert sorted(change.taken) == ["2026-12-02T09:00:00Z", WEDNESDAY_10]
            assert change.freed == ()

            async with sessionmaker() as session:  # released savepoint, then the outer fails
                async with session.begin_nested():
                    session.add(_appointment(other, doctor, datetime(2026, 12, 2, 12, tzinfo=UTC)))
                await session.rollback()
            await asyncio.sleep(0.1)
            assert queue.empty()
    finally:
        _current_bus.reset(token)


async def test_a_refused_booking_publishes_nothing(app, factories, api):
    doctor = await factories.doctor()
    other = await factories.patient()
    await factories.appointment(
        patient=other, doctor=doctor, at=datetime(2026, 12, 2, 10, tzinfo=UTC)
    )
    token = await factories.token(await factories.patient())
    bus: SlotEvents = app.state.slot_events
    bus.publisher = None
    async with bus.subscribe(doctor.doctor.id) as queue:
        refused = await api(
            "POST",
            "/appointments",
            token=token,
            json={"doctor_id": doctor.doctor.id, "scheduled_at": WEDNESDAY_10},
        )
        assert refused.status_code == 409
        await asyncio.sleep(0.1)
        assert queue.empty()


async def test_subscribers_hear_only_their_doctor():
    bus = SlotEvents()
    async with bus.subscribe(1) as one, bus.subscribe(2) as two:
        await bus.publish(SlotChange(1, taken=(WEDNESDAY_10,)))
        assert (await asyncio.wait_for(one.get(), 1)).taken == (WEDNESDAY_10,)
        assert two.empty()
    assert bus._subscribers == {}


async def test_the_event_stream_needs_a_signed_in_browser(client, factories):
    doctor = await factories.doctor()
    response = await client.get(
        f"/doctors/{doctor.doctor.id}/live", headers={"Accept": "text/event-stream"}
    )
    assert response.status_code == 401


def test_a_stream_ends_before_a_stopping_server_gives_up_waiting() -> None:
    """A stopped `ehass serve` finishes requests in flight for timeout_graceful_shutdown;
    a live page's stream must end (and reconnect elsewhere) well within that."""
    from ehass.web.live import STREAM_SECONDS
    from tests.deployments.support import uvicorn_option

    assert uvicorn_option("timeout_graceful_shutdown") - STREAM_SECONDS >= 5
