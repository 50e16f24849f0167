"""The same-transaction booking ceiling books correctly: what it writes is what the project
writes (readable by the project: the payloads decrypt, the audit chain verifies), and a
conflict is a 409 that writes nothing, also when bookings of one slot race.

MariaDB only (the ceiling is the raw asyncmy driver). Runs on the database named by
EHASS_TEST_DATABASE_URL (mysql+asyncmy://root@127.0.0.1:3306/NAME), dropped and recreated:

    EHASS_TEST_DATABASE_URL=mysql+asyncmy://root@127.0.0.1:3306/ehass_t_bench \\
        .venv/bin/python -m pytest bench/test_ceiling_booking.py -q
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import deploy
import httpx
import pytest
from ceiling_booking import Booker
from seed import SeedData, seed
from sqlalchemy import text

from ehass.audit import service as audit
from ehass.config import Settings
from ehass.core import crypto
from ehass.db import Database

URL = os.environ.get(
    "EHASS_TEST_DATABASE_URL", "mysql+asyncmy://root@127.0.0.1:3306/ehass_bench_test"
)
DB = URL.rsplit("/", 1)[1].split("?", 1)[0]
# Far from the seeded appointments (3+ days from now).
MONDAY = datetime(2200, 1, 6, 9, 0, tzinfo=UTC)
CLIENT = {"ip": "127.0.0.1", "user_agent": "bench-test", "request_id": "r" * 32}
# The table main is adding (no chain lock on the request path).
AUDIT_PENDING_COLUMNS = """(
    id INTEGER NOT NULL AUTO_INCREMENT PRIMARY KEY, at DATETIME NOT NULL, actor_id INTEGER,
    actor_role VARCHAR(16), action VARCHAR(64) NOT NULL, entity VARCHAR(32) NOT NULL,
    entity_id VARCHAR(64), ip VARCHAR(45), user_agent VARCHAR(255), request_id VARCHAR(128),
    changes JSON)"""


@pytest.fixture(scope="module")
def env() -> Iterator[dict[str, str]]:
    if not URL.startswith("mysql"):
        pytest.fail("EHASS_TEST_DATABASE_URL must name a MariaDB database (mysql+asyncmy://)")
    values = {**deploy.app_env(), "EHASS_DATABASE_URL": URL}
    saved = dict(os.environ)
    os.environ.update(values)  # the seeder and the Booker read the same settings
    yield values
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
async def data(env: dict[str, str]) -> SeedData:
    await deploy._root_execute(
        f"DROP DATABASE IF EXISTS {DB}", f"CREATE DATABASE {DB} CHARACTER SET utf8mb4"
    )
    deploy.upgrade_schema(env)
    return await seed(30, 4, 4)


@pytest.fixture
async def booker(data: SeedData) -> AsyncIterator[Booker]:
    b = await Booker.start(DB, maxsize=25)
    yield b
    await b.close()


@pytest.fixture
async def db(data: SeedData) -> AsyncIterator[Database]:
    database = Database.from_settings(Settings())
    yield database
    await database.dispose()


async def _scalar(db: Database, sql: str, **params: object) -> object:
    async with db.transaction() as session:
        return (await session.execute(text(sql), params)).scalar()


COUNTS = text(
    "SELECT (SELECT COUNT(*) FROM appointments), (SELECT COUNT(*) FROM notifications),"
    " (SELECT COUNT(*) FROM audit_log), (SELECT SUM(version) FROM schedule_versions)"
)


async def _counts(db: Database) -> tuple:
    """Appointments, outbox rows, audit entries, and all schedule versions added up."""
    async with db.transaction() as session:
        return tuple((await session.execute(COUNTS)).one())


async def test_a_booking_writes_what_the_project_writes(
    booker: Booker, db: Database, data: SeedData
) -> None:
    doctor, patient = data.doctor_ids[0], data.patient_ids[0]
    version = await _scalar(
        db, "SELECT version FROM schedule_versions WHERE doctor_id = :d", d=doctor
    )

    outcome = await booker.book(doctor_id=doctor, patient_id=patient, at=MONDAY, **CLIENT)

    assert outcome.status == 201, outcome.body
    appointment_id = outcome.body["id"]
    async with db.transaction() as session:
        row = (
            await session.execute(
                text(
                    "SELECT doctor_id, patient_id, scheduled_at, ends_at, status, doctor_slot,"
                    " patient_slot FROM appointments WHERE id = :i"
                ),
                {"i": appointment_id},
            )
        ).one()
        assert tuple(row) == (
            doctor,
            patient,
            MONDAY.replace(tzinfo=None),
            (MONDAY + timedelta(minutes=30)).replace(tzinfo=None),
            "scheduled",
            doctor,
            patient,
        )
        notes = (
            await session.execute(
                text(
                    "SELECT kind, user_id, payload, due_at, status FROM notifications"
                    " WHERE appointment_id = :i ORDER BY id"
                ),
                {"i": appointment_id},
            )
        ).all()
        users = dict(
            (
                await session.execute(
                    text(
                        "SELECT 'doctor', user_id FROM doctors WHERE id = :d UNION ALL"
                        " SELECT 'patient', user_id FROM patients WHERE id = :p"
                    ),
                    {"d": doctor, "p": patient},
                )
            ).all()
        )
        # The project recomputes the ceiling's hash from the stored row.
        assert (await audit.verify(session)).ok
        entry = (
            await session.execute(
                text("SELECT action, entity_id, actor_id FROM audit_log WHERE entity_id = :i"),
                {"i": str(appointment_id)},
            )
        ).one()
    assert tuple(entry) == ("appointment.create", str(appointment_id), users["patient"])
    assert [(n.kind, n.user_id, n.status) for n in notes] == [
        ("appointment.booked", users["patient"], "pending"),
        ("appointment.booked", users["doctor"], "pending"),
        ("appointment.reminder", users["patient"], "pending"),
    ]
    assert notes[2].due_at == (MONDAY - timedelta(hours=24)).replace(tzinfo=None)
    keyring = crypto.Keyring(tuple(crypto.parse_keys(os.environ["EHASS_ENCRYPTION_KEYS"])))
    payload = json.loads(keyring.decrypt(notes[1].payload, context="notifications.payload"))
    assert payload["role"] == "doctor"
    assert payload["to"] == "doctor0@bench.ehass.org"
    assert payload["scheduled_at"] == MONDAY.isoformat()
    assert payload["patient_name"] == "Pat Bench00000"
    assert (
        await _scalar(db, "SELECT version FROM schedule_versions WHERE doctor_id = :d", d=doctor)
        == version + 1
    )


async def test_an_overlap_answers_409_and_writes_nothing(
    booker: Booker, db: Database, data: SeedData
) -> None:
    at = MONDAY + timedelta(days=1)
    first = await booker.book(
        doctor_id=data.doctor_ids[1], patient_id=data.patient_ids[1], at=at, **CLIENT
    )
    assert first.status == 201
    before = await _counts(db)

    doctor_busy = await booker.book(
        doctor_id=data.doctor_ids[1], patient_id=data.patient_ids[2], at=at, **CLIENT
    )
    patient_busy = await booker.book(
        doctor_id=data.doctor_ids[2], patient_id=data.patient_ids[1], at=at, **CLIENT
    )
    # Half-open intervals: the next slot is free for both of them.
    next_slot = await booker.book(
        doctor_id=data.doctor_ids[1],
        patient_id=data.patient_ids[1],
        at=at + timedelta(minutes=30),
        **CLIENT,
    )

    assert (doctor_busy.status, patient_busy.status) == (409, 409)
    assert "Another appointment" in doctor_busy.body["detail"]
    assert "patient already" in patient_busy.body["detail"]
    assert next_slot.status == 201
    after = await _counts(db)
    assert after == (before[0] + 1, before[1] + 3, before[2] + 1, before[3] + 1)


async def test_simultaneous_bookings_of_one_slot_give_one_appointment(
    booker: Booker, db: Database, data: SeedData
) -> None:
    at = MONDAY + timedelta(days=2)
    doctor = data.doctor_ids[3]
    by_patients = [
        booker.book(doctor_id=doctor, patient_id=p, at=at, **CLIENT) for p in data.patient_ids[5:25]
    ]
    # One patient at one time with every doctor: the patient's lock decides.
    patient = data.patient_ids[26]
    by_doctors = [
        booker.book(doctor_id=d, patient_id=patient, at=at + timedelta(hours=1), **CLIENT)
        for d in data.doctor_ids
    ]

    outcomes = await asyncio.gather(*by_patients, *by_doctors)

    statuses = [o.status for o in outcomes]
    assert sorted(statuses[:20]) == [201] + [409] * 19
    assert sorted(statuses[20:]) == [201] + [409] * 3
    async with db.transaction() as session:
        assert (await audit.verify(session)).ok
    taken = await _scalar(
        db,
        "SELECT COUNT(*) FROM appointments WHERE scheduled_at IN (:a, :b)",
        a=at.replace(tzinfo=None),
        b=(at + timedelta(hours=1)).replace(tzinfo=None),
    )
    assert taken == 2


@pytest.mark.parametrize(
    ("doctor_index", "at", "why"),
    [
        (0, MONDAY + timedelta(minutes=10), "off the doctor's 30-minute grid"),
        (0, MONDAY.replace(hour=23, minute=30), "past the end of the window"),
        (0, datetime(2020, 1, 6, 9, 0, tzinfo=UTC), "in the past"),
        (None, MONDAY, "unknown doctor"),
    ],
)
async def test_what_is_not_a_bookable_slot_is_422(
    booker: Booker, db: Database, data: SeedData, doctor_index: int | None, at: datetime, why: str
) -> None:
    before = await _counts(db)
    doctor = data.doctor_ids[doctor_index] if doctor_index is not None else 10**6

    outcome = await booker.book(doctor_id=doctor, patient_id=data.patient_ids[3], at=at, **CLIENT)

    assert outcome.status == 422, why
    assert await _counts(db) == before


async def test_the_audit_row_goes_to_audit_pending_once_the_schema_has_it(
    data: SeedData, db: Database
) -> None:
    await deploy._root_execute(f"CREATE TABLE {DB}.audit_pending {AUDIT_PENDING_COLUMNS}")
    try:
        pending = await Booker.start(DB, maxsize=2)
        before = await _counts(db)
        try:
            outcome = await pending.book(
                doctor_id=data.doctor_ids[0],
                patient_id=data.patient_ids[4],
                at=MONDAY + timedelta(days=3),
                **CLIENT,
            )
        finally:
            await pending.close()
        assert pending.audit_pending
        assert outcome.status == 201
        row = await _scalar(db, "SELECT entity_id FROM audit_pending")
        assert row == str(outcome.body["id"])
        assert (await _counts(db))[2] == before[2]  # nothing in the chain, no head lock
    finally:
        await deploy._root_execute(f"DROP TABLE {DB}.audit_pending")


async def test_the_endpoint_answers_201_then_409_and_422_for_a_bad_body(data: SeedData) -> None:
    import ceiling_app

    body = {
        "doctor_id": data.doctor_ids[2],
        "patient_id": data.patient_ids[28],
        "scheduled_at": "2200-01-10T09:00:00Z",
    }
    app = ceiling_app.build(DB)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://ceiling") as client,
    ):
        first = await client.post("/ceiling/appointments", json=body)
        again = await client.post("/ceiling/appointments", json=body)
        bad = await client.post("/ceiling/appointments", json={"doctor_id": "x"})
        naive = await client.post(
            "/ceiling/appointments", json={**body, "scheduled_at": "2200-01-10T09:00:00"}
        )

    assert first.status_code == 201, first.text
    assert first.json()["scheduled_at"] == body["scheduled_at"]
    assert again.status_code == 409
    assert (bad.status_code, naive.status_code) == (422, 422)
