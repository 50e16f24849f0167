"""Dependency aliases that read like prose in route signatures."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from ehass.auth import service as auth_service
from ehass.core.principal import ClientInfo, Principal
from ehass.db import get_session
from ehass.errors import NotAuthenticatedError
from ehass.runtime import Runtime

# OAuth2 password flow so Swagger UI's "Authorize" works against /auth/login.
_bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login", auto_error=False)


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def get_client(request: Request) -> ClientInfo:
    return ClientInfo(
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
        request_id=request.state.request_id,
    )


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ClientDep = Annotated[ClientInfo, Depends(get_client)]


async def current_principal(
    session: SessionDep, rt: RuntimeDep, token: Annotated[str | None, Depends(_bearer)]
) -> Principal:
    if not token:
        raise NotAuthenticatedError("Send an access token: Authorization: Bearer <token>.")
    return await auth_service.authenticate(session, rt, token=token)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
