"""Bench data, written before the clock starts straight through the project's models
(one transaction, no HTTP, one argon2id hash shared by every account)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime

PASSWORD = "bench-password-2026-correct-horse"  # noqa: S105 - throwaway local bench accounts
SPECIALTIES = [
    "Cardiology",
    "Neurology",
    "Dermatology",
    "Pediatrics",
    "General Practice",
    "Oncology",
    "Orthopedics",
    "Psychiatry",
    "Radiology",
    "Ophthalmology",
]
# Seeded appointments start this many days ahead: past the 24 h cancellation notice.
FIRST_SEEDED_DAY = 3


@dataclass
class SeedData:
    doctor_ids: list[int]
    patient_ids: list[int]
    patient_emails: list[str]
    # Index of a token-holding patient -> ids of its scheduled appointments.
    appointments: dict[int, list[int]]


async def seed(n_patients: int, n_doctors: int, n_with_appts: int) -> SeedData:
    """Doctors available Mon-Sun 00:00-23:30 UTC in 30-minute slots; patients; two
    appointments for each of the first `n_with_appts` patients, so reschedule and cancel
    have targets from the first second."""
    from ehass.appointments.models import Appointment, Status
    from ehass.availability.models import WeeklyWindow
    from ehass.config import Settings
    from ehass.core import crypto
    from ehass.core.passwords import hash_password_sync
    from ehass.db import Database
    from ehass.doctors.models import Doctor
    from ehass.runtime import build_keyring
    from ehass.users.models import Patient, User

    settings = Settings()
    crypto.configure(build_keyring(settings))  # date of birth is an encrypted column
    pw_hash = hash_password_sync(PASSWORD)
    now = datetime.now(UTC).replace(microsecond=0)
    rng = random.Random(42)

    def user(role: str, email: str, name: str, **profile: object) -> User:
        return User(
            email=email,
            name=name,
            password_hash=pw_hash,
            role=role,
            is_active=True,
            created_at=now,
            updated_at=now,
            **profile,
        )

    def birth_date() -> date:
        return date(1950 + rng.randrange(60), 1 + rng.randrange(12), 1 + rng.randrange(28))

    doctors = [
        user(
            "doctor",
            f"doctor{i}@bench.ehass.org",
            f"Dr Bench Doc{i:04d}",
            patient=None,
            doctor=Doctor(
                specialty=SPECIALTIES[i % len(SPECIALTIES)], timezone="UTC", slot_minutes=30
            ),
        )
        for i in range(n_doctors)
    ]
    patients = [
        user(
            "patient",
            f"patient{i}@bench.ehass.org",
            f"Pat Bench{i:05d}",
            doctor=None,
            patient=Patient(date_of_birth=birth_date()),
        )
        for i in range(n_patients)
    ]

    db = Database.from_settings(settings)
    try:
        async with db.transaction() as session:
            session.add_all(doctors + patients)
            await session.flush()
            doctor_ids = [u.doctor.id for u in doctors]
            session.add_all(
                WeeklyWindow(doctor_id=d, weekday=wd, start_time=dtime(0), end_time=dtime(23, 30))
                for d in doctor_ids
                for wd in range(7)
            )
            midnight = datetime.combine(now.date(), dtime(0), tzinfo=UTC)
            owned: list[tuple[int, Appointment]] = []
            for i in range(n_with_appts):
                for k, hour in enumerate((10, 14)):
                    j = 2 * i + k  # spread over the doctors, then over the days
                    at = midnight + timedelta(days=FIRST_SEEDED_DAY + j // n_doctors, hours=hour)
                    owned.append(
                        (
                            i,
                            Appointment(
                                patient_id=patients[i].patient.id,
                                doctor_id=doctor_ids[j % n_doctors],
                                scheduled_at=at,
                                ends_at=at + timedelta(minutes=30),
                                status=Status.SCHEDULED,
                                reason="bench seed",
                                created_at=now,
                                updated_at=now,
                            ),
                        )
                    )
            session.add_all(a for _, a in owned)
            await session.flush()
            appointments: dict[int, list[int]] = {}
            for i, a in owned:
                appointments.setdefault(i, []).append(a.id)
        return SeedData(
            doctor_ids=doctor_ids,
            patient_ids=[u.patient.id for u in patients],
            patient_emails=[u.email for u in patients],
            appointments=appointments,
        )
    finally:
        await db.dispose()
