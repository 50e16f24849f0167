from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from ehass.deps import CurrentPrincipal, RuntimeDep, SessionDep
from ehass.openapi import problems
from ehass.waitlist import service
from ehass.waitlist.schemas import WaitlistCreate, WaitlistEntryList, WaitlistEntryRead

router = APIRouter(prefix="/waitlist", tags=["waitlist"])


@router.post(
    "",
    status_code=201,
    response_model=WaitlistEntryRead,
    responses=problems(401, 403, 409, 422),
)
async def join_waitlist(
    body: WaitlistCreate, principal: CurrentPrincipal, session: SessionDep, rt: RuntimeDep
) -> WaitlistEntryRead:
    """Waits for a doctor's time between two dates. When a slot in the range frees up,
    the first patient in line gets it held for them and a message with a link to book."""
    entry = await service.join(session, rt, principal, request=body)
    return WaitlistEntryRead.model_validate(entry)


@router.get("", response_model=WaitlistEntryList, responses=problems(401))
async def my_waitlist(principal: CurrentPrincipal, session: SessionDep) -> WaitlistEntryList:
    """The caller's entries still waiting or holding an offer."""
    page = await service.list_mine(session, principal)
    return WaitlistEntryList(items=page.items, next_cursor=page.next_cursor)


@router.delete(
    "/{entryId}", status_code=204, response_class=Response, responses=problems(401, 404, 422)
)
async def leave_waitlist(
    entry_id: Annotated[int, Path(alias="entryId")],
    principal: CurrentPrincipal,
    session: SessionDep,
    rt: RuntimeDep,
) -> Response:
    await service.leave(session, rt, principal, entry_id=entry_id)
    return Response(status_code=204)
