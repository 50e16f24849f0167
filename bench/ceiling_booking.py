"""Ceiling (b): the transaction a booking must commit, on the raw asyncmy driver.

The project's POST /appointments can only be as fast as the database work its guarantees
require. This is that work and nothing else, in one transaction, in the project's lock
order (bench/README.md, "Ceilings"; research/performance.md §3 P2 and §6.3):

1. the doctor's `users` row FOR UPDATE, then the patient's (what the messages quote comes
   from these rows);
2. the doctor overlap and the patient overlap on `appointments` (half-open intervals,
   status scheduled: the predicate of appointments/repository.py `has_overlap`);
3. INSERT the appointment (its unique indexes are the last guard: a duplicate is a 409);
4. INSERT the outbox rows a booking writes (notifications/service.py `appointment_booked`:
   "booked" to both people, a reminder 24 h ahead), payloads AES-GCM encrypted as the
   project stores them;
5. INSERT the audit row: into `audit_pending` once that table exists (no chain lock),
   else into `audit_log` under the chain head's lock, hashed exactly as audit.seal does;
6. raise the doctor's `schedule_versions` row (availability/versions.py), last;
7. COMMIT.

What it leaves out is what the project's number pays for: FastAPI, authentication, the
SQLAlchemy session and ORM, pydantic, middleware, and the live-page PUBLISH after the
commit. The doctor/patient -> account maps, the doctors' slot length and weekly windows are
read once at start (the project may cache them too: account ids never change).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncmy
from asyncmy.errors import IntegrityError

from ehass.audit.chain import FIELDS, link_hash
from ehass.core import crypto

DUPLICATE_KEY = 1062
# settings.reminder_offsets_hours' default: one reminder, a day ahead.
REMINDER_HOURS = (24,)
MAIL_DOMAIN = "bench.ehass.org"
HEAD_ID = 1

LOCK_USER = "SELECT id, is_active, email, name FROM users WHERE id = %s FOR UPDATE"
_OVERLAP = (
    "SELECT EXISTS (SELECT 1 FROM appointments WHERE status = 'scheduled' "
    "AND scheduled_at < %s AND ends_at > %s AND {owner} = %s)"
)
DOCTOR_OVERLAP = _OVERLAP.format(owner="doctor_id")
PATIENT_OVERLAP = _OVERLAP.format(owner="patient_id")
INSERT_APPOINTMENT = (
    "INSERT INTO appointments (patient_id, doctor_id, scheduled_at, ends_at, status, reason,"
    " created_at, updated_at, sequence) VALUES (%s, %s, %s, %s, 'scheduled', NULL, %s, %s, 0)"
)
_NOTIFICATION_COLUMNS = (
    "INSERT INTO notifications (kind, status, user_id, appointment_id, message_id, payload,"
    " due_at, attempts, request_id, created_at) VALUES "
)
_NOTIFICATION_ROW = "(%s, 'pending', %s, %s, %s, %s, %s, 0, %s, %s)"
# The columns after `at` and before `changes`: the chain's order, which the INSERTs below
# follow (the tests verify the chain the ceiling writes).
_AUDIT_FIELDS = tuple(f for f in FIELDS if f not in ("id", "at", "changes"))
INSERT_AUDIT_PENDING = (
    "INSERT INTO audit_pending (at, actor_id, actor_role, action, entity, entity_id, ip,"
    " user_agent, request_id, changes) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
LOCK_CHAIN_HEAD = "SELECT last_id, last_hash FROM audit_chain_head WHERE id = %s FOR UPDATE"
INSERT_AUDIT_LOG = (
    "INSERT INTO audit_log (id, at, actor_id, actor_role, action, entity, entity_id, ip,"
    " user_agent, request_id, changes, prev_hash, hash)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
UPDATE_CHAIN_HEAD = "UPDATE audit_chain_head SET last_id = %s, last_hash = %s WHERE id = %s"
RAISE_VERSION = "UPDATE schedule_versions SET version = version + 1 WHERE doctor_id = %s"
HAS_AUDIT_PENDING = (
    "SELECT COUNT(*) FROM information_schema.tables "
    "WHERE table_schema = DATABASE() AND table_name = 'audit_pending'"
)


@dataclass(frozen=True, slots=True)
class Doctor:
    user_id: int
    timezone: str
    slot_minutes: int
    # weekday -> [(start, end) in minutes from midnight]; bench doctors are all UTC.
    windows: Mapping[int, tuple[tuple[int, int], ...]]

    def is_slot_start(self, at: datetime) -> bool:
        minute = at.hour * 60 + at.minute
        if at.second or at.microsecond:
            return False
        return any(
            start <= minute
            and minute + self.slot_minutes <= end
            and (minute - start) % self.slot_minutes == 0
            for start, end in self.windows.get(at.weekday(), ())
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int
    body: dict[str, Any]


def _minutes(value: timedelta) -> int:
    # MySQL TIME comes back from the driver as a timedelta.
    return int(value.total_seconds()) // 60


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


async def local_pool(database: str, *, maxsize: int, **options: Any) -> asyncmy.Pool:
    """A pool on the bench's MariaDB (127.0.0.1, root), as the ceilings use it."""
    return await asyncmy.create_pool(
        host="127.0.0.1",
        port=3306,
        user="root",
        password="",
        db=database,
        minsize=1,
        maxsize=maxsize,
        **options,
    )


