"""Who is signed in, from the session cookie; and the CSRF check of every form POST."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from ehass.auth import service as auth_service
from ehass.core import context
from ehass.core.principal import Principal, Role
from ehass.deps import RuntimeDep, SessionDep
from ehass.errors import DomainError, NotAuthenticatedError, PermissionDeniedError
from ehass.web.security import CSRF_FIELD, csrf_valid, session_id_of


class SignInRequiredError(NotAuthenticatedError):
    """No session cookie at all: the page sends the browser to sign in, nothing to audit."""

    slug = "sign-in-required"
    title = "Sign in required"
    audit_as_denial = False


class CsrfRefusedError(PermissionDeniedError):
    slug = "csrf-refused"
    title = "Form expired"


async def web_principal(request: Request, session: SessionDep, rt: RuntimeDep) -> Principal:
    session_id = session_id_of(request)
    if session_id is None:
        raise SignInRequiredError("Sign in to continue.")
    principal = await auth_service.authenticate_session(session, rt, session_id=session_id)
    context.set_principal(principal)
    if principal.mfa_pending:
        raise PermissionDeniedError(
            "Set up multi-factor authentication first (see the API documentation), "
            "then sign in again."
        )
    return principal


async def optional_principal(
    request: Request, session: SessionDep, rt: RuntimeDep
) -> Principal | None:
    """The signed-in person on pages anyone may see (sign-in, the home page)."""
    if session_id_of(request) is None:
        return None
    try:
        return await web_principal(request, session, rt)
    except DomainError:
        return None


def _role(role: Role) -> Callable[..., Awaitable[Principal]]:
    async def check(principal: Annotated[Principal, Depends(web_principal)]) -> Principal:
        if principal.role is not role:
            raise PermissionDeniedError(f"This page is for {role}s.")
        return principal

    return check


async def check_csrf(request: Request) -> None:
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    if not csrf_valid(request, sent if isinstance(sent, str) else None):
        raise CsrfRefusedError(
            "This form has expired or did not come from this site. Go back, reload the page "
            "and send it again."
        )


WebPrincipal = Annotated[Principal, Depends(web_principal)]
MaybePrincipal = Annotated[Principal | None, Depends(optional_principal)]
PatientPrincipal = Annotated[Principal, Depends(_role(Role.PATIENT))]
DoctorPrincipal = Annotated[Principal, Depends(_role(Role.DOCTOR))]
AdminPrincipal = Annotated[Principal, Depends(_role(Role.ADMIN))]
CsrfChecked = Depends(check_csrf)
