"""POST /appointments with an Idempotency-Key: a retried booking books nothing more."""

from __future__ import annotations

from datetime import date

from ehass.availability.models import AvailabilityOverride
from tests.appointments.support import (
    WED_0900,
    count_appointments,
    doctor_id,
    fresh_token,
    patient_id,
)
from tests.problems import assert_problem

KEY = {"Idempotency-Key": "7d1f0a52-booking-1"}


async def _book(api, token, body, headers=KEY):
    return await api("POST", "/appointments", token=token, json=body, headers=headers)


async def test_same_key_and_body_returns_the_first_response_and_books_once(
    api, factories, session, clock
):
    patient = await factories.patient()
    doctor = await factories.doctor()
    token = await factories.token(patient)
    body = {"doctor_id": doctor_id(doctor), "scheduled_at": "2026-12-02T09:00:00Z"}

    first = await _book(api, token, body)
    assert first.status_code == 201, first.text
    clock.advance(minutes=5)
    second = await _book(api, token, body)

    assert second.status_code == 201, second.text
    assert second.json() == first.json()
    assert second.json()["created_at"] == "2026-11-30T12:00:00Z"  # not re-created at 12:05
    assert second.headers["location"] == first.headers["location"]
    assert second.headers["x-request-id"] != first.headers["x-request-id"]
    assert await count_appointments(session) == 1


async def test_a_replay_is_not_refused_although_the_slot_is_now_taken(api, factories, session):
    # Without the key the same body would be a 409: the slot is held by the first booking.
    patient = await factories.patient()
    doctor = await factories.doctor()
    token = await factories.token(patient)
    body = {"doctor_id": doctor_id(doctor), "scheduled_at": "2026-12-02T09:00:00Z"}
    first = await _book(api, token, body)
    assert first.status_code == 201, first.text

    assert_problem(await _book(api, token, body, headers={}), 409)
    assert (await _book(api, token, body)).json()["id"] == first.json()["id"]
    assert await count_appointments(session) == 1


async def test_same_key_with_a_different_body_is_422(api, factories, session):
    patient = await factories.patient()
    doctor = await factories.doctor()
    token = await factories.token(patient)
    body = {"doctor_id": doctor_id(doctor), "scheduled_at": "2026-12-02T09:00:00Z"}
    assert (await _book(api, token, body)).status_code == 201

    for change in (
        {"scheduled_at": "2026-12-02T09:30:00Z"},
        {"reason": "something else"},
        {"patient_id": patient_id(patient)},
    ):
        response = await _book(api, token, body | change)
        assert_problem(response, 422)
    assert await count_appointments(session) == 1


async def test_another_users_same_key_is_independent(api, factories, session):
    doctor = await factories.doctor()
    first_patient = await factories.patient()
    second_patient = await factories.patient()
    body = {"doctor_id": doctor_id(doctor), "scheduled_at": "2026-12-02T09:00:00Z"}
    first = await _book(api, await factories.token(first_patient), body)
    assert first.status_code == 201, first.text

    # Same key, another body, another user: not a 422, a booking of its own.
    other_slot = await _book(
        api,
        await factories.token(second_patient),
        body | {"scheduled_at": "2026-12-02T09:30:00Z"},
    )
    assert other_slot.status_code == 201, other_slot.text
    assert other_slot.json()["id"] != first.json()["id"]
    assert other_slot.json()["patient_id"] == patient_id(second_patient)

    # Same key, same body, a third user: judged afresh (the slot is taken), not replayed.
    same_body = await _book(api, await factories.token(await factories.patient()), body)
    assert_problem(same_body, 409)
    assert await count_appointments(session) == 2


async def test_different_keys_book_separately(api, factories):
    patient = await factories.patient()
    doctor = await factories.doctor()
    token = await factories.token(patient)
    first = await _book(
        api,
        token,
        {"doctor_id": doctor_id(doctor), "scheduled_at": "2026-12-02T09:00:00Z"},
        headers={"Idempotency-Key": "a"},
    )
    second = await _book(
        api,
        token,
        {"doctor_id": doctor_id(doctor), "scheduled_at": "2026-12-02T09:30:00Z"},
        headers={"Idempotency-Key": "b"},
    )
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] != second.json()["id"]


