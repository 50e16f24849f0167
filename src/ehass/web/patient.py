"""The patient portal: find a doctor, book from a week of free times, manage appointments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from ehass.appointments import rules
from ehass.appointments import service as appointment_service
from ehass.appointments.models import Appointment, Status
from ehass.appointments.schemas import AppointmentCreate, AppointmentUpdate
from ehass.availability import service as availability_service
from ehass.core.principal import Principal
from ehass.deps import RuntimeDep, SessionDep
from ehass.doctors import service as doctor_service
from ehass.errors import NotFoundError
from ehass.holds import service as hold_service
from ehass.holds.models import HoldStatus, SlotHold
from ehass.runtime import Runtime
from ehass.web.deps import CsrfChecked, PatientPrincipal
from ehass.web.forms import Problems, attempt, parse, values_of
from ehass.web.pages import redirect, render, viewer_zone

router = APIRouter(include_in_schema=False)
NEXT_SLOT_HORIZON = timedelta(days=28)
DOCTORS_PER_PAGE = 20


@dataclass(frozen=True, slots=True)
class Day:
    on: date
    slots: list[Any]


async def _specialties(session: AsyncSession) -> list[str]:
    page = await doctor_service.list_doctors(
        session, specialty=None, q=None, limit=200, cursor=None
    )
    return sorted({row.specialty for row in page.items}, key=str.lower)


@router.get("/doctors")
async def find_doctor(
    request: Request,
    principal: PatientPrincipal,
    session: SessionDep,
    rt: RuntimeDep,
    q: Annotated[str, Query(max_length=200)] = "",
    specialty: Annotated[str, Query(max_length=100)] = "",
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    page = await doctor_service.list_doctors(
        session,
        specialty=specialty.strip() or None,
        q=q.strip() or None,
        limit=DOCTORS_PER_PAGE,
        cursor=cursor,
    )
    now = rt.clock.now()
    doctors = []
    for row in page.items:
        availability = await availability_service.read(
            session, rt, doctor_id=row.id, start=now, end=now + NEXT_SLOT_HORIZON
        )
        first = availability.slots[0].start if availability.slots else None
        doctors.append({"row": row, "next_slot": first})
    return render(
        request,
        "doctors.html",
        principal=principal,
        doctors=doctors,
        q=q,
        specialty=specialty,
        specialties=await _specialties(session),
        next_cursor=page.next_cursor,
    )


def _week_start(request: Request, zone: ZoneInfo, now: datetime) -> date:
    raw = request.query_params.get("week", "")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return now.astimezone(zone).date()


async def _week_page(
    request: Request,
    principal: Principal,
    session: AsyncSession,
    rt: Runtime,
    *,
    doctor_id: int,
    values: dict[str, str],
    problems: Problems,
    moving: Appointment | None = None,
    held: SlotHold | None = None,
    status_code: int = 200,
) -> Response:
    zone_name = viewer_zone(request)
    zone = ZoneInfo(zone_name)
    now = rt.clock.now()
    doctor = await doctor_service.get_doctor(session, doctor_id=doctor_id)
    first_day = _week_start(request, zone, now)
    first_day = max(first_day, now.astimezone(zone).date())
    start = datetime.combine(first_day, time(0), zone)
    end = datetime.combine(first_day + timedelta(days=7), time(0), zone)
    availability = await availability_service.read(
        session, rt, doctor_id=doctor_id, start=max(start, now), end=end
    )
    days = [Day(first_day + timedelta(days=n), []) for n in range(7)]
    for slot in availability.slots:
        offset = (slot.start.astimezone(zone).date() - first_day).days
        if 0 <= offset < 7:
            days[offset].slots.append(slot)
    return render(
        request,
        "book.html",
        range_from=_stamp(max(start, now)),
        range_to=_stamp(end),
        principal=principal,
        status_code=status_code,
        doctor=doctor,
        days=days,
        doctor_zone=availability.timezone,
        week=first_day,
        previous_week=first_day - timedelta(days=7),
        next_week=first_day + timedelta(days=7),
        is_first_week=first_day <= now.astimezone(zone).date(),
        values=values,
        problems=problems,
        moving=moving,
        held=held,
    )


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@router.get("/doctors/{doctor_id}")
async def doctor_week(
    request: Request,
    doctor_id: Annotated[int, Path()],
    principal: PatientPrincipal,
    session: SessionDep,
    rt: RuntimeDep,
    reschedule: Annotated[int | None, Query()] = None,
    hold_id: Annotated[int | None, Query()] = None,
) -> Response:
    moving = None
    if reschedule is not None:
        moving = await appointment_service.get(session, rt, principal, appointment_id=reschedule)
    held = None
    if hold_id is not None:
        # The link of a waitlist offer: the held time is not among the free ones, since
        # nobody else may take it; it is offered to its holder above the week.
        hold = await hold_service.get(session, principal, hold_id=hold_id)
        if (
            hold.doctor_id == doctor_id
            and hold.status == HoldStatus.ACTIVE
            and hold.expires_at > rt.clock.now()
        ):
            held = hold
    return await _week_page(
        request,
        principal,
        session,
        rt,
        doctor_id=doctor_id,
        values={
            "scheduled_at": held.scheduled_at.strftime("%Y-%m-%dT%H:%M:%SZ") if held else "",
            "reason": "",
        },
        problems=Problems(),
        moving=moving,
        held=held,
    )


@router.post("/appointments", dependencies=[CsrfChecked])
async def book(
    request: Request, principal: PatientPrincipal, session: SessionDep, rt: RuntimeDep
) -> Response:
    form = await request.form()
    values = values_of(form, "doctor_id", "scheduled_at", "reason")
    problems = Problems()
    if not values["scheduled_at"]:
        problems.fields["scheduled_at"] = "Choose a time."
    body = None
    if not problems:
        body = parse(
            AppointmentCreate,
            {
                # Form fields are text; the request models are strict about integers.
                "doctor_id": int(values["doctor_id"]) if values["doctor_id"].isdigit() else None,
                "scheduled_at": values["scheduled_at"],
                "reason": values["reason"] or None,
            },
            problems,
        )
    booking = None
    if body is not None:
        booking = await attempt(
            session,
            lambda: appointment_service.book(session, rt, principal, request=body),
            problems,
            known={"scheduled_at", "reason"},
        )
    if booking is None or booking.appointment is None:
        if not values["doctor_id"].isdigit():
            raise NotFoundError("No such doctor.")
        return await _week_page(
            request,
            principal,
            session,
            rt,
            doctor_id=int(values["doctor_id"]),
            values=values,
            problems=problems,
            status_code=409 if problems.general else 422,
        )
    return redirect(f"/appointments?booked={booking.appointment.id}")


@router.get("/appointments")
async def my_appointments(
    request: Request, principal: PatientPrincipal, session: SessionDep, rt: RuntimeDep
) -> Response:
    now = rt.clock.now()
    page = await appointment_service.list_appointments(
        session,
        principal,
        doctor_id=None,
        patient_id=None,
        status=None,
        start=None,
        end=None,
        limit=200,
        cursor=None,
    )
    names = await _doctors_by_id(session, {a.doctor_id for a in page.items})
    upcoming = [a for a in page.items if a.status == Status.SCHEDULED and a.ends_at > now]
    past = [a for a in reversed(page.items) if a not in upcoming]
    return render(
        request,
        "appointments.html",
        principal=principal,
        upcoming=[_card(a, names, rt, now) for a in upcoming],
        past=[_card(a, names, rt, now) for a in past],
        notice_hours=rt.settings.cancellation_notice_hours,
        flash=_flash(request),
    )


def _flash(request: Request) -> str | None:
    for key, message in (
        ("booked", "Your appointment is booked."),
        ("moved", "Your appointment has been moved."),
        ("cancelled", "Your appointment is cancelled."),
    ):
        if request.query_params.get(key):
            return message
    return None


async def _doctors_by_id(session: AsyncSession, ids: set[int]) -> dict[int, Any]:
    names = {}
    for doctor_id in ids:
        try:
            names[doctor_id] = await doctor_service.get_doctor(session, doctor_id=doctor_id)
        except NotFoundError:
            names[doctor_id] = None
    return names


def _card(
    appointment: Appointment, doctors: dict[int, Any], rt: Runtime, now: datetime
) -> dict[str, Any]:
    return {
        "appointment": appointment,
        "doctor": doctors.get(appointment.doctor_id),
        "changeable": not rules.within_notice(
            appointment.scheduled_at, now=now, notice=rt.cancellation_notice
        ),
    }


@router.get("/appointments/{appointment_id}/cancel")
async def cancel_form(
    request: Request,
    appointment_id: int,
    principal: PatientPrincipal,
    session: SessionDep,
    rt: RuntimeDep,
) -> Response:
    appointment = await appointment_service.get(
        session, rt, principal, appointment_id=appointment_id
    )
    return _cancel_page(request, principal, appointment, rt, Problems())


def _cancel_page(
    request: Request,
    principal: Principal,
    appointment: Appointment,
    rt: Runtime,
    problems: Problems,
    status_code: int = 200,
) -> Response:
    now = rt.clock.now()
    return render(
        request,
        "cancel.html",
        principal=principal,
        status_code=status_code,
        appointment=appointment,
        changeable=not rules.within_notice(
            appointment.scheduled_at, now=now, notice=rt.cancellation_notice
        ),
        notice_hours=rt.settings.cancellation_notice_hours,
        problems=problems,
    )


@router.post("/appointments/{appointment_id}/cancel", dependencies=[CsrfChecked])
async def cancel(
    request: Request,
    appointment_id: int,
    principal: PatientPrincipal,
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
        return _cancel_page(request, principal, appointment, rt, problems, status_code=409)
    return redirect(f"/appointments?cancelled={appointment_id}")


@router.post("/appointments/{appointment_id}/reschedule", dependencies=[CsrfChecked])
async def reschedule(
    request: Request,
    appointment_id: int,
    principal: PatientPrincipal,
    session: SessionDep,
    rt: RuntimeDep,
) -> Response:
    form = await request.form()
    values = values_of(form, "scheduled_at")
    problems = Problems()
    if not values["scheduled_at"]:
        problems.fields["scheduled_at"] = "Choose a new time."
    body = None
    if not problems:
        body = parse(AppointmentUpdate, {"scheduled_at": values["scheduled_at"]}, problems)
    moved = None
    if body is not None:
        moved = await attempt(
            session,
            lambda: appointment_service.update(
                session, rt, principal, appointment_id=appointment_id, request=body
            ),
            problems,
            known={"scheduled_at"},
        )
    if moved is None:
        appointment = await appointment_service.get(
            session, rt, principal, appointment_id=appointment_id
        )
        return await _week_page(
            request,
            principal,
            session,
            rt,
            doctor_id=appointment.doctor_id,
            values={**values, "reason": ""},
            problems=problems,
            moving=appointment,
            status_code=409 if problems.general else 422,
        )
    return redirect(f"/appointments?moved={appointment_id}")
