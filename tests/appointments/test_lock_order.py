"""A booking and a cancellation for the same patient, forced to interleave, both finish.

Two real sessions on a committed database of their own run the real services. The cancel
is stopped right after it has written the appointment row (its locks all taken, its outbox
rows not yet written); the booking is then started and let run until the database makes it
wait for a lock (or finish); then the cancel goes on.

With the one lock order (the doctor's account, the patient's, then the rows) the booking
waits for the patient's account and then sees the cancel's outcome: at the freed time it
books. With the old order (the cancel locked the doctor, then the appointment, and the
patient's account only through its outbox row's foreign key check) the booking ran beside
the cancel, decided against a state about to change, and was refused (409 patient-busy)
at the freed time; under load, MariaDB also answered such pairs with deadlocks (1213).

On SQLite the single writer serialises them anyway; the test still shows both finish.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.util import await_only

from ehass.appointments import service as appointments
from ehass.appointments.models import Appointment, Status
from ehass.appointments.schemas import AppointmentCreate
from ehass.audit import service as audit
from ehass.config import Settings
from ehass.core.clock import FrozenClock
from ehass.core.principal import Principal, Role
from ehass.runtime import Runtime
from ehass.shared import SharedState
from ehass.users import service as users
from ehass.users.models import User
from tests.conftest import DEFAULT_NOW
from tests.factories import Factories
from tests.servers import database_of_its_own

WED_0900 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
# Later than the booking: the next entry after it in the patient's unique slot index.
WED_1000 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
WAIT_SECONDS = 20


@pytest.fixture
async def committed(settings: Settings, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async with database_of_its_own(settings, tmp_path, "lockorder") as (_, engine):
        yield engine


@pytest.fixture
async def rt(settings: Settings) -> AsyncIterator[Runtime]:
    shared = SharedState(settings)
    yield Runtime.create(settings, FrozenClock(DEFAULT_NOW), shared)
    await shared.close()


async def _waits_for_a_lock(engine: AsyncEngine, thread_id: int) -> bool:
    # The server is shared: only the booking's own connection counts.
    async with engine.connect() as connection:
        waiting = await connection.scalar(
            text(
                "SELECT COUNT(*) FROM information_schema.INNODB_TRX"
                " WHERE trx_mysql_thread_id = :thread AND trx_state = 'LOCK WAIT'"
            ),
            {"thread": thread_id},
        )
    return bool(waiting)


async def _until_blocked(
    engine: AsyncEngine, task: asyncio.Task[Any], thread_id: asyncio.Future[int]
) -> None:
    """Returns once `task` waits on a lock (MariaDB) or after a moment (SQLite, where the
    second session waits for the single pooled connection)."""
    if engine.dialect.name != "mysql":
        await asyncio.sleep(0.5)
        return
    thread = await asyncio.wait_for(thread_id, WAIT_SECONDS)
    for _ in range(WAIT_SECONDS * 4):
        if task.done() or await _waits_for_a_lock(engine, thread):
            return
        # MariaDB rebuilds innodb_trx only when it was last read over 0.1 s ago: polled
        # faster, it never shows the wait.
        await asyncio.sleep(0.25)
    raise AssertionError("the second transaction never waited for the first one's locks")


async def _committed(session: AsyncSession) -> None:
    await audit.append(session)
    await session.commit()


@pytest.mark.parametrize("book_at", [WED_0900, WED_1000], ids=["earlier", "the-freed-time"])
@pytest.mark.parametrize("same_doctor", [False, True], ids=["other-doctor", "same-doctor"])
async def test_a_booking_and_a_cancellation_for_one_patient_do_not_deadlock(
    committed: AsyncEngine, rt: Runtime, same_doctor: bool, book_at: datetime
) -> None:
    maker = async_sessionmaker(committed, expire_on_commit=False)
    async with maker() as seed:
        factories = Factories(session=seed, client=None, clock=rt.clock)  # type: ignore[arg-type]
        patient = await factories.patient()
        cancelled_doctor = await factories.doctor()
        booked_doctor = cancelled_doctor if same_doctor else await factories.doctor()
        existing = await factories.appointment(
            patient=patient, doctor=cancelled_doctor, at=WED_1000
        )
        await seed.commit()
    assert patient.patient is not None and booked_doctor.doctor is not None
    principal = Principal(
        user_id=patient.id,
        role=Role.PATIENT,
        session_id="lock-order-test",
        patient_id=patient.patient.id,
    )

    written = asyncio.Event()
    go_on = asyncio.Event()

    async def cancel() -> None:
        async with maker() as session:
            connection = await session.connection()
            if committed.dialect.name == "mysql":
                # Bounded, so that a lock wait the deadlock detector misses fails quickly.
                await connection.execute(text("SET SESSION innodb_lock_wait_timeout = 15"))

            def stop_after_the_row(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
                if statement.lstrip().upper().startswith("UPDATE APPOINTMENTS") and not (
                    written.is_set()
                ):
                    written.set()
                    await_only(go_on.wait())

            event.listen(connection.sync_connection, "after_cursor_execute", stop_after_the_row)
            await appointments.cancel(session, rt, principal, appointment_id=existing.id)
            await _committed(session)

    booking_thread: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def book() -> None:
        async with maker() as session:
            if committed.dialect.name == "mysql":
                await session.execute(text("SET SESSION innodb_lock_wait_timeout = 15"))
                booking_thread.set_result(int(await session.scalar(text("SELECT CONNECTION_ID()"))))
            await appointments.book(
                session,
                rt,
                principal,
                request=AppointmentCreate(doctor_id=booked_doctor.doctor.id, scheduled_at=book_at),
            )
            await _committed(session)

    cancelling = asyncio.create_task(cancel())
    try:
        await asyncio.wait_for(written.wait(), WAIT_SECONDS)
        booking = asyncio.create_task(book())
        await _until_blocked(committed, booking, booking_thread)
        go_on.set()
        results = await asyncio.wait_for(
            asyncio.gather(cancelling, booking, return_exceptions=True), WAIT_SECONDS * 2
        )
    finally:
        go_on.set()
        for task in (cancelling,):
            if not task.done():
                task.cancel()
                with suppress(BaseException):
                    await task

    assert results == [None, None], results  # a deadlock victim would raise OperationalError
    async with maker() as check:
        rows = (
            await check.scalars(
                select(Appointment)
                .where(Appointment.patient_id == patient.patient.id)
                .order_by(Appointment.scheduled_at)
            )
        ).all()
    assert sorted((row.scheduled_at, row.status) for row in rows) == sorted(
        [(book_at, Status.SCHEDULED), (WED_1000, Status.CANCELLED)]
    )


def _stop_after_locking(
    connection: Any, account_id: int, locked: asyncio.Event, go_on: asyncio.Event
) -> None:
    """Holds the session's statements right after it first reads (and on MariaDB locks) the
    account row `account_id`."""

    def stop(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if (
            not locked.is_set()
            # SQLite renders no FOR UPDATE: the read of the account row is the point.
            and "FROM USERS" in statement.upper()
            and account_id in tuple(parameters or ())
        ):
            locked.set()
            await_only(go_on.wait())

    event.listen(connection.sync_connection, "after_cursor_execute", stop)


async def _thread_id(session: AsyncSession, engine: AsyncEngine, into: asyncio.Future[int]) -> None:
    if engine.dialect.name == "mysql":
        await session.execute(text("SET SESSION innodb_lock_wait_timeout = 15"))
        into.set_result(int(await session.scalar(text("SELECT CONNECTION_ID()"))))


async def test_closing_a_patient_and_their_doctors_cancellation_do_not_deadlock(
    committed: AsyncEngine, rt: Runtime
) -> None:
    """An administrator closes a patient's account while the patient's doctor cancels one
    of their appointments. Closing is stopped right after it has locked the patient's
    account; the doctor's cancel then runs until it waits. With the patient's account
    locked first, the cancel held the doctor's account and waited for the patient's, while
    closing cancelled the appointments and, through its outbox row for the doctor, waited
    for the doctor's account: MariaDB named a deadlock victim (1213). Closing now locks the
    doctors' accounts first, so the cancel waits for it and then finds its appointment
    already cancelled."""
    maker = async_sessionmaker(committed, expire_on_commit=False)
    async with maker() as seed:
        factories = Factories(session=seed, client=None, clock=rt.clock)  # type: ignore[arg-type]
        admin = await factories.admin()
        patient = await factories.patient()
        doctor = await factories.doctor()
        other_doctor = await factories.doctor()
        existing = await factories.appointment(patient=patient, doctor=doctor, at=WED_0900)
        await factories.appointment(patient=patient, doctor=other_doctor, at=WED_1000)
        await seed.commit()
    assert patient.patient is not None and doctor.doctor is not None
    as_admin = Principal(user_id=admin.id, role=Role.ADMIN, session_id="close-test")
    as_doctor = Principal(
        user_id=doctor.id, role=Role.DOCTOR, session_id="cancel-test", doctor_id=doctor.doctor.id
    )

    locked = asyncio.Event()
    go_on = asyncio.Event()

    async def close() -> None:
        async with maker() as session:
            connection = await session.connection()
            if committed.dialect.name == "mysql":
                await connection.execute(text("SET SESSION innodb_lock_wait_timeout = 15"))
            _stop_after_locking(connection, patient.id, locked, go_on)
            await users.deactivate(session, rt, as_admin, user_id=patient.id)
            await _committed(session)

    cancel_thread: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def cancel() -> None:
        async with maker() as session:
            await _thread_id(session, committed, cancel_thread)
            await appointments.cancel(session, rt, as_doctor, appointment_id=existing.id)
            await _committed(session)

    closing = asyncio.create_task(close())
    try:
        await asyncio.wait_for(locked.wait(), WAIT_SECONDS)
        cancelling = asyncio.create_task(cancel())
        await _until_blocked(committed, cancelling, cancel_thread)
        go_on.set()
        results = await asyncio.wait_for(
            asyncio.gather(closing, cancelling, return_exceptions=True), WAIT_SECONDS * 2
        )
    finally:
        go_on.set()
        if not closing.done():
            closing.cancel()
            with suppress(BaseException):
                await closing

    assert results == [None, None], results  # a deadlock victim would raise OperationalError
    async with maker() as check:
        statuses = (
            await check.scalars(
                select(Appointment.status).where(Appointment.patient_id == patient.patient.id)
            )
        ).all()
        active = await check.scalar(select(User.is_active).where(User.id == patient.id))
    assert sorted(statuses) == [Status.CANCELLED, Status.CANCELLED]
    assert active is False
