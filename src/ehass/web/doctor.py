"""The doctor dashboard: the schedule of today or this week, and the availability editor."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.responses import Response

from ehass.appointments import rules
from ehass.appointments import service as appointment_service
from ehass.appointments.models import Appointment, Status
from ehass.appointments.schemas import AppointmentUpdate
from ehass.availability import service as availability_service
from ehass.availability.schemas import DAYS, AvailabilityRead, AvailabilityWrite
from ehass.core.principal import Principal
from ehass.deps import RuntimeDep, SessionDep
from ehass.doctors import service as doctor_service
from ehass.runtime import Runtime
from ehass.users import service as user_service
from ehass.web.deps import CsrfChecked, DoctorPrincipal
from ehass.web.forms import Problems, attempt, parse, values_of
from ehass.web.pages import redirect, render, zones

router = APIRouter(include_in_schema=False)
DAY_NAMES = dict(
    zip(
        DAYS,
        ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
        strict=True,
    )
)
SLOT_CHOICES = (10, 15, 20, 30, 45, 60, 90, 120)
_WINDOW = re.compile(r"^\s*(\d{1,2}:\d{2})\s*[-–]\s*(\d{1,2}:\d{2})\s*$")
_OVERRIDE = re.compile(r"^\s*(\d{4}-\d{2}-\d{2})\s*:\s*(.*)$")
WINDOWS_HINT = "Write times as 09:00-12:00, separated by commas; leave empty for a day off."


# --- schedule -----------------------------------------------------------------------


@router.get("/doctor/schedule")
async def schedule(
    request: Request,
    principal: DoctorPrincipal,
    session: SessionDep,
    rt: RuntimeDep,
    span: Annotated[Literal["today", "week"], Query()] = "today",
) -> Response:
    assert principal.doctor_id is not None
    doctor = await doctor_service.get_doctor(session, doctor_id=principal.doctor_id)
    zone = ZoneInfo(doctor.timezone)
    now = rt.clock.now()
    first = now.astimezone(zone).date()
    last = first + timedelta(days=1 if span == "today" else 7)
    page = await appointment_service.list_appointments(
        session,
        principal,
        doctor_id=principal.doctor_id,
        patient_id=None,
        status=None,
        start=datetime.combine(first, time(0), zone),
        end=datetime.combine(last, time(0), zone),
        limit=200,
        cursor=None,
    )
    names = await user_service.patient_names(
        session, principal, patient_ids={a.patient_id for a in page.items}
    )
    return render(
        request,
        "schedule.html",
        principal=principal,
        span=span,
        doctor=doctor,
        doctor_zone=doctor.timezone,
        first=first,
        last=last - timedelta(days=1),
        rows=[
            {
                "appointment": a,
                "patient": names.get(a.patient_id, "A patient"),
                "can_record": rules.can_record_outcome(a.status, a.scheduled_at, now=now),
                "can_cancel": a.status == Status.SCHEDULED and a.scheduled_at > now,
            }
            for a in page.items
        ],
        flash=request.query_params.get("done"),
    )


@router.post("/doctor/appointments/{appointment_id}/outcome", dependencies=[CsrfChecked])
async def record_outcome(
    request: Request,
    appointment_id: int,
    principal: DoctorPrincipal,
    session: SessionDep,
    rt: RuntimeDep,
) -> Response:
    form = await request.form()
    outcome = values_of(form, "status")["status"]
    problems = Problems()
    body = parse(AppointmentUpdate, {"status": outcome}, problems)
    if body is not None:
        await attempt(
            session,
            lambda: appointment_service.update(
                session, rt, principal, appointment_id=appointment_id, request=body
            ),
            problems,
        )
    if problems:
        return render(
            request,
            "error.html",
            principal=principal,
            status_code=409,
            status=409,
            detail=" ".join([*problems.general, *problems.fields.values()]),
        )
    label = "completed" if outcome == Status.COMPLETED else "a no-show"
    return redirect(f"/doctor/schedule?done=Marked+as+{label}.")


@router.get("/doctor/appointments/{appointment_id}/cancel")
async def cancel_form(
    request: Request,
    appointment_id: int,
    principal: DoctorPrincipal,
    session: SessionDep,
    rt: RuntimeDep,
) -> Response:
    appointment = await appointment_service.get(
        session, rt, principal, appointment_id=appointment_id
    )
    return await _cancel_page(request, principal, session, appointment, Problems())


async def _cancel_page(
    request: Request,
    principal: Principal,
    session: AsyncSession,
    appointment: Appointment,
    problems: Problems,
    status_code: int = 200,
) -> Response:
    names = await user_service.patient_names(
        session, principal, patient_ids={appointment.patient_id}
    )
    return render(
        request,
        "doctor_cancel.html",
        principal=principal,
        status_code=status_code,
        appointment=appointment,
        patient=names.get(appointment.patient_id, "A patient"),
        problems=problems,
    )


@router.post("/doctor/appointments/{appointment_id}/cancel", dependencies=[CsrfChecked])
async def cancel(
    request: Request,
    appointment_id: int,
    principal: DoctorPrincipal,
    session: SessionDep,
    rt: RuntimeDep,
) -> Response:
    problems = Problems()
    cancelled = await attempt(
        session,
        lambda: appointment_service.cancel(session, rt, principal, appointment_id=appointment_id),
        problems,
    )
    if cancelled is None:
        appointment = await appointment_service.get(
            session, rt, principal, appointment_id=appointment_id
        )
        return await _cancel_page(request, principal, session, appointment, problems, 409)
    return redirect("/doctor/schedule?span=week&done=The+appointment+is+cancelled.")


# --- availability -------------------------------------------------------------------


def _windows_text(windows: list[Any]) -> str:
    return ", ".join(f"{w.start:%H:%M}-{w.end:%H:%M}" for w in windows)


def _values_of(current: AvailabilityRead) -> dict[str, str]:
    values = {
        "timezone": current.timezone,
        "slot_minutes": str(current.slot_minutes),
        "overrides": "\n".join(
            f"{o.date.isoformat()}: {_windows_text(o.windows) or 'off'}" for o in current.overrides
        ),
    }
    for day in DAYS:
        values[day] = _windows_text([w for w in current.weekly if w.day == day])
    return values


def _parse_windows(text: str) -> list[dict[str, str]] | None:
    windows = []
    for part in text.split(","):
        if not part.strip():
            continue
        found = _WINDOW.match(part)
        if found is None:
            return None
        windows.append({"start": found.group(1).zfill(5), "end": found.group(2).zfill(5)})
    return windows


def _availability_request(values: dict[str, str], problems: Problems) -> AvailabilityWrite | None:
    weekly = []
    for day in DAYS:
        windows = _parse_windows(values[day])
        if windows is None:
            problems.fields[day] = WINDOWS_HINT
            continue
        weekly += [{"day": day, **w} for w in windows]
    overrides = []
    for number, line in enumerate(values["overrides"].splitlines(), start=1):
        if not line.strip():
            continue
        found = _OVERRIDE.match(line)
        windows = None
        if found is not None:
            text = found.group(2).strip()
            windows = [] if text.lower() in {"off", "closed", ""} else _parse_windows(text)
        if found is None or windows is None:
            problems.fields.setdefault(
                "overrides",
                f"Line {number}: write a date and its hours, e.g. 2026-12-24: off "
                "or 2026-12-27: 10:00-14:00.",
            )
            continue
        overrides.append({"date": found.group(1), "windows": windows})
    if values["timezone"] not in zones():
        problems.fields["timezone"] = "Choose a time zone from the list."
    if not values["slot_minutes"].isdigit():
        problems.fields["slot_minutes"] = "Choose a slot length."
    if problems:
        return None
    return parse(
        AvailabilityWrite,
        {
            "timezone": values["timezone"],
            "slot_minutes": int(values["slot_minutes"]),
            "weekly": weekly,
            "overrides": overrides,
        },
        problems,
    )


async def _editor(
    request: Request,
    principal: Principal,
    session: AsyncSession,
    rt: Runtime,
    *,
    values: dict[str, str],
    problems: Problems,
    preview: Any = None,
    status_code: int = 200,
) -> Response:
    conflicts: list[Appointment] = []
    names: dict[int, str] = {}
    if preview is not None and preview.conflicts:
        page = await appointment_service.list_appointments(
            session,
            principal,
            doctor_id=principal.doctor_id,
            patient_id=None,
            status=Status.SCHEDULED,
            start=rt.clock.now(),
            end=None,
            limit=200,
            cursor=None,
        )
        conflicts = [a for a in page.items if a.id in set(preview.conflicts)]
        names = await user_service.patient_names(
            session, principal, patient_ids={a.patient_id for a in conflicts}
        )
    days: dict[Any, list[Any]] = {}
    if preview is not None:
        zone = ZoneInfo(preview.timezone)
        for slot in preview.slots:
            days.setdefault(slot.start.astimezone(zone).date(), []).append(slot)
    return render(
        request,
        "availability.html",
        principal=principal,
        status_code=status_code,
        values=values,
        problems=problems,
        day_names=DAY_NAMES,
        slot_choices=SLOT_CHOICES,
        all_zones=sorted(zones()),
        preview=preview,
        preview_days=days,
        conflicts=conflicts,
        names=names,
        saved=request.query_params.get("saved"),
        windows_hint=WINDOWS_HINT,
    )


@router.get("/doctor/availability")
async def availability_form(
    request: Request, principal: DoctorPrincipal, session: SessionDep, rt: RuntimeDep
) -> Response:
    assert principal.doctor_id is not None
    current = await availability_service.read(
        session, rt, doctor_id=principal.doctor_id, start=None, end=None
    )
    return await _editor(
        request, principal, session, rt, values=_values_of(current), problems=Problems()
    )


def _form_values(form: FormData) -> dict[str, str]:
    values = values_of(form, "timezone", "slot_minutes", *DAYS)
    raw = form.get("overrides")
    values["overrides"] = raw if isinstance(raw, str) else ""
    return values


@router.post("/doctor/availability", dependencies=[CsrfChecked])
async def save_availability(
    request: Request, principal: DoctorPrincipal, session: SessionDep, rt: RuntimeDep
) -> Response:
    """Preview first: saving hours that leave booked appointments outside them needs the
    doctor to have seen the list and confirmed."""
    assert principal.doctor_id is not None
    form = await request.form()
    values = _form_values(form)
    action = values_of(form, "action")["action"]
    seen = values_of(form, "confirm_conflicts")["confirm_conflicts"]
    problems = Problems()
    body = _availability_request(values, problems)
    if body is None:
        return await _editor(
            request, principal, session, rt, values=values, problems=problems, status_code=422
        )
    preview = await availability_service.preview(
        session, rt, principal, doctor_id=principal.doctor_id, request=body
    )
    # Confirmed means: these very conflicts were on the page the doctor saved from.
    confirmed = seen == ",".join(str(i) for i in preview.conflicts)
    if action != "save" or (preview.conflicts and not confirmed):
        return await _editor(
            request, principal, session, rt, values=values, problems=problems, preview=preview
        )
    saved = await attempt(
        session,
        lambda: availability_service.replace(
            session, rt, principal, doctor_id=principal.doctor_id or 0, request=body
        ),
        problems,
    )
    if saved is None:
        return await _editor(
            request, principal, session, rt, values=values, problems=problems, status_code=422
        )
    return redirect("/doctor/availability?saved=1")
