"""Administrator creation and demo data, for `ehass create-admin` and `ehass seed-demo`."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import date
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from ehass.audit import checkpoint, sealer
from ehass.audit import service as audit_service
from ehass.availability.schemas import AvailabilityWrite
from ehass.availability.service import replace as replace_availability
from ehass.config import Settings
from ehass.core.clock import SystemClock
from ehass.core.principal import Principal, Role
from ehass.db import Database
from ehass.errors import DomainError
from ehass.runtime import Runtime, audit_signing_key
from ehass.shared import SharedState
from ehass.users import repository as user_repository
from ehass.users import service as user_service
from ehass.users.schemas import RegisterRequest

DEMO_PASSWORD = "demo-password-2026"  # noqa: S105 - documented demo logins, development only
DEMO_ADMIN = ("admin@demo.ehass.org", "Avery Admin")
DEMO_DOCTORS = [
    ("grace.hopper@demo.ehass.org", "Dr Grace Hopper", "Cardiology", "America/New_York"),
    ("alan.turing@demo.ehass.org", "Dr Alan Turing", "Neurology", "Europe/London"),
    ("lise.meitner@demo.ehass.org", "Dr Lise Meitner", "Dermatology", "Europe/Berlin"),
    ("chien-shiung.wu@demo.ehass.org", "Dr Chien-Shiung Wu", "Pediatrics", "Asia/Tokyo"),
    ("ada.yonath@demo.ehass.org", "Dr Ada Yonath", "General Practice", "UTC"),
]
DEMO_PATIENTS = [
    ("pat.patient@demo.ehass.org", "Pat Patient", date(1988, 5, 17)),
    ("sam.sample@demo.ehass.org", "Sam Sample", date(1975, 11, 2)),
    ("kim.example@demo.ehass.org", "Kim Example", date(2001, 2, 28)),
]
WORKWEEK = [
    {"day": day, "start": start, "end": end}
    for day in ("mon", "tue", "wed", "thu", "fri")
    for start, end in (("09:00", "12:00"), ("13:00", "17:00"))
]


async def _with_session(settings: Settings) -> tuple[Database, Runtime]:
    database = Database.from_settings(settings)
    runtime = Runtime.create(settings, SystemClock(), SharedState(settings))
    return database, runtime


async def create_admin(settings: Settings, email: str, name: str, password: str) -> int:
    database, rt = await _with_session(settings)
    try:
        async with database.transaction() as session:
            user = await user_service.create_admin(
                session, rt, email=email, name=name, password=password
            )
        print(f"created administrator {user.email} (id {user.id})")
        return 0
    except DomainError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    finally:
        await rt.shared.close()
        await database.dispose()


async def verify_audit(settings: Settings, *, checkpoint_file: Path | None = None) -> int:
    """`ehass audit verify`: seals what is committed, recomputes the chain, and checks the
    latest stored checkpoint and, when given, an exported one against it."""
    exported = None
    if checkpoint_file is not None:
        try:
            exported = checkpoint.from_json(
                json.loads(await asyncio.to_thread(checkpoint_file.read_text))
            )
        except (OSError, UnicodeDecodeError) as exc:
            print(f"cannot read checkpoint {checkpoint_file}: {exc}", file=sys.stderr)
            return 1
        except json.JSONDecodeError as exc:
            print(f"checkpoint {checkpoint_file} is not JSON: {exc}", file=sys.stderr)
            return 1
        except checkpoint.CheckpointFormatError as exc:
            print(f"checkpoint {checkpoint_file} is not a checkpoint: {exc}", file=sys.stderr)
            return 1
    public = audit_signing_key(settings).public_key()
    database = Database.from_settings(settings)
    try:
        async with database.transaction() as session:
            stored = await sealer.latest_checkpoint(session)
            checks = [("latest stored", stored, public)] if stored else []
            if exported is not None:
                checks.append(("exported", *exported))
            sizes = {signed.tree_size for _, signed, _ in checks}
            result = await audit_service.verify(session, roots_at=sizes)
    finally:
        await database.dispose()
    if not result.ok:
        print(
            f"audit trail BROKEN at entry {result.first_bad_id} ({result.checked} entries checked)",
            file=sys.stderr,
        )
        return 1
    print(f"audit trail intact: {result.checked} entries verified")
    if stored is None:
        print("no signed checkpoint stored yet (the worker signs one after sealing)")
    failed = False
    for label, signed, key in checks:
        why = checkpoint.problem(signed, key, chain_size=result.checked, roots=result.roots)
        if why is None:
            print(f"{label} checkpoint at tree size {signed.tree_size}: signature and root hold")
        else:
            print(
                f"{label} checkpoint at tree size {signed.tree_size} FAILS: {why}", file=sys.stderr
            )
            failed = True
    return 1 if failed else 0


async def print_checkpoint(settings: Settings) -> int:
    """`ehass audit checkpoint`: the latest signed checkpoint as JSON, for a write-once
    store. What is committed is sealed and signed first, so it covers every entry."""
    key = audit_signing_key(settings)
    database = Database.from_settings(settings)
    try:
        async with database.transaction() as session:
            await sealer.seal_committed(session)
            await sealer.sign_checkpoint(session, key, now=SystemClock().now())
            latest = await sealer.latest_checkpoint(session)
    finally:
        await database.dispose()
    if latest is None:
        print("the audit trail is empty: there is nothing to sign yet", file=sys.stderr)
        return 1
    print(json.dumps(checkpoint.to_json(latest, key.public_key()), indent=2))
    return 0


async def rotate_keys(settings: Settings, *, batch_size: int) -> int:
    from ehass.keys import rotate
    from ehass.runtime import build_keyring

    database = Database.from_settings(settings)
    keyring = build_keyring(settings)
    try:
        changed = await rotate(database.engine, keyring, batch_size=batch_size)
    finally:
        await database.dispose()
    print(f"{changed} values re-encrypted under key {keyring.current_kid!r}")
    return 0


async def _ensure_user(
    session: AsyncSession, rt: Runtime, request: RegisterRequest
) -> tuple[int, bool]:
    existing = await user_repository.get_user_by_email(session, request.email.lower())
    if existing is not None:
        return existing.id, False
    # Demo accounts are verified, so booking works with EHASS_REQUIRE_VERIFIED_EMAIL on too.
    user = await user_service.register(session, rt, request=request, email_verified=True)
    return user.id, True


async def seed_demo(settings: Settings) -> int:
    """Idempotent: running it again adds nothing twice."""
    database, rt = await _with_session(settings)
    created = 0
    try:
        async with database.transaction() as session:
            if await user_repository.get_user_by_email(session, DEMO_ADMIN[0]) is None:
                await user_service.create_admin(
                    session, rt, email=DEMO_ADMIN[0], name=DEMO_ADMIN[1], password=DEMO_PASSWORD
                )
                created += 1
            for email, name, specialty, timezone in DEMO_DOCTORS:
                _, new = await _ensure_user(
                    session,
                    rt,
                    RegisterRequest(
                        email=email,
                        password=DEMO_PASSWORD,
                        name=name,
                        role="doctor",
                        specialty=specialty,
                        timezone=timezone,
                    ),
                )
                if new:
                    created += 1
                    doctor = await user_repository.get_user_by_email(session, email)
                    assert doctor is not None and doctor.doctor is not None
                    system = Principal(user_id=0, role=Role.ADMIN, session_id="seed")
                    await replace_availability(
                        session,
                        rt,
                        system,
                        doctor_id=doctor.doctor.id,
                        request=AvailabilityWrite.model_validate(
                            {"timezone": timezone, "slot_minutes": 30, "weekly": WORKWEEK}
                        ),
                    )
            for email, name, born in DEMO_PATIENTS:
                _, new = await _ensure_user(
                    session,
                    rt,
                    RegisterRequest(
                        email=email,
                        password=DEMO_PASSWORD,
                        name=name,
                        role="patient",
                        date_of_birth=born,
                    ),
                )
                created += new
    finally:
        await rt.shared.close()
        await database.dispose()
    print(f"demo data: {created} accounts created" if created else "demo data already present")
    print(f"demo logins (password {DEMO_PASSWORD!r}):")
    for email, *_ in [DEMO_ADMIN, *DEMO_DOCTORS, *DEMO_PATIENTS]:
        print(f"  {email}")
    return 0
