from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from ehass.admin import service
from ehass.admin.schemas import SystemHealth
from ehass.audit import service as audit_service
from ehass.audit.schemas import AuditEntryList, AuditVerification
from ehass.core.schemas import LIMIT_DEFAULT, Limit, Rfc3339DateTime
from ehass.deps import CurrentPrincipal, RuntimeDep, SessionDep
from ehass.openapi import problems
from ehass.users import export
from ehass.users.schemas import UserRead

router = APIRouter(prefix="/admin", tags=["admin"])


@router.get("/audit-logs", response_model=AuditEntryList, responses=problems(401, 403, 422))
async def list_audit_logs(
    principal: CurrentPrincipal,
    session: SessionDep,
    actor_id: int | None = None,
    entity: Annotated[str | None, Query(max_length=32, examples=["appointment"])] = None,
    entity_id: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=64, examples=["auth.login_failed"])] = None,
    start: Annotated[Rfc3339DateTime | None, Query(alias="from")] = None,
    end: Annotated[Rfc3339DateTime | None, Query(alias="to")] = None,
    limit: Limit = LIMIT_DEFAULT,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> AuditEntryList:
    service.require_admin(principal)
    page = await audit_service.list_entries(
        session,
        actor_id=actor_id,
        entity=entity,
        entity_id=entity_id,
        action=action,
        start=start,
        end=end,
        limit=limit,
        cursor=cursor,
    )
    return AuditEntryList(items=page.items, next_cursor=page.next_cursor)


@router.get("/audit-logs/verify", response_model=AuditVerification, responses=problems(401, 403))
async def verify_audit_logs(principal: CurrentPrincipal, session: SessionDep) -> AuditVerification:
    service.require_admin(principal)
    result = await audit_service.verify(session)
    return AuditVerification(ok=result.ok, checked=result.checked, first_bad_id=result.first_bad_id)


@router.get("/health", response_model=SystemHealth, responses=problems(401, 403))
async def system_health(
    principal: CurrentPrincipal, session: SessionDep, rt: RuntimeDep
) -> SystemHealth:
    return await service.health(session, rt, principal)


@router.post(
    "/users/{userId}/erase",
    response_model=UserRead,
    responses=problems(401, 403, 404, 409, 422),
    summary="Pseudonymise a deactivated person (GDPR erasure; records are kept)",
)
async def erase_user(
    user_id: Annotated[int, Path(alias="userId")],
    principal: CurrentPrincipal,
    session: SessionDep,
    rt: RuntimeDep,
) -> UserRead:
    return UserRead.of(await export.erase(session, rt, principal, user_id=user_id))
