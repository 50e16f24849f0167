"""Key rotation: every encrypted value moves to the newest key, readable throughout."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import async_sessionmaker

from ehass.appointments.models import Appointment
from ehass.core import crypto
from ehass.core.clock import SystemClock
from ehass.keys import rotate
from ehass.users.models import Patient
from tests.factories import Factories
from tests.servers import database_of_its_own

OLD = ("old", os.urandom(32))
NEW = ("new", os.urandom(32))


async def test_rotation_re_encrypts_everything_under_the_newest_key(settings, tmp_path, keyring):
    try:
        async with database_of_its_own(settings, tmp_path, "keys") as (_, engine):
            crypto.configure(crypto.Keyring((OLD,)))
            sessions = async_sessionmaker(engine, expire_on_commit=False)
            async with sessions() as session:
                factories = Factories(session=session, client=None, clock=SystemClock())  # type: ignore[arg-type]
                doctor = await factories.doctor()
                patients = [
                    await factories.patient(date_of_birth=date(1950 + n, 1, 2)) for n in range(7)
                ]
                for n, patient in enumerate(patients):
                    await factories.appointment(
                        patient=patient,
                        doctor=doctor,
                        at=datetime(2026, 12, 1 + n, 9, tzinfo=UTC),
                        reason=f"reason {n}",
                    )
                await session.commit()

            both = crypto.Keyring((NEW, OLD))
            crypto.configure(both)
            changed = await rotate(engine, both, batch_size=3, progress=False)
            assert changed == 14
            assert await rotate(engine, both, batch_size=3, progress=False) == 0  # idempotent

            async with engine.connect() as connection:
                raw = [
                    *(
                        await connection.execute(text("SELECT date_of_birth FROM patients"))
                    ).scalars(),
                    *(await connection.execute(text("SELECT reason FROM appointments"))).scalars(),
                ]
            assert raw and all(value.startswith("v1.new.") for value in raw)

            crypto.configure(crypto.Keyring((NEW,)))  # the old key can now be retired
            async with sessions() as session:
                births = sorted(
                    p.date_of_birth.year for p in (await session.execute(select(Patient))).scalars()
                )
                reasons = sorted(
                    a.reason for a in (await session.execute(select(Appointment))).scalars()
                )
            assert births == list(range(1950, 1957))
            assert reasons == [f"reason {n}" for n in range(7)]
    finally:
        crypto.configure(keyring)
