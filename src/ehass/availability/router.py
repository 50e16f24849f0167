from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from ehass.availability import service
from ehass.availability.schemas import AvailabilityRead, AvailabilityUpdated, AvailabilityWrite
from ehass.core.schemas import Rfc3339DateTime
from ehass.deps import CurrentPrincipal, RuntimeDep, SessionDep
from ehass.openapi import problems

router = APIRouter(prefix="/doctors", tags=["availability"])


# The answer is put together as JSON bytes (availability/cache.py); `response_model` only
# describes it in the OpenAPI schema, since FastAPI does not validate a returned Response.
@router.get(
    "/{doctorId}/availability", response_model=AvailabilityRead, responses=problems(404, 422)
)
async def read_availability(
    doctor_id: Annotated[int, Path(alias="doctorId")],
    session: SessionDep,
    rt: RuntimeDep,
    start: Annotated[
        Rfc3339DateTime | None,
        Query(alias="from", description="Slots starting at or after this. Default: now."),
    ] = None,
    end: Annotated[
        Rfc3339DateTime | None,
        Query(
            alias="to",
            description="Slots starting before this. Default: `from` + 7 days; at most 62 days.",
        ),
    ] = None,
) -> Response:
    body = await service.read_json(session, rt, doctor_id=doctor_id, start=start, end=end)
    return Response(body, media_type="application/json")


@router.post(
    "/{doctorId}/availability",
    response_model=AvailabilityUpdated,
    responses=problems(401, 403, 404, 422),
)
async def replace_availability(
    doctor_id: Annotated[int, Path(alias="doctorId")],
    body: AvailabilityWrite,
    principal: CurrentPrincipal,
    session: SessionDep,
    rt: RuntimeDep,
) -> AvailabilityUpdated:
    return await service.replace(session, rt, principal, doctor_id=doctor_id, request=body)