async def test_the_key_still_replays_just_before_24_hours(api, factories, session, clock):
    patient = await factories.patient()
    doctor = await factories.doctor()
    body = {"doctor_id": doctor_id(doctor), "scheduled_at": "2026-12-09T09:00:00Z"}
    first = await _book(api, await factories.token(patient), body)
    assert first.status_code == 201, first.text

    clock.advance(hours=23, minutes=59)
    again = await _book(api, await fresh_token(factories, patient), body)
    assert again.status_code == 201, again.text
    assert again.json()["id"] == first.json()["id"]
    assert await count_appointments(session) == 1


async def test_after_24_hours_the_key_starts_afresh(api, factories, session, clock):
    patient = await factories.patient()
    admin = await factories.admin()
    doctor = await factories.doctor()
    body = {"doctor_id": doctor_id(doctor), "scheduled_at": "2026-12-09T09:00:00Z"}
    first = await _book(api, await factories.token(patient), body)
    assert first.status_code == 201, first.text
    cancelled = await api(
        "DELETE", f"/appointments/{first.json()['id']}", token=await factories.token(admin)
    )
    assert cancelled.status_code == 200, cancelled.text

    clock.advance(hours=24, seconds=1)
    token = await fresh_token(factories, patient)
    again = await _book(api, token, body)
    assert again.status_code == 201, again.text
    assert again.json()["id"] != first.json()["id"]
    assert again.json()["status"] == "scheduled"
    assert await count_appointments(session) == 2

    other = await _book(api, token, body | {"scheduled_at": "2026-12-09T10:00:00Z"})
    assert_problem(other, 422)  # the key now belongs to the booking just made
    different_key = await _book(
        api,
        token,
        body | {"scheduled_at": "2026-12-09T10:00:00Z"},
        headers={"Idempotency-Key": "another"},
    )
    assert different_key.status_code == 201, different_key.text


async def test_an_expired_key_with_a_different_body_books(api, factories, session, clock):
    patient = await factories.patient()
    doctor = await factories.doctor()
    body = {"doctor_id": doctor_id(doctor), "scheduled_at": "2026-12-09T09:00:00Z"}
    assert (await _book(api, await factories.token(patient), body)).status_code == 201

    clock.advance(hours=24, seconds=1)
    response = await _book(
        api, await fresh_token(factories, patient), body | {"scheduled_at": "2026-12-09T09:30:00Z"}
    )
    assert response.status_code == 201, response.text
    assert await count_appointments(session) == 2


async def test_an_expired_key_with_the_same_body_is_judged_afresh(api, factories, session, clock):
    # The first booking still holds the slot, so a fresh attempt is a conflict, not a replay.
    patient = await factories.patient()
    doctor = await factories.doctor()
    body = {"doctor_id": doctor_id(doctor), "scheduled_at": "2026-12-09T09:00:00Z"}
    assert (await _book(api, await factories.token(patient), body)).status_code == 201
    clock.advance(hours=24, seconds=1)
    assert_problem(await _book(api, await fresh_token(factories, patient), body), 409)
    assert await count_appointments(session) == 1


async def test_a_refused_first_attempt_is_what_the_key_replays(api, factories, session):
    # The contract says the first response, not the first success: a retry gets the same 409
    # even after the slot has come free, and books nothing.
    patient = await factories.patient()
    doctor = await factories.doctor()
    token = await factories.token(patient)
    holder = await factories.appointment(
        patient=await factories.patient(), doctor=doctor, at=WED_0900
    )
    body = {"doctor_id": doctor_id(doctor), "scheduled_at": "2026-12-02T09:00:00Z"}
    first = assert_problem(await _book(api, token, body), 409)

    holder.status = "cancelled"
    await session.flush()
    retry = await _book(api, token, body)
    assert retry.json() == first
    assert_problem(retry, 409)
    assert_problem(await _book(api, token, body | {"reason": "x"}), 422)
    assert await count_appointments(session, status="scheduled") == 0

    fresh_key = await _book(api, token, body, headers={"Idempotency-Key": "fresh"})
    assert fresh_key.status_code == 201, fresh_key.text


async def test_a_refused_422_is_replayed_too(api, factories, session):
    patient = await factories.patient()
    doctor = await factories.doctor()
    token = await factories.token(patient)
    body = {"doctor_id": doctor_id(doctor), "scheduled_at": "2026-12-05T10:00:00Z"}  # Saturday
    first = assert_problem(await _book(api, token, body), 422)

    # The doctor now works that Saturday: the key still answers as it first did.
    session.add(
        AvailabilityOverride(
            doctor_id=doctor_id(doctor),
            on_date=date(2026, 12, 5),
            windows=[{"start": "10:00", "end": "12:00"}],
        )
    )
    await session.flush()
    assert assert_problem(await _book(api, token, body), 422) == first
    assert await count_appointments(session) == 0
    fresh_key = await _book(api, token, body, headers={"Idempotency-Key": "fresh"})
    assert fresh_key.status_code == 201, fresh_key.text


