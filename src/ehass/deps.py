"""Dependency aliases that read like prose in route signatures."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ehass.auth import service as auth_service
from ehass.core import context
from ehass.core.principal import ClientInfo, Principal
from ehass.db import get_reader, get_session
from ehass.errors import NotAuthenticatedError, PermissionDeniedError
from ehass.runtime import Runtime

# OAuth2 password flow so Swagger UI's "Authorize" works against /auth/login.
_bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login", auto_error=False)


# Async, though they never wait: a plain `def` dependency runs in the thread pool.
async def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def get_client() -> ClientInfo:
    return context.current().client


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
# For endpoints that only read: an autocommit connection, no session and no COMMIT.
ReaderDep = Annotated[AsyncConnection, Depends(get_reader, scope="function")]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ClientDep = Annotated[ClientInfo, Depends(get_client)]


# What staff who still must enrol a second factor may call.
MFA_ENROLMENT_PATHS = frozenset(
    f"/api/v1/auth/{p}" for p in ("mfa/enroll", "mfa/confirm", "session", "logout", "refresh")
)


async def current_principal(
    request: Request,
    session: SessionDep,
    rt: RuntimeDep,
    token: Annotated[str | None, Depends(_bearer)],
) -> Principal:
    if not token:
        raise NotAuthenticatedError("Send an access token: Authorization: Bearer <token>.")
    principal = await auth_service.authenticate(session, rt, token=token)
    context.set_principal(principal)
    if principal.mfa_pending and request.url.path not in MFA_ENROLMENT_PATHS:
        raise PermissionDeniedError(
            "Set up multi-factor authentication first (POST /api/v1/auth/mfa/enroll), "
            "then refresh the tokens."
        )
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
