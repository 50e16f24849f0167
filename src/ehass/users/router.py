from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from ehass.core.principal import Role
from ehass.core.schemas import LIMIT_DEFAULT, Limit
from ehass.deps import CurrentPrincipal, RuntimeDep, SessionDep
from ehass.openapi import problems
from ehass.users import export, service
from ehass.users.schemas import UserList, UserRead, UserUpdate

router = APIRouter(prefix="/users", tags=["users"])


@router.get("", response_model=UserList, responses=problems(401, 403, 422))
async def list_users(
    principal: CurrentPrincipal,
    session: SessionDep,
    role: Role | None = None,
    is_active: bool | None = None,
    q: Annotated[str | None, Query(max_length=200, description="Name or email contains")] = None,
    limit: Limit = LIMIT_DEFAULT,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> UserList:
    page = await service.list_users(
        session, principal, role=role, is_active=is_active, q=q, limit=limit, cursor=cursor
    )
    return UserList(items=[UserRead.of(u) for u in page.items], next_cursor=page.next_cursor)


@router.get("/{userId}", response_model=UserRead, responses=problems(401, 404, 422))
async def get_user(
    user_id: Annotated[int, Path(alias="userId")],
    principal: CurrentPrincipal,
    session: SessionDep,
    rt: RuntimeDep,
) -> UserRead:
    return UserRead.of(await service.get(session, rt, principal, user_id=user_id))


@router.put("/{userId}", response_model=UserRead, responses=problems(401, 403, 404, 409, 422))
async def update_user(
    user_id: Annotated[int, Path(alias="userId")],
    body: UserUpdate,
    principal: CurrentPrincipal,
    session: SessionDep,
    rt: RuntimeDep,
) -> UserRead:
    user = await service.update(session, rt, principal, user_id=user_id, request=body)
    return UserRead.of(user)


@router.delete("/{userId}", status_code=204, responses=problems(401, 403, 404, 422))
async def deactivate_user(
    user_id: Annotated[int, Path(alias="userId")],
    principal: CurrentPrincipal,
    session: SessionDep,
    rt: RuntimeDep,
) -> Response:
    await service.deactivate(session, rt, principal, user_id=user_id)
    return Response(status_code=204)


@router.get(
    "/{userId}/export",
    response_model=dict[str, Any],
    responses=problems(401, 404, 422),
    summary="Everything EHASS holds about a person (self or administrator)",
)
async def export_user(
    user_id: Annotated[int, Path(alias="userId")],
    principal: CurrentPrincipal,
    session: SessionDep,
    rt: RuntimeDep,
) -> dict[str, Any]:
    return await export.export(session, rt, principal, user_id=user_id)
