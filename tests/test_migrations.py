"""The Alembic migrations build exactly the schema the models describe, on this backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from ehass.migrate import head_revision
from ehass.models import Base


async def test_migrations_match_the_models(engine):
    async with engine.connect() as connection:
        diff = await connection.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata
            )
        )
    assert diff == []


async def test_database_is_at_the_head_revision(engine):
    async with engine.connect() as connection:
        current = (
            await connection.execute(text("SELECT version_num FROM alembic_version"))
        ).scalar()
    assert current == head_revision()


async def test_upgrading_encrypts_existing_health_data(settings, tmp_path, monkeypatch):
    """Rows written before field encryption are encrypted in place by the migration."""
    import anyio.to_thread
    from sqlalchemy import select
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from ehass.appointments.models import Appointment
    from ehass.config import get_settings
    from ehass.core.clock import SystemClock
    from ehass.migrate import upgrade
    from ehass.runtime import Runtime
    from ehass.shared import SharedState
    from ehass.users.models import Patient
    from tests.servers import database_of_its_own

    monkeypatch.setenv("EHASS_SECRET_KEY", settings.secret_key.get_secret_value())
    monkeypatch.setenv("EHASS_ENCRYPTION_KEYS", settings.encryption_keys.get_secret_value())
    get_settings.cache_clear()
    try:
        async with database_of_its_own(settings, tmp_path, "upgrade") as (url, engine):
            async with engine.begin() as connection:
                for table in ("audit_log", "audit_chain_head"):
                    await connection.execute(text(f"DROP TABLE IF EXISTS {table}"))
                await connection.run_sync(lambda sync: Base.metadata.drop_all(sync))
                await connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
            await anyio.to_thread.run_sync(upgrade, url, BEFORE_ENCRYPTION)
            async with engine.begin() as connection:
                await connection.execute(
                    text(
                        "INSERT INTO users (id, email, name, password_hash, role, is_active, "
                        "created_at, updated_at) VALUES (1, 'p@example.org', 'P', 'x', 'patient', "
                        "1, '2026-11-01 10:00:00', '2026-11-01 10:00:00'), (2, 'd@example.org', "
                        "'D', 'x', 'doctor', 1, '2026-11-01 10:00:00', '2026-11-01 10:00:00')"
                    )
                )
                await connection.execute(
                    text(
                        "INSERT INTO patients (id, user_id, date_of_birth) "
                        "VALUES (1, 1, '1980-02-29')"
                    )
                )
                await connection.execute(
                    text(
                        "INSERT INTO doctors (id, user_id, specialty, timezone, slot_minutes) "
                        "VALUES (1, 2, 'GP', 'UTC', 30)"
                    )
                )
                await connection.execute(
                    text(
                        "INSERT INTO appointments (id, patient_id, doctor_id, scheduled_at, "
                        "ends_at, status, reason, created_at, updated_at) VALUES (1, 1, 1, "
                        "'2026-12-01 09:00:00', '2026-12-01 09:30:00', 'scheduled', 'migraine', "
                        "'2026-11-01 10:00:00', '2026-11-01 10:00:00')"
                    )
                )
            await anyio.to_thread.run_sync(upgrade, url)

            Runtime.create(settings, SystemClock(), SharedState(settings))  # the test keyring
            async with engine.connect() as connection:
                raw_dob = (
                    await connection.execute(text("SELECT date_of_birth FROM patients"))
                ).scalar()
                raw_reason = (
                    await connection.execute(text("SELECT reason FROM appointments"))
                ).scalar()
                verified = (
                    await connection.execute(text("SELECT email_verified FROM users ORDER BY id"))
                ).scalars()
                # Accounts older than email verification count as verified (see the migration).
                assert [bool(v) for v in verified] == [True, True]
            assert str(raw_dob).startswith("v1.") and "1980" not in str(raw_dob)
            assert str(raw_reason).startswith("v1.") and "migraine" not in str(raw_reason)
            async with async_sessionmaker(engine)() as session:
                patient = (await session.execute(select(Patient))).scalar_one()
                appointment = (await session.execute(select(Appointment))).scalar_one()
            assert patient.date_of_birth.isoformat() == "1980-02-29"
            assert appointment.reason == "migraine"
    finally:
        get_settings.cache_clear()


BEFORE_ENCRYPTION = "670dafc68f1d"


def test_the_head_read_from_the_files_is_alembics_head():
    from alembic.script import ScriptDirectory

    from ehass.migrate import alembic_config

    expected = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head_revision() == expected