def _keyring() -> crypto.Keyring:
    """The deployment's key when the bench passes it on, else a throwaway one: the cost of
    encrypting is the same, and nothing reads these rows back."""
    spec = os.environ.get("EHASS_ENCRYPTION_KEYS")
    if spec:
        return crypto.Keyring(tuple(crypto.parse_keys(spec)))
    return crypto.Keyring((("bench", os.urandom(32)),))


class Booker:
    """Books through a pool of autocommit-off connections under READ COMMITTED (the
    project's isolation level: a check after a lock sees what others committed before it)."""

    def __init__(
        self,
        pool: asyncmy.Pool,
        *,
        doctors: Mapping[int, Doctor],
        patients: Mapping[int, int],
        audit_pending: bool,
    ) -> None:
        self.pool = pool
        self.doctors = doctors
        self.patients = patients
        self.audit_pending = audit_pending
        self.keyring = _keyring()

    @classmethod
    async def start(cls, database: str, *, maxsize: int) -> Booker:
        pool = await local_pool(
            database,
            maxsize=maxsize,
            autocommit=False,
            init_command="SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        )
        async with pool.acquire() as conn, conn.cursor() as cur:
            # Once, at start: the schema does not change under a running bench.
            await cur.execute(HAS_AUDIT_PENDING)
            audit_pending = bool((await cur.fetchone())[0])
            await cur.execute("SELECT doctor_id, weekday, start_time, end_time FROM weekly_windows")
            windows: dict[int, dict[int, list[tuple[int, int]]]] = {}
            for doctor_id, weekday, start, end in await cur.fetchall():
                day = windows.setdefault(doctor_id, {}).setdefault(weekday, [])
                day.append((_minutes(start), _minutes(end)))
            await cur.execute("SELECT id, user_id, timezone, slot_minutes FROM doctors")
            doctors = {
                d: Doctor(
                    user_id=u,
                    timezone=tz,
                    slot_minutes=minutes,
                    windows={k: tuple(v) for k, v in windows.get(d, {}).items()},
                )
                for d, u, tz, minutes in await cur.fetchall()
            }
            await cur.execute("SELECT id, user_id FROM patients")
            patients = dict(await cur.fetchall())
            await conn.commit()
        return cls(pool, doctors=doctors, patients=patients, audit_pending=audit_pending)

    async def close(self) -> None:
        self.pool.close()
        await self.pool.wait_closed()

    async def book(
        self,
        *,
        doctor_id: int,
        patient_id: int,
        at: datetime,
        ip: str | None,
        user_agent: str | None,
        request_id: str,
    ) -> Outcome:
        now = datetime.now(UTC).replace(microsecond=0)
        doctor = self.doctors.get(doctor_id)
        patient_user = self.patients.get(patient_id)
        if doctor is None or patient_user is None:
            return Outcome(422, {"detail": "unknown doctor or patient"})
        if at < now or not doctor.is_slot_start(at):
            return Outcome(422, {"detail": "not a future slot start of this doctor"})
        end = at + timedelta(minutes=doctor.slot_minutes)
        async with self.pool.acquire() as conn:
            try:
                async with conn.cursor() as cur:
                    outcome = await self._transaction(
                        cur,
                        doctor_id=doctor_id,
                        doctor=doctor,
                        patient_id=patient_id,
                        patient_user=patient_user,
                        start=at,
                        end=end,
                        now=now,
                        client=(ip, (user_agent or "")[:255] or None, request_id),
                    )
                if outcome.status == 201:
                    await conn.commit()
                else:
                    await conn.rollback()
                return outcome
            except IntegrityError as exc:
                await conn.rollback()
                if exc.args and exc.args[0] == DUPLICATE_KEY:
                    # Two bookings passed the checks at once: the unique index decided.
                    return Outcome(409, {"detail": "slot taken"})
                raise
            except BaseException:
                await conn.rollback()
                raise

    async def _transaction(
        self,
        cur: Any,
        *,
        doctor_id: int,
        doctor: Doctor,
        patient_id: int,
        patient_user: int,
        start: datetime,
        end: datetime,
        now: datetime,
        client: tuple[str | None, str | None, str],
    ) -> Outcome:
        naive = {k: v.replace(tzinfo=None) for k, v in (("start", start), ("end", end))}
        naive_now = now.replace(tzinfo=None)
        # Doctor first, always: two bookings never wait on each other in opposite orders.
        await cur.execute(LOCK_USER, (doctor.user_id,))
        doctor_row = await cur.fetchone()
        await cur.execute(LOCK_USER, (patient_user,))
        patient_row = await cur.fetchone()
        if not (doctor_row and doctor_row[1] and patient_row and patient_row[1]):
            return Outcome(422, {"detail": "inactive doctor or patient"})
        await cur.execute(DOCTOR_OVERLAP, (naive["end"], naive["start"], doctor_id))
        if (await cur.fetchone())[0]:
            return Outcome(409, {"detail": "Another appointment holds this time."})
        await cur.execute(PATIENT_OVERLAP, (naive["end"], naive["start"], patient_id))
        if (await cur.fetchone())[0]:
            return Outcome(409, {"detail": "The patient already has an appointment at this time."})
        await cur.execute(
            INSERT_APPOINTMENT,
            (patient_id, doctor_id, naive["start"], naive["end"], naive_now, naive_now),
        )
        appointment_id = cur.lastrowid
        ip, user_agent, request_id = client
        await self._outbox(
            cur,
            appointment_id=appointment_id,
            doctor=doctor,
            people=(doctor_row, patient_row),
            start=start,
            end=end,
            now=now,
            request_id=request_id,
        )
        fields = {
            "at": now,
            "actor_id": patient_row[0],
            "actor_role": "patient",
            "action": "appointment.create",
            "entity": "appointment",
            "entity_id": str(appointment_id),
            "ip": ip,
            "user_agent": user_agent,
            "request_id": request_id,
            # audit.snapshot of the appointment's fields, as the JSON column reads back.
            "changes": {
                "doctor_id": {"after": doctor_id},
                "ends_at": {"after": _iso(end)},
                "patient_id": {"after": patient_id},
                "reason": {"after": None},
                "scheduled_at": {"after": _iso(start)},
                "status": {"after": "scheduled"},
            },
        }
        await self._audit(cur, fields)
        # Last, as versions.py does: no other statement locks this row.
        await cur.execute(RAISE_VERSION, (doctor_id,))
        return Outcome(
            201,
            {
                "id": appointment_id,
                "doctor_id": doctor_id,
                "patient_id": patient_id,
                "scheduled_at": _iso(start),
                "ends_at": _iso(end),
                "status": "scheduled",
            },
        )

    async def _outbox(
        self,
        cur: Any,
        *,
        appointment_id: int,
        doctor: Doctor,
        people: tuple[tuple, tuple],
        start: datetime,
        end: datetime,
        now: datetime,
        request_id: str,
    ) -> None:
        doctor_row, patient_row = people

        def payload(recipient: tuple, role: str) -> str:
            plain = {
                "to": recipient[2],
                "name": recipient[3],
                "role": role,
                "appointment_id": appointment_id,
                "sequence": 0,
                "scheduled_at": start.isoformat(),
                "ends_at": end.isoformat(),
                "timezone": doctor.timezone,
                "doctor_name": doctor_row[3],
                "patient_name": patient_row[3],
            }
            text = json.dumps(plain, separators=(",", ":"), ensure_ascii=False)
            return self.keyring.encrypt(text, context="notifications.payload")

        naive_now = now.replace(tzinfo=None)
        rows = [
            ("appointment.booked", patient_row[0], payload(patient_row, "patient"), naive_now),
            ("appointment.booked", doctor_row[0], payload(doctor_row, "doctor"), naive_now),
        ]
        for hours in sorted(set(REMINDER_HOURS), reverse=True):
            due = start - timedelta(hours=hours)
            if due > now:
                rows.append(
                    (
                        "appointment.reminder",
                        patient_row[0],
                        payload(patient_row, "patient"),
                        due.replace(tzinfo=None),
                    )
                )
        params: list[Any] = []
        for kind, user_id, blob, due_at in rows:
            message_id = f"<{secrets.token_hex(16)}@{MAIL_DOMAIN}>"
            params += [kind, user_id, appointment_id, message_id, blob, due_at, request_id]
            params.append(naive_now)
        await cur.execute(
            _NOTIFICATION_COLUMNS + ", ".join([_NOTIFICATION_ROW] * len(rows)), params
        )

    async def _audit(self, cur: Any, fields: dict[str, Any]) -> None:
        values = [
            fields["at"].replace(tzinfo=None),
            *(fields[k] for k in _AUDIT_FIELDS),
            json.dumps(fields["changes"]),
        ]
        if self.audit_pending:
            await cur.execute(INSERT_AUDIT_PENDING, values)
            return
        # Today's trail: the next link of the chain, under the head's lock until COMMIT.
        await cur.execute(LOCK_CHAIN_HEAD, (HEAD_ID,))
        last_id, last_hash = await cur.fetchone()
        entry_id = last_id + 1
        entry_hash = link_hash(last_hash, {**fields, "id": entry_id})
        await cur.execute(INSERT_AUDIT_LOG, [entry_id, *values, last_hash, entry_hash])
        await cur.execute(UPDATE_CHAIN_HEAD, (entry_id, entry_hash, HEAD_ID))
