"""Exactly one of any number of concurrent requests for the same slot wins, across servers.

These tests run against two real `ehass serve` processes sharing one committed database,
a separate one: the main suite's per-test transactions would hide data from other
processes. Every burst goes out over connections opened beforehand, is released at once
through a gate, and alternates between the two servers. Each test books on its own day,
so the tests do not depend on one another's order.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ehass.appointments.models import Appointment, Status
from ehass.config import Settings
from ehass.core.clock import SystemClock
from ehass.users.models import User
from tests.factories import PASSWORD, Factories
from tests.servers import (
    Server,
    database_of_its_own,
    running_servers,
    server_env,
    wait_ready,
)

pytestmark = pytest.mark.concurrency

SECRET_KEY = "concurrency-test-secret-key-that-is-long-enough-0123456789"
REQUEST_TIMEOUT = httpx.Timeout(30.0)
BURST_TIMEOUT_SECONDS = 45.0
PATIENTS = 25
_DATABASE_NAME = re.compile(r"[A-Za-z0-9_]+")


# --- a committed database, two servers --------------------------------------------------


def _upcoming_weekdays(count: int, *, today: date) -> list[date]:
    """Weekdays at least three days ahead: the servers use the real clock, and these lie
    far outside the patients' cancellation notice."""
    days: list[date] = []
    day = today + timedelta(days=3)
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _factories(session: AsyncSession) -> Factories:
    # Only the model builders are used here: there is no in-process client to log in with.
    return Factories(session=session, client=None, clock=SystemClock())  # type: ignore[arg-type]


@dataclass
class Cluster:
    """Two servers over one committed database, and the people seeded into it."""

    servers: list[Server]
    sessionmaker: async_sessionmaker[AsyncSession]
    doctor: User
    patients: list[User]
    admin: User
    tokens: dict[int, str]
    days: list[date]

    def logs(self) -> str:
        return "\n".join(f"--- log of {s.base_url}\n{s.log_tail(3000)}" for s in self.servers)

    async def add_doctors(self, count: int) -> list[User]:
        """Commits `count` more doctors, Mon-Fri 09:00-17:00 UTC in 30-minute slots."""
        async with self.sessionmaker() as session:
            factories = _factories(session)
            doctors = [await factories.doctor() for _ in range(count)]
            await session.commit()
        return doctors

    async def scheduled_at(
        self, moment: datetime, *, doctor_id: int | None = None, patient_id: int | None = None
    ) -> list[Appointment]:
        """Scheduled appointments starting at `moment`, read straight from the database."""
        query = select(Appointment).where(
            Appointment.scheduled_at == moment, Appointment.status == Status.SCHEDULED
        )
        if doctor_id is not None:
            query = query.where(Appointment.doctor_id == doctor_id)
        if patient_id is not None:
            query = query.where(Appointment.patient_id == patient_id)
        async with self.sessionmaker() as session:
            return list((await session.execute(query)).scalars())


async def _log_in(servers: Sequence[Server], users: Sequence[User]) -> dict[int, str]:
    """Access tokens by user id, logged in on alternating servers (any server accepts any)."""

    async def one(index: int, user: User) -> tuple[int, str]:
        base_url = servers[index % len(servers)].base_url
        async with httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT) as client:
            response = await client.post(
                "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}
            )
        assert response.status_code == 200, response.text
        return user.id, response.json()["access_token"]

    return dict(await asyncio.gather(*(one(i, u) for i, u in enumerate(users))))


@pytest.fixture(scope="module")
async def cluster(
    settings: Settings, redis_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Cluster]:
    tmp_dir = tmp_path_factory.mktemp("concurrency")
    async with database_of_its_own(settings, tmp_dir, "concurrency") as (url, engine):
        sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
        async with sessionmaker() as session:
            factories = _factories(session)
            doctor = await factories.doctor()
            patients = [await factories.patient() for _ in range(PATIENTS)]
            admin = await factories.admin()
            await session.commit()

        env = server_env(
            {
                "EHASS_DATABASE_URL": url,
                "EHASS_SECRET_KEY": SECRET_KEY,
                "EHASS_RATE_LIMIT_ENABLED": "false",
                "EHASS_REDIS_KEY_PREFIX": f"ehass-concurrency-{uuid.uuid4().hex[:8]}",
                "EHASS_ENV": "test",
                "EHASS_LOG_LEVEL": "WARNING",
                **({"EHASS_REDIS_URL": redis_url} if redis_url else {}),
            }
        )
        with running_servers(2, env=env, log_dir=tmp_dir) as servers:
            await asyncio.gather(*(wait_ready(server) for server in servers))
            yield Cluster(
                servers=servers,
                sessionmaker=sessionmaker,
                doctor=doctor,
                patients=patients,
                admin=admin,
                tokens=await _log_in(servers, [*patients, admin]),
                days=_upcoming_weekdays(5, today=datetime.now(UTC).date()),
            )


