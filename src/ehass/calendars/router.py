from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from ehass.calendars import service
from ehass.calendars.schemas import CalendarFeedRead
from ehass.deps import CurrentPrincipal, RuntimeDep, SessionDep
from ehass.openapi import problems

TEXT_CALENDAR = "text/calendar; charset=utf-8"
_CALENDAR_ANSWER = {200: {"content": {"text/calendar": {}}, "description": "An iCalendar file"}}

# Under /api/v1 (bearer token).
router = APIRouter(tags=["calendars"])
# At the root: calendar apps cannot send a bearer token, the address itself is the secret.
feed_router = APIRouter(tags=["calendars"])


def _calendar(document: bytes, filename: str | None = None) -> Response:
    # Cache-Control: no-store comes with every answer (middleware.py).
    headers = {}
    if filename:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return Response(document, media_type=TEXT_CALENDAR, headers=headers)


@router.get(
    "/appointments/{appointmentId}.ics",
    response_class=Response,
    responses=_CALENDAR_ANSWER | problems(401, 404, 422),
    summary="One appointment as an iCalendar file",
)
async def appointment_calendar(
    appointment_id: Annotated[int, Path(alias="appointmentId")],
    principal: CurrentPrincipal,
    session: SessionDep,
    rt: RuntimeDep,
) -> Response:
    document = await service.appointment_document(
        session, rt, principal, appointment_id=appointment_id
    )
    return _calendar(document, f"appointment-{appointment_id}.ics")


@router.post(
    "/users/{userId}/calendar-feed",
    status_code=201,
    response_model=CalendarFeedRead,
    responses=problems(401, 404, 422),
    summary="Create or rotate my private calendar subscription address",
)
async def rotate_calendar_feed(
    user_id: Annotated[int, Path(alias="userId")],
    principal: CurrentPrincipal,
    session: SessionDep,
    rt: RuntimeDep,
) -> CalendarFeedRead:
    """A new address for the user's own feed of upcoming appointments; the previous address
    stops working at once."""
    return CalendarFeedRead(url=await service.rotate_feed(session, rt, principal, user_id=user_id))


@router.delete(
    "/users/{userId}/calendar-feed",
    status_code=204,
    response_class=Response,
    responses=problems(401, 404, 422),
    summary="Revoke my calendar subscription address",
)
async def revoke_calendar_feed(
    user_id: Annotated[int, Path(alias="userId")],
    principal: CurrentPrincipal,
    session: SessionDep,
    rt: RuntimeDep,
) -> Response:
    await service.revoke_feed(session, rt, principal, user_id=user_id)
    return Response(status_code=204)


@feed_router.get(
    "/calendar/{token}.ics",
    response_class=Response,
    responses=_CALENDAR_ANSWER | problems(404, 422),
    summary="A private calendar subscription feed",
)
async def calendar_feed(
    token: Annotated[str, Path(max_length=128)], session: SessionDep, rt: RuntimeDep
) -> Response:
    """The owner's scheduled appointments from 30 days ago on, for calendar apps to poll."""
    return _calendar(await service.feed_document(session, rt, token=token))
