"""Losing an instance: killed outright mid-load, or stopped gracefully mid-request.

A deployment of this module's own, since these tests take instances down (each brings its
instance back on the same port before it ends, so nginx's upstream finds it again).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from datetime import time as clock_time

import httpx
from sqlalchemy import select

from ehass.appointments.models import Status
from ehass.doctors.models import Doctor
from tests.scale.deployment import (
    API,
    Deployment,
    at,
    bearer,
    client_address,
    iso,
    log_in_all,
    slot_day,
)
from tests.scale.nginx import fail_timeout_seconds

LOAD_WORKERS = 6
KILL_AFTER_SECONDS = 3.0
# The load goes on until nginx has tried the dead instance again (after fail_timeout),
# so requests it sends there then, and are refused, are seen to move on to the others.
LOAD_SECONDS = KILL_AFTER_SECONDS + fail_timeout_seconds() + 3.0
PAUSE_SECONDS = 0.02  # between one worker's requests: the machine has two cores
SLOT_MINUTES = 5
DAY_START, DAY_END = 6, 22  # the load doctor's hours, UTC, Mon-Fri
# uvicorn's timeout_graceful_shutdown (src/ehass/cli.py), and a margin for the interpreter
# to exit.
GRACEFUL_SHUTDOWN_SECONDS = 20.0
EXIT_MARGIN_SECONDS = 5.0


@dataclass(frozen=True)
class Outcome:
    worker: int
    kind: str
    started: float
    ended: float
    status: int | None  # None: no HTTP answer at all
    appointment_id: int | None = None
    error: str | None = None


def _load_slot(n: int) -> datetime:
    """The n-th bookable start of the load doctor, in order over the coming weekdays."""
    per_day = (DAY_END - DAY_START) * 60 // SLOT_MINUTES
    return at(slot_day(n // per_day), DAY_START, SLOT_MINUTES * (n % per_day))


async def _worker(
    deployment: Deployment,
    index: int,
    token: str,
    doctor_id: int,
    deadline: float,
    outcomes: list[Outcome],
) -> None:
    """Books the next free slot of its own, then reads, in turn, until the deadline."""
    headers = bearer(token)
    day = slot_day().isoformat()
    reads = [
        ("availability", f"{API}/doctors/{doctor_id}/availability?from={day}T00:00:00Z"),
        ("my appointments", f"{API}/appointments"),
        ("doctor", f"{API}/doctors/{doctor_id}"),
    ]
    async with deployment.client(None, address=client_address()) as client:
        n = 0
        while time.monotonic() < deadline:
            if n % 2 == 0:
                kind = "book"
                # Slots are dealt out so no two bookings ever collide.
                slot = _load_slot(n // 2 * LOAD_WORKERS + index)
                body = {"doctor_id": doctor_id, "scheduled_at": iso(slot)}
                request = client.build_request(
                    "POST", f"{API}/appointments", json=body, headers=headers
                )
            else:
                kind, path = reads[n // 2 % len(reads)]
                request = client.build_request("GET", path, headers=headers)
            started = time.monotonic()
            try:
                response = await client.send(request)
            except httpx.HTTPError as exc:
                outcomes.append(
                    Outcome(index, kind, started, time.monotonic(), None, error=repr(exc))
                )
            else:
                booked = response.json()["id"] if response.status_code == 201 else None
                outcomes.append(
                    Outcome(index, kind, started, time.monotonic(), response.status_code, booked)
                )
            n += 1
            await asyncio.sleep(PAUSE_SECONDS)


async def test_killing_an_instance_mid_load_loses_no_booking_and_nginx_keeps_serving(
    deployment: Deployment,
) -> None:
    weekdays = {day: [(clock_time(DAY_START), clock_time(DAY_END))] for day in range(5)}
    doctor_id, patients = await deployment.doctor_and_patients(
        LOAD_WORKERS, slot_minutes=SLOT_MINUTES, weekly=weekdays
    )
    async with deployment.client(None, address=client_address()) as front:
        tokens = await log_in_all([front], patients)
    victim = 1
    outcomes: list[Outcome] = []
    start = time.monotonic()
    workers = [
        asyncio.create_task(
            _worker(deployment, i, token, doctor_id, start + LOAD_SECONDS, outcomes)
        )
        for i, token in enumerate(tokens)
    ]
    try:
        await asyncio.sleep(KILL_AFTER_SECONDS)
        killed_at = time.monotonic()
        deployment.signal(victim, signal.SIGKILL)
        assert await deployment.wait_exit(victim, 5.0) == -signal.SIGKILL
        dead_at = time.monotonic()
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
        await deployment.restart(victim)

    summary = Counter((o.kind, o.status) for o in outcomes)
    unanswered = [o for o in outcomes if o.status is None]
    assert not unanswered, unanswered  # nginx answers every request, whatever happens behind
    before = [o for o in outcomes if o.started < killed_at]
    after = [o for o in outcomes if o.started > dead_at]
    assert before and after, summary
    # A booking the killed process was answering is lost with it: nginx answers 502, as it
    # never sends a POST twice (a read that fails this way it passes to another instance).
    # Only those may fail: requests in flight when the kill came, at most one per worker
    # (each has one request open at a time).
    failed = [o for o in outcomes if o.status is not None and o.status >= 500]
    assert all(o.status == 502 for o in failed), summary
    assert all(o.started <= dead_at and o.ended >= killed_at for o in failed), failed
    assert len(failed) <= LOAD_WORKERS, failed
    # Everything else succeeded, before and after: the dead instance's port refuses
    # connections, and nginx passes those requests to the others (also when it tries the
    # dead one again after fail_timeout).
    ok = {("book", 201), *((kind, 200) for kind in ("availability", "my appointments", "doctor"))}
    assert all((o.kind, o.status) in ok for o in outcomes if o not in failed), summary
    assert sum(1 for o in after if o.kind == "book") >= LOAD_WORKERS, summary

    # Every booking answered 201 is in the database; any other there was in flight (502).
    answered = {o.appointment_id for o in outcomes if o.status == 201}
    rows = await deployment.appointments(doctor_id=doctor_id)
    assert answered <= {a.id for a in rows}
    assert all(a.status == Status.SCHEDULED for a in rows)
    lost_answers = [a.id for a in rows if a.id not in answered]
    assert len(lost_answers) <= sum(1 for o in failed if o.kind == "book"), (lost_answers, failed)


async def test_an_instance_stopped_gracefully_finishes_what_it_was_answering(
    deployment: Deployment,
) -> None:
    """SIGTERM (what systemd, docker stop or Kubernetes send) while bookings are under way:
    each of them is answered, then the process exits 0 within uvicorn's grace period.

    The bookings are made slow on purpose: the test holds the doctor's row lock, which
    every booking takes first, so they are all provably mid-request when the signal comes
    and can only finish after it."""
    bookings = 8
    doctor_id, patients = await deployment.doctor_and_patients(bookings)
    victim = 2
    address = client_address()
    async with deployment.client(victim, address=address) as client:
        tokens = await log_in_all([client], patients)
        async with deployment.sessionmaker() as session, session.begin():
            await session.execute(select(Doctor).where(Doctor.id == doctor_id).with_for_update())
            tasks = [
                asyncio.create_task(
                    client.post(
                        f"{API}/appointments",
                        json={
                            "doctor_id": doctor_id,
                            "scheduled_at": iso(at(slot_day(), 9, 30 * i)),
                        },
                        headers=bearer(token),
                    )
                )
                for i, token in enumerate(tokens)
            ]
            await _until_in_flight(deployment, victim, bookings)

            deployment.signal(victim, signal.SIGTERM)
            stopping = time.monotonic()
            async with deployment.client(None, address=address) as front:
                # The others answer for it meanwhile; it takes no new request.
                for _ in range(5):
                    served = await front.get(f"{API}/doctors")
                    assert served.status_code == 200, served.text
            await asyncio.sleep(0.5)
            assert not any(task.done() for task in tasks)
            assert deployment.instances[victim].process.poll() is None
        # The lock is released: the bookings go through, and the process may exit.
        answers = await asyncio.gather(*tasks)
    assert [r.status_code for r in answers] == [201] * bookings, [r.text for r in answers]
    returncode = await deployment.wait_exit(victim, GRACEFUL_SHUTDOWN_SECONDS + EXIT_MARGIN_SECONDS)
    assert returncode == 0
    assert time.monotonic() - stopping < GRACEFUL_SHUTDOWN_SECONDS + EXIT_MARGIN_SECONDS
    assert await deployment.count_appointments(doctor_id=doctor_id) == bookings
    await deployment.restart(victim)


async def _until_in_flight(deployment: Deployment, index: int, count: int) -> None:
    """Waits until instance `index` is answering `count` requests at once."""
    deadline = time.monotonic() + 10.0
    while (in_flight := await deployment.in_flight(index)) < count:
        assert time.monotonic() < deadline, f"only {in_flight} of {count} requests arrived"
        await asyncio.sleep(0.02)