# --- firing bursts ------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    token: str
    json: dict[str, Any] | None = None


async def _burst(
    cluster: Cluster, calls: Sequence[Call], *, first_server: int = 0
) -> list[httpx.Response]:
    """Sends every call at the same moment, call i to server (first_server + i) mod 2;
    answers in order."""
    servers = cluster.servers
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=servers[(first_server + i) % len(servers)].base_url,
                    timeout=REQUEST_TIMEOUT,
                )
            )
            for i in range(len(calls))
        ]
        # Connect first, so the gate releases requests rather than TCP handshakes; /readyz
        # also fills the servers' database pools, which would otherwise spread the burst out.
        warm = await asyncio.gather(*(client.get("/readyz") for client in clients))
        assert all(r.status_code == 200 for r in warm)
        gate = asyncio.Event()

        async def fire(client: httpx.AsyncClient, call: Call) -> httpx.Response:
            await gate.wait()
            return await client.request(
                call.method,
                f"/api/v1{call.path}",
                json=call.json,
                headers={"Authorization": f"Bearer {call.token}"},
            )

        tasks = [asyncio.create_task(fire(c, call)) for c, call in zip(clients, calls, strict=True)]
        await asyncio.sleep(0)  # every task now waits at the gate
        gate.set()
        async with asyncio.timeout(BURST_TIMEOUT_SECONDS):
            return list(await asyncio.gather(*tasks))


SLOT_TAKEN = frozenset({"/problems/slot-unavailable"})


def _one_winner(
    cluster: Cluster,
    responses: Sequence[httpx.Response],
    *,
    won: int,
    conflicts: frozenset[str] = SLOT_TAKEN,
) -> dict[str, Any]:
    """Asserts one `won` answer and a 409 of a `conflicts` type for each of the rest;
    returns the winner's body."""
    statuses = Counter(r.status_code for r in responses)
    expected = Counter({won: 1, 409: len(responses) - 1})
    unexpected = [
        f"{r.request.method} {r.request.url} -> {r.status_code} {r.text[:300]}"
        for r in responses
        if r.status_code not in (won, 409)
    ]
    assert statuses == expected, (
        f"expected {dict(expected)}, got {dict(statuses)}\n"
        + "\n".join(unexpected)
        + "\n"
        + cluster.logs()
    )
    for response in responses:
        if response.status_code == 409:
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["type"] in conflicts, response.text
    return next(r.json() for r in responses if r.status_code == won)


async def _assert_audit_chain_intact(cluster: Cluster) -> None:
    """The audit trail is still one unbroken hash chain, though both processes appended
    to it at once."""
    [response] = await _burst(
        cluster, [Call("GET", "/admin/audit-logs/verify", cluster.tokens[cluster.admin.id])]
    )
    assert response.status_code == 200, response.text
    assert response.json()["ok"] is True, response.json()


def _book(cluster: Cluster, patient: User, doctor: User, moment: datetime) -> Call:
    assert doctor.doctor is not None
    return Call(
        "POST",
        "/appointments",
        cluster.tokens[patient.id],
        {"doctor_id": doctor.doctor.id, "scheduled_at": _iso(moment), "reason": "race"},
    )


# --- the tests ------------------------------------------------------------------------------


async def test_many_patients_one_slot_exactly_one_booking(cluster: Cluster) -> None:
    slot = _at(cluster.days[0], 10)
    calls = [_book(cluster, patient, cluster.doctor, slot) for patient in cluster.patients]

    winner = _one_winner(cluster, await _burst(cluster, calls), won=201)

    assert cluster.doctor.doctor is not None
    held = await cluster.scheduled_at(slot, doctor_id=cluster.doctor.doctor.id)
    assert [(a.id, a.patient_id) for a in held] == [(winner["id"], winner["patient_id"])]
    assert winner["scheduled_at"] == _iso(slot)
    await _assert_audit_chain_intact(cluster)


async def test_one_patient_many_doctors_same_time_exactly_one_booking(cluster: Cluster) -> None:
    doctors = await cluster.add_doctors(5)
    patient = cluster.patients[0]
    assert patient.patient is not None
    slot = _at(cluster.days[1], 10)
    # Two requests per doctor: the patient's own overlap and the doctor's slot both race.
    calls = [_book(cluster, patient, doctor, slot) for doctor in doctors * 2]

    winner = _one_winner(
        cluster,
        await _burst(cluster, calls),
        won=201,
        conflicts=SLOT_TAKEN | {"/problems/patient-busy"},
    )

    held = await cluster.scheduled_at(slot, patient_id=patient.patient.id)
    assert [(a.id, a.doctor_id) for a in held] == [(winner["id"], winner["doctor_id"])]
    await _assert_audit_chain_intact(cluster)


