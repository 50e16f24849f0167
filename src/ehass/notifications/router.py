from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from ehass.core.schemas import LIMIT_DEFAULT, Limit
from ehass.deps import CurrentPrincipal, RuntimeDep, SessionDep
from ehass.notifications import service
from ehass.notifications.models import DeliveryStatus, NotificationKind
from ehass.notifications.schemas import NotificationList, NotificationRead
from ehass.openapi import problems

router = APIRouter(prefix="/admin/notifications", tags=["admin"])


@router.get("", response_model=NotificationList, responses=problems(401, 403, 422))
async def list_notifications(
    principal: CurrentPrincipal,
    session: SessionDep,
    status: DeliveryStatus | None = None,
    kind: NotificationKind | None = None,
    user_id: int | None = None,
    limit: Limit = LIMIT_DEFAULT,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> NotificationList:
    page = await service.list_notifications(
        session, principal, status=status, kind=kind, user_id=user_id, limit=limit, cursor=cursor
    )
    return NotificationList(items=page.items, next_cursor=page.next_cursor)


@router.post(
    "/{notificationId}/resend",
    status_code=202,
    response_model=NotificationRead,
    responses=problems(401, 403, 404, 422),
)
async def resend_notification(
    principal: CurrentPrincipal,
    session: SessionDep,
    rt: RuntimeDep,
    notification_id: Annotated[int, Path(alias="notificationId")],
) -> NotificationRead:
    """Queues the message again, now, with the same Message-ID."""
    notification = await service.resend(session, rt, principal, notification_id=notification_id)
    return NotificationRead.model_validate(notification)