async def test_an_empty_key_is_422(api, factories, session):
    patient = await factories.patient()
    doctor = await factories.doctor()
    response = await _book(
        api,
        await factories.token(patient),
        {"doctor_id": doctor_id(doctor), "scheduled_at": "2026-12-02T09:00:00Z"},
        headers={"Idempotency-Key": ""},
    )
    assert_problem(response, 422)
    assert await count_appointments(session) == 0


async def test_keys_differing_only_in_case_are_different_keys(api, factories, session):
    # MySQL's default collations compare case-insensitively.
    patient = await factories.patient()
    doctor = await factories.doctor()
    token = await factories.token(patient)
    body = {"doctor_id": doctor_id(doctor), "scheduled_at": "2026-12-02T09:00:00Z"}
    first = await _book(api, token, body, headers={"Idempotency-Key": "Key-A"})
    assert first.status_code == 201, first.text
    other_case = await _book(api, token, body, headers={"Idempotency-Key": "key-a"})
    assert_problem(other_case, 409)  # a booking of its own: the slot is taken
    moved = body | {"scheduled_at": "2026-12-02T09:30:00Z"}
    assert (await _book(api, token, moved, headers={"Idempotency-Key": "KEY-A"})).status_code == 201
    assert await count_appointments(session) == 2


async def test_the_kept_answer_is_encrypted_at_rest(api, factories, session):
    from sqlalchemy import text

    patient = await factories.patient()
    doctor = await factories.doctor()
    token = await factories.token(patient)
    body = {
        "doctor_id": doctor_id(doctor),
        "scheduled_at": "2026-12-02T09:00:00Z",
        "reason": "recurring migraine",
    }
    assert (await _book(api, token, body)).status_code == 201
    raw = await session.scalar(text("SELECT response_body FROM idempotency_records"))
    assert raw.startswith("v1.") and "migraine" not in raw
    replay = await _book(api, token, body)
    assert replay.json()["reason"] == "recurring migraine"


async def test_answers_past_24_hours_are_purged_by_the_worker_not_by_requests(
    api, factories, session, clock, app, engine, sessionmaker
):
    from sqlalchemy import text

    from ehass.db import Database
    from ehass.notifications.delivery import LogMailer
    from ehass.notifications.worker import Worker

    patient = await factories.patient()
    doctor = await factories.doctor()
    token = await factories.token(patient)
    old = {"doctor_id": doctor_id(doctor), "scheduled_at": "2026-12-03T09:00:00Z"}
    assert (await _book(api, token, old, headers={"Idempotency-Key": "old-key"})).status_code == 201
    clock.advance(hours=25)
    token = await fresh_token(factories, patient)
    new = {"doctor_id": doctor_id(doctor), "scheduled_at": "2026-12-04T09:00:00Z"}
    assert (await _book(api, token, new, headers={"Idempotency-Key": "new-key"})).status_code == 201
    # A booking writes its own answer and nothing else: no purge DELETE in the request.
    assert await session.scalar(text("SELECT COUNT(*) FROM idempotency_records")) == 2

    worker = Worker(Database(engine, sessionmaker), app.state.runtime, LogMailer())
    assert await worker.run_purge() == 1
    assert await session.scalar(text("SELECT COUNT(*) FROM idempotency_records")) == 1


async def test_a_booking_that_loses_on_the_unique_index_keeps_its_refusal(api, factories, session):
    # A row the overlap check does not see (it ends where it starts) but the unique index
    # does: the INSERT fails as it does when a concurrent booking commits first. The ORM
    # then rolls the whole transaction back; the refusal is still kept under the key.
    patient = await factories.patient()
    doctor = await factories.doctor()
    token = await factories.token(patient)
    await factories.appointment(
        patient=await factories.patient(), doctor=doctor, at=WED_0900, minutes=0
    )
    body = {"doctor_id": doctor_id(doctor), "scheduled_at": "2026-12-02T09:00:00Z"}

    first = assert_problem(await _book(api, token, body), 409)
    assert first["type"] == "/problems/slot-unavailable"
    assert (await _book(api, token, body)).json() == first
    assert_problem(await _book(api, token, body, headers={}), 409)
    assert await count_appointments(session) == 1