async def test_reschedule_race_moves_exactly_one(cluster: Cluster) -> None:
    day = cluster.days[2]
    movers = cluster.patients[:8]
    starts = [_at(day, 9) + timedelta(minutes=30 * i) for i in range(len(movers))]
    target = _at(day, 15)
    booked = await _burst(
        cluster, [_book(cluster, p, cluster.doctor, s) for p, s in zip(movers, starts, strict=True)]
    )
    assert [r.status_code for r in booked] == [201] * len(movers), [r.text for r in booked]
    appointments = [r.json() for r in booked]

    moves = [
        Call(
            "PUT", f"/appointments/{a['id']}", cluster.tokens[p.id], {"scheduled_at": _iso(target)}
        )
        for p, a in zip(movers, appointments, strict=True)
    ]
    winner = _one_winner(cluster, await _burst(cluster, moves), won=200)

    assert winner["scheduled_at"] == _iso(target)
    reads = await _burst(
        cluster,
        [
            Call("GET", f"/appointments/{a['id']}", cluster.tokens[p.id])
            for p, a in zip(movers, appointments, strict=True)
        ],
    )
    for before, after in zip(appointments, reads, strict=True):
        assert after.status_code == 200, after.text
        current = after.json()
        assert current["status"] == "scheduled"
        expected = _iso(target) if current["id"] == winner["id"] else before["scheduled_at"]
        assert current["scheduled_at"] == expected, (before, current)
    assert cluster.doctor.doctor is not None
    held = await cluster.scheduled_at(target, doctor_id=cluster.doctor.doctor.id)
    assert [a.id for a in held] == [winner["id"]]
    old_start = next(a["scheduled_at"] for a in appointments if a["id"] == winner["id"])
    assert await cluster.scheduled_at(datetime.fromisoformat(old_start)) == []
    await _assert_audit_chain_intact(cluster)


async def test_cancelled_slot_is_rebooked_by_exactly_one(cluster: Cluster) -> None:
    slot = _at(cluster.days[3], 10)
    assert cluster.doctor.doctor is not None
    holder = cluster.patients[0]
    first = await _burst(cluster, [_book(cluster, holder, cluster.doctor, slot)])
    assert first[0].status_code == 201, first[0].text
    appointment = first[0].json()

    # The holder cancels on one server, then an administrator on the other: either way the
    # slot is free at once on both.
    for round_, canceller in enumerate((None, cluster.admin)):
        token = cluster.tokens[(canceller or holder).id]
        cancelled = await _burst(
            cluster,
            [Call("DELETE", f"/appointments/{appointment['id']}", token)],
            first_server=round_,
        )
        assert cancelled[0].status_code == 200, cancelled[0].text
        assert cancelled[0].json()["status"] == "cancelled"
        contenders = [p for p in cluster.patients if p.id != holder.id]
        calls = [_book(cluster, p, cluster.doctor, slot) for p in contenders]

        appointment = _one_winner(
            cluster, await _burst(cluster, calls, first_server=round_ + 1), won=201
        )

        held = await cluster.scheduled_at(slot, doctor_id=cluster.doctor.doctor.id)
        assert [a.id for a in held] == [appointment["id"]], f"round {round_}"
        holder = next(p for p in contenders if p.patient and p.patient.id == held[0].patient_id)
    await _assert_audit_chain_intact(cluster)


async def test_holds_and_bookings_racing_for_one_slot_leave_exactly_one_winner(
    cluster: Cluster,
) -> None:
    """A hold obeys the booking's guarantee: holds and bookings for one slot, all at once,
    across both servers, and exactly one of them gets it."""
    assert cluster.doctor.doctor is not None
    slot = _at(cluster.days[0], 15)
    calls = []
    for index, patient in enumerate(cluster.patients):
        if index % 2:
            calls.append(_book(cluster, patient, cluster.doctor, slot))
        else:
            calls.append(
                Call(
                    "POST",
                    "/holds",
                    cluster.tokens[patient.id],
                    {"doctor_id": cluster.doctor.doctor.id, "scheduled_at": _iso(slot)},
                )
            )

    responses = await _burst(cluster, calls)

    winners = [r for r in responses if r.status_code == 201]
    assert len(winners) == 1, [(r.status_code, r.text[:200]) for r in responses]
    refusals = {r.json()["type"] for r in responses if r.status_code != 201}
    assert {r.status_code for r in responses if r.status_code != 201} == {409}
    assert refusals <= {"/problems/slot-unavailable", "/problems/slot-held"}
    await _assert_audit_chain_intact(cluster)


