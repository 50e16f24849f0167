from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from ehass.deps import CurrentPrincipal, RuntimeDep, SessionDep
from ehass.holds import service
from ehass.holds.schemas import HoldCreate, HoldRead
from ehass.openapi import problems

router = APIRouter(prefix="/holds", tags=["holds"])

HoldId = Annotated[int, Path(alias="holdId")]


@router.post("", status_code=201, response_model=HoldRead, responses=problems(401, 403, 409, 422))
async def hold_slot(
    body: HoldCreate,
    principal: CurrentPrincipal,
    session: SessionDep,
    rt: RuntimeDep,
    response: Response,
) -> HoldRead:
    """Holds a free slot for a few minutes: nobody else can hold or book it meanwhile.
    Book it with `POST /appointments` and `hold_id`; it lapses by itself otherwise."""
    hold = await service.place(session, rt, principal, request=body)
    response.headers["Location"] = f"/api/v1/holds/{hold.id}"
    return HoldRead.model_validate(hold)


@router.get("/{holdId}", response_model=HoldRead, responses=problems(401, 404, 422))
async def get_hold(hold_id: HoldId, principal: CurrentPrincipal, session: SessionDep) -> HoldRead:
    return HoldRead.model_validate(await service.get(session, principal, hold_id=hold_id))


@router.delete("/{holdId}", response_model=HoldRead, responses=problems(401, 404, 422))
async def release_hold(
    hold_id: HoldId, principal: CurrentPrincipal, session: SessionDep, rt: RuntimeDep
) -> HoldRead:
    """Lets the slot go at once."""
    return HoldRead.model_validate(await service.release(session, rt, principal, hold_id=hold_id))
