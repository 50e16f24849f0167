from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from ehass.appointments import service
from ehass.appointments.models import Status
from ehass.appointments.schemas import (
    AppointmentCreate,
    AppointmentList,
    AppointmentRead,
    AppointmentUpdate,
)
from ehass.core.schemas import LIMIT_DEFAULT, Limit
from ehass.deps import CurrentPrincipal, RuntimeDep, SessionDep
from ehass.openapi import problems

router = APIRouter(prefix="/appointments", tags=["appointments"])
LOCATION = "/api/v1/appointments/{}"


@router.get("", response_model=AppointmentList, responses=problems(401, 422))
async def list_appointments(
    principal: CurrentPrincipal,
    session: SessionDep,
    doctor_id: int | None = None,
    patient_id: int | None = None,
    status: Status | None = None,
    start: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    end: Annotated[AwareDatetime | None, Query(alias="to")] = None,
    limit: Limit = LIMIT_DEFAULT,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> AppointmentList:
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
    booking = await service.book(
        session, rt, principal, request=body, idempotency_key=idempotency_key
    )
    if booking.replay is not None:
        location = LOCATION.format(booking.replay["id"])
        return JSONResponse(booking.replay, status_code=201, headers={"Location": location})
    assert booking.appointment is not None
    response.headers["Location"] = LOCATION.format(booking.appointment.id)
    return AppointmentRead.model_validate(booking.appointment)


@router.get("/{appointmentId}", response_model=AppointmentRead, responses=problems(401, 404, 422))
async def get_appointment(
    appointment_id: Annotated[int, Path(alias="appointmentId")],
    principal: CurrentPrincipal,
    session: SessionDep,
) -> AppointmentRead:
    appointment = await service.get(session, principal, appointment_id=appointment_id)
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
    appointment = await service.cancel(session, rt, principal, appointment_id=appointment_id)
    return AppointmentRead.model_validate(appointment)
