"""Test data builders: `await factories.doctor(timezone="Europe/Berlin")`."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from ehass.appointments.models import Appointment, Status
from ehass.availability.models import AvailabilityOverride, WeeklyWindow
from ehass.core.clock import FrozenClock
from ehass.core.passwords import hash_password_sync
from ehass.core.principal import Role
from ehass.doctors.models import Doctor
from ehass.users.models import Patient, User

PASSWORD = "correct horse battery staple 42"
_PASSWORD_HASH = hash_password_sync(PASSWORD)  # hashed once: argon2id is slow on purpose
_ids = itertools.count(1)
WEEKDAYS_9_TO_5 = {day: [(time(9), time(17))] for day in range(5)}


@dataclass
class Factories:
    session: AsyncSession
    client: httpx.AsyncClient
    clock: FrozenClock
    _tokens: dict[int, dict[str, Any]] = field(default_factory=dict)

    async def user(self, role: Role, **overrides: Any) -> User:
        n = next(_ids)
        now = self.clock.now()
        values: dict[str, Any] = {
            "email": f"user{n}-{role}@test.ehass.org",
            "name": f"{role.title()} Number{n}",
            "password_hash": _PASSWORD_HASH,
            "role": role,
            "is_active": True,
            "created_at": now,
            "updated_at": now,
            "patient": None,
            "doctor": None,
        }
        values.update(overrides)
        user = User(**values)
        self.session.add(user)
        await self.session.flush()
        return user

    async def patient(self, *, date_of_birth: date = date(1990, 4, 1), **overrides: Any) -> User:
        return await self.user(
            Role.PATIENT, patient=Patient(date_of_birth=date_of_birth), **overrides
        )

    async def admin(self, **overrides: Any) -> User:
        return await self.user(Role.ADMIN, **overrides)

    async def doctor(
        self,
        *,
        specialty: str = "General Practice",
        timezone: str = "UTC",
        slot_minutes: int = 30,
        weekly: dict[int, list[tuple[time, time]]] | None = None,
        overrides: dict[date, list[tuple[time, time]]] | None = None,
        **user_overrides: Any,
    ) -> User:
        doctor = Doctor(specialty=specialty, timezone=timezone, slot_minutes=slot_minutes)
        user = await self.user(Role.DOCTOR, doctor=doctor, **user_overrides)
        for weekday, windows in (WEEKDAYS_9_TO_5 if weekly is None else weekly).items():
            for start, end in windows:
                self.session.add(
                    WeeklyWindow(
                        doctor_id=doctor.id, weekday=weekday, start_time=start, end_time=end
                    )
                )
        for on_date, windows in (overrides or {}).items():
            self.session.add(
                AvailabilityOverride(
                    doctor_id=doctor.id,
                    on_date=on_date,
                    windows=[
                        {"start": s.strftime("%H:%M"), "end": e.strftime("%H:%M")}
                        for s, e in windows
                    ],
                )
            )
        await self.session.flush()
        return user

    async def appointment(
        self,
        *,
        patient: User,
        doctor: User,
        at: datetime,
        minutes: int = 30,
        status: Status = Status.SCHEDULED,
        reason: str | None = "check-up",
    ) -> Appointment:
        assert patient.patient is not None and doctor.doctor is not None
        now = self.clock.now()
        appointment = Appointment(
            patient_id=patient.patient.id,
            doctor_id=doctor.doctor.id,
            scheduled_at=at,
            ends_at=at + timedelta(minutes=minutes),
            status=status,
            reason=reason,
            created_at=now,
            updated_at=now,
        )
        self.session.add(appointment)
        await self.session.flush()
        return appointment

    async def login(self, user: User, password: str = PASSWORD) -> dict[str, Any]:
        response = await self.client.post(
            "/api/v1/auth/login", json={"email": user.email, "password": password}
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def token(self, user: User) -> str:
        if user.id not in self._tokens:
            self._tokens[user.id] = await self.login(user)
        return self._tokens[user.id]["access_token"]