async def test_no_server_offers_a_booked_slot_from_its_cache(cluster: Cluster) -> None:
    """Both servers cache the day's slots (each in its own memory on SQLite, in Redis on
    MariaDB); then bookings of different slots race with reads of the day through both.
    Afterwards each server offers exactly the slots nobody booked."""
    (doctor,) = await cluster.add_doctors(1)
    assert doctor.doctor is not None
    day = cluster.days[4]  # a day of its own: no patient is busy then
    window = f"from={_iso(_at(day, 0))}&to={_iso(_at(day + timedelta(days=1), 0))}"
    token = cluster.tokens[cluster.patients[0].id]
    read = Call("GET", f"/doctors/{doctor.doctor.id}/availability?{window}", token)
    every = [_iso(_at(day, 9) + timedelta(minutes=30 * i)) for i in range(16)]

    async def offered_by_each() -> list[list[str]]:
        answers = await _burst(cluster, [read, read])  # one read per server
        assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
        return [[slot["start"] for slot in r.json()["slots"]] for r in answers]

    assert await offered_by_each() == [every, every]  # now cached by both
    bookings = [
        _book(cluster, patient, doctor, _at(day, 9) + timedelta(minutes=30 * i))
        for i, patient in enumerate(cluster.patients[:8])
    ]
    answers = await _burst(cluster, [call for booking in bookings for call in (booking, read)])
    booked = {
        r.json()["scheduled_at"]
        for r in answers
        if r.request.method == "POST" and r.status_code == 201
    }
    refused = [r.text for r in answers if r.request.method == "POST" and r.status_code != 201]
    assert len(booked) == len(bookings), refused
    free = [start for start in every if start not in booked]
    assert await offered_by_each() == [free, free], cluster.logs()
    assert await offered_by_each() == [free, free]  # and again, from the refreshed caches


@pytest.mark.skipif(
    not os.environ.get("EHASS_TEST_DATABASE_URL", "").startswith("mysql"),
    reason="SQLite has one writer by design; the claim is about MariaDB",
)
async def test_a_booking_held_open_mid_transaction_holds_up_no_other_doctors_booking(
    cluster: Cluster,
) -> None:
    """Writes do not serialise: booking A is held open after it has written everything but
    before its COMMIT (its day's schedule version, the last row it writes, is locked by this
    test), and booking B, for another doctor and patient through the other server, commits
    at once. Then A is let go and commits too."""
    doctor_a, doctor_b = await cluster.add_doctors(2)
    assert doctor_a.doctor is not None and doctor_b.doctor is not None
    patient_a, patient_b = cluster.patients[20], cluster.patients[21]
    slot = _at(cluster.days[4], 16)  # a time no other test books
    engine = cluster.sessionmaker.kw["bind"]
    day_version = {"d": doctor_a.doctor.id, "day": slot.date()}  # the doctors keep UTC
    async with engine.begin() as connection:
        await connection.execute(
            text("INSERT INTO schedule_day_versions VALUES (:d, :day, 1)"), day_version
        )
    async with engine.connect() as blocker:
        await blocker.execute(
            text(
                "SELECT version FROM schedule_day_versions "
                "WHERE doctor_id = :d AND local_date = :day FOR UPDATE"
            ),
            day_version,
        )
        held = asyncio.create_task(_burst(cluster, [_book(cluster, patient_a, doctor_a, slot)]))
        try:
            await _until_waiting_on_a_lock(blocker)
            started = asyncio.get_running_loop().time()
            try:
                async with asyncio.timeout(10):
                    [other] = await _burst(
                        cluster, [_book(cluster, patient_b, doctor_b, slot)], first_server=1
                    )
            except TimeoutError:
                raise AssertionError("booking B waited behind booking A's transaction") from None
            waited = asyncio.get_running_loop().time() - started
            assert other.status_code == 201, other.text
            assert not held.done(), "booking A was meant to be waiting on the test's lock"
        finally:
            await blocker.rollback()
    [first] = await held
    assert first.status_code == 201, first.text
    assert waited < 5.0, f"booking B waited {waited:.1f} s behind booking A"
    await _assert_audit_chain_intact(cluster)


async def _until_waiting_on_a_lock(connection: Any, *, within: float = 20.0) -> None:
    """Returns once some transaction waits on a row lock (booking A, on the test's)."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        waiting = await connection.scalar(
            text("SELECT COUNT(*) FROM information_schema.innodb_trx WHERE trx_state = 'LOCK WAIT'")
        )
        if waiting:
            return
        # Slower than the 0.1 s for which MariaDB keeps the innodb_trx table it last built.
        await asyncio.sleep(0.25)
    raise AssertionError("booking A never reached the locked schedule version")
