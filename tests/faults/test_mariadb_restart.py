"""MariaDB stops and comes back while two app processes take bookings.

Every answer is a 201, or a 503 problem+json with Retry-After while the database is away
(a 409 is tolerated, though distinct patients book distinct slots); never a 500 and never
a hang. Once MariaDB is back the pools recover by themselves, and the database holds the
bookings the client saw succeed and none it was told failed: nothing half-written, nothing
lost. A booking whose COMMIT went out but whose answer was lost in the shutdown is
answered "outcome unknown" (it may have been made), never "failed".
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import anyio
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from ehass.appointments.models import Appointment
from tests.faults.conftest import PrivateMariaDB
from tests.faults.support import (
    People,
    Timed,
    app_env,
    app_servers,
    assert_problem,
    booking,
    call,
    log_in,
    logs,
    seed,
    slots,
    wait_until,
)
from tests.servers import Server

WAVE = 8  # concurrent bookings per wave, and concurrent clients of the load
PATIENTS = 16  # patient i % PATIENTS books slot i: distinct slots, never overlapping
SLOTS = 10 * 16  # ten weekdays of the doctor's 30-minute slots
HANG_SECONDS = 8.0
PAUSE_SECONDS = 0.1  # between one client's bookings


class Load:
    """Bookings of slot i by patient i % PATIENTS, one slot per request, from a fixed budget."""

    def __init__(self, servers: Sequence[Server], people: People, tokens: list[str]) -> None:
        self.servers = servers
        self.people = people
        self.tokens = tokens
        self.starts = slots(SLOTS)
        self.next = 0
        self.answers: list[tuple[int, datetime, Timed]] = []
        self.phase = "healthy"
        self.phases: dict[str, Counter[int]] = {}

    async def book(self) -> int | None:
        if self.next >= SLOTS:
            return None
        i, phase = self.next, self.phase
        self.next += 1
        answer = await call(
            self.servers[i % len(self.servers)],
            "POST",
            "/api/v1/appointments",
            token=self.tokens[i % PATIENTS],
            json=booking(self.people, self.starts[i]),
        )
        self.answers.append((i, self.starts[i], answer))
        self.phases.setdefault(phase, Counter())[answer.status] += 1
        return answer.status

    async def wave(self) -> list[int | None]:
        return list(await asyncio.gather(*(self.book() for _ in range(WAVE))))

    async def client(self, until: anyio.Event) -> None:
        while not until.is_set():
            if await self.book() is None:
                return
            await anyio.sleep(PAUSE_SECONDS)


async def _ready(servers: Sequence[Server]) -> bool:
    answers = await asyncio.gather(*(call(s, "GET", "/readyz") for s in servers))
    return all(a.status == 200 for a in answers)


@pytest.mark.usefixtures("private_mariadb")
async def test_mariadb_restart_during_bookings(
    private_mariadb: PrivateMariaDB, mariadb_database: str, tmp_path: Path
) -> None:
    people = await seed(mariadb_database, patients=PATIENTS)
    env = app_env(mariadb_database, EHASS_RATE_LIMIT_ENABLED="false")
    async with app_servers(2, env, tmp_path) as servers:
        tokens = list(
            await asyncio.gather(
                *(log_in(servers[i % 2], p) for i, p in enumerate(people.patients))
            )
        )
        load = Load(servers, people, tokens)
        assert await load.wave() == [201] * WAVE, load.answers

        # WAVE clients keep booking while MariaDB shuts down (SIGTERM), stays down, and
        # starts again on the same port and data directory.
        done = anyio.Event()
        async with anyio.create_task_group() as group:
            for _ in range(WAVE):
                group.start_soon(load.client, done)
            for phase, action in (
                ("stopping", private_mariadb.stop),
                ("starting", private_mariadb.start),
            ):
                await anyio.sleep(0.5)
                load.phase = phase
                await anyio.to_thread.run_sync(action)
                load.phase = "down" if phase == "stopping" else "restarted"
            await anyio.sleep(0.5)
            done.set()

        # The pools recover by themselves: no app restart.
        await wait_until(lambda: _ready(servers), seconds=15)
        load.phase = "back"
        load.next = SLOTS - WAVE
        back = await load.wave()

        answers = load.answers
        context = f"statuses by phase: {load.phases}\n{logs(servers)}\n{private_mariadb.log_tail()}"
        for _, _, answer in answers:
            assert answer.status in (201, 409, 503), answer.describe() + "\n" + context
            assert answer.seconds < HANG_SECONDS, answer.describe() + "\n" + context
            if answer.status == 503:
                assert_problem(answer, 503)
                assert answer.response.json()["type"] in (
                    "/problems/database-unavailable",
                    "/problems/commit-outcome-unknown",
                ), answer.describe()
                assert answer.response.headers.get("retry-after"), answer.describe()
            elif answer.status == 409:
                assert_problem(answer, 409)
        assert load.phases["down"][503] > 0, context
        assert back == [201] * WAVE, context

    engine = create_async_engine(mariadb_database)
    try:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(select(Appointment.patient_id, Appointment.scheduled_at))
            ).all()
    finally:
        await engine.dispose()
    stored = {(patient_id, at.replace(tzinfo=None)) for patient_id, at in rows}
    patient_ids = [p.patient.id for p in people.patients if p.patient is not None]
    succeeded = {
        (patient_ids[i % PATIENTS], at.replace(tzinfo=None))
        for i, at, t in answers
        if t.status == 201
    }
    # A COMMIT whose answer was lost may have been made: those requests are answered
    # "outcome unknown" and may be either way. Every other refusal changed nothing.
    unknown = {
        (patient_ids[i % PATIENTS], at.replace(tzinfo=None))
        for i, at, t in answers
        if t.status == 503 and t.response.json()["type"] == "/problems/commit-outcome-unknown"
    }
    assert len(rows) == len(stored), "an appointment was written twice"
    assert succeeded <= stored and stored - succeeded <= unknown, (
        f"in the database but answered as failed: {sorted(stored - succeeded - unknown)}\n"
        f"answered 201 but not in the database: {sorted(succeeded - stored)}\n{context}"
    )
