from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Response
from fastapi.responses import JSONResponse

from ehass.appointments import service
from ehass.appointments.models import Status
from ehass.appointments.schemas import (
    AppointmentCreate,
    AppointmentList,
    AppointmentRead,
    AppointmentUpdate,
)
from ehass.core.schemas import LIMIT_DEFAULT, Limit, Rfc3339DateTime
from ehass.deps import CurrentPrincipal, RuntimeDep, SessionDep
from ehass.errors import PROBLEM_JSON
from ehass.openapi import problems

router = APIRouter(prefix="/appointments", tags=["appointments"])
LOCATION = "/api/v1/appointments/{}"


@router.get("", response_model=AppointmentList, responses=problems(401, 422))
async def list_appointments(
    principal: CurrentPrincipal,
    session: SessionDep,
    doctor_id: Annotated[int | None, Query(description="Only this doctor's.")] = None,
    patient_id: Annotated[int | None, Query(description="Only this patient's.")] = None,
    status: Annotated[Status | None, Query(description="Only in this state.")] = None,
    start: Annotated[
        Rfc3339DateTime | None,
        Query(alias="from", description="Only those with `scheduled_at` at or after this."),
    ] = None,
    end: Annotated[
        Rfc3339DateTime | None,
        Query(alias="to", description="Only those with `scheduled_at` before this."),
    ] = None,
    limit: Limit = LIMIT_DEFAULT,
    cursor: Annotated[
        str | None, Query(max_length=512, description="`next_cursor` of the previous page.")
    ] = None,
) -> AppointmentList:
    """Appointments by `scheduled_at`, then id. A patient only ever sees their own and a
    doctor only theirs, whatever the filters say; an administrator sees all."""
    page = await service.list_appointments(
        session,
        principal,
        doctor_id=doctor_id,
        patient_id=patient_id,
        status=status,
        start=start,
        end=end,
        limit=limit,
        cursor=cursor,
    )
    return AppointmentList(items=page.items, next_cursor=page.next_cursor)


@router.post(
    "",
    status_code=201,
    response_model=AppointmentRead,
    responses={
        **problems(401, 403, 409, 422),
        201: {"headers": {"Location": {"schema": {"type": "string"}}}},
    },
)
async def book_appointment(
    body: AppointmentCreate,
    response: Response,
    principal: CurrentPrincipal,
    session: SessionDep,
    rt: RuntimeDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=255,
            description="Repeat a booking safely: the same key and body within 24 h "
            "returns the first response and books nothing more.",
        ),
    ] = None,
) -> AppointmentRead | JSONResponse:
    """Book the free slot of `doctor_id` that starts at `scheduled_at`: a patient for
    themselves, an administrator for the patient named in `patient_id`. A repeated
    `Idempotency-Key` (same user, same body, within 24 h) answers as the first request did,
    refusals included, and books nothing more."""
    booking = await service.book(
        session, rt, principal, request=body, idempotency_key=idempotency_key
    )
    if booking.replay is not None:
        replay = booking.replay
        if replay.status_code != 201:
            return JSONResponse(
                replay.body, status_code=replay.status_code, media_type=PROBLEM_JSON
            )
        location = LOCATION.format(replay.body["id"])
        return JSONResponse(replay.body, status_code=201, headers={"Location": location})
    assert booking.appointment is not None
    response.headers["Location"] = LOCATION.format(booking.appointment.id)
    return AppointmentRead.model_validate(booking.appointment)


@router.get("/{appointmentId}", response_model=AppointmentRead, responses=problems(401, 404, 422))
async def get_appointment(
    appointment_id: Annotated[int, Path(alias="appointmentId")],
    principal: CurrentPrincipal,
    session: SessionDep,
    rt: RuntimeDep,
) -> AppointmentRead:
    """One appointment, for its patient, its doctor or an administrator; 404 for anyone else."""
    appointment = await service.get(session, rt, principal, appointment_id=appointment_id)
    return AppointmentRead.model_validate(appointment)


@router.put(
    "/{appointmentId}",
    response_model=AppointmentRead,
    responses=problems(401, 403, 404, 409, 422),
)
async def update_appointment(
    appointment_id: Annotated[int, Path(alias="appointmentId")],
    body: AppointmentUpdate,
    principal: CurrentPrincipal,
    session: SessionDep,
    rt: RuntimeDep,
) -> AppointmentRead:
    """Change only what is sent. The patient or an administrator moves it (`scheduled_at`,
    atomically: on 409 the old slot is kept) or edits `reason`; the doctor or an
    administrator records `status` (`completed`, `no_show`) once it has started. Patients
    cannot move it within the cancellation notice."""
    appointment = await service.update(
        session, rt, principal, appointment_id=appointment_id, request=body
    )
    return AppointmentRead.model_validate(appointment)


@router.delete(
    "/{appointmentId}",
    response_model=AppointmentRead,
    responses=problems(401, 404, 409, 422),
)
async def cancel_appointment(
    appointment_id: Annotated[int, Path(alias="appointmentId")],
    principal: CurrentPrincipal,
    session: SessionDep,
    rt: RuntimeDep,
) -> AppointmentRead:
    """Cancel it; the slot is free again at once. Cancelling a cancelled appointment answers
    it unchanged. Patients cannot cancel within the cancellation notice."""
    appointment = await service.cancel(session, rt, principal, appointment_id=appointment_id)
    return AppointmentRead.model_validate(appointment)
