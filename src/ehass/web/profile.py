"""Everyone's own account: name, email, password, and a download of their data."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from starlette.responses import Response

from ehass.core.principal import Principal
from ehass.deps import RuntimeDep, SessionDep
from ehass.users import export
from ehass.users import service as user_service
from ehass.users.models import User
from ehass.users.schemas import UserUpdate
from ehass.web.deps import CsrfChecked, WebPrincipal
from ehass.web.forms import Problems, attempt, parse, values_of
from ehass.web.pages import redirect, render

router = APIRouter(include_in_schema=False)


def _page(
    request: Request,
    principal: Principal,
    user: User,
    *,
    details: dict[str, str] | None = None,
    details_problems: Problems | None = None,
    password_problems: Problems | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "profile.html",
        principal=principal,
        status_code=status_code,
        user=user,
        values=details or {"name": user.name, "email": user.email},
        problems=details_problems or Problems(),
        password_problems=password_problems or Problems(),
        flash=request.query_params.get("saved"),
    )


@router.get("/profile")
async def profile(
    request: Request, principal: WebPrincipal, session: SessionDep, rt: RuntimeDep
) -> Response:
    user = await user_service.get(session, rt, principal, user_id=principal.user_id)
    return _page(request, principal, user)


@router.post("/profile", dependencies=[CsrfChecked])
async def save_details(
    request: Request, principal: WebPrincipal, session: SessionDep, rt: RuntimeDep
) -> Response:
    form = await request.form()
    values = values_of(form, "name", "email")
    problems = Problems()
    body = parse(UserUpdate, values, problems)
    if body is not None:
        await attempt(
            session,
            lambda: user_service.update(
                session, rt, principal, user_id=principal.user_id, request=body
            ),
            problems,
            known={"name", "email"},
        )
    if problems:
        user = await user_service.get(session, rt, principal, user_id=principal.user_id)
        return _page(
            request, principal, user, details=values, details_problems=problems, status_code=422
        )
    return redirect("/profile?saved=details")


@router.post("/profile/password", dependencies=[CsrfChecked])
async def change_password(
    request: Request, principal: WebPrincipal, session: SessionDep, rt: RuntimeDep
) -> Response:
    form = await request.form()
    values = values_of(form, "current_password", "password")
    problems = Problems()
    if not values["current_password"]:
        problems.fields["current_password"] = "Enter your current password."  # noqa: S105
    if not values["password"]:
        problems.fields["password"] = "Enter a new password."  # noqa: S105
    body = None if problems else parse(UserUpdate, values, problems)
    if body is not None:
        await attempt(
            session,
            lambda: user_service.update(
                session, rt, principal, user_id=principal.user_id, request=body
            ),
            problems,
            known={"password"},
        )
    if problems:
        user = await user_service.get(session, rt, principal, user_id=principal.user_id)
        return _page(request, principal, user, password_problems=problems, status_code=422)
    return redirect("/profile?saved=password")


@router.get("/profile/export")
async def download(principal: WebPrincipal, session: SessionDep, rt: RuntimeDep) -> Response:
    data = await export.export(session, rt, principal, user_id=principal.user_id)
    return Response(
        json.dumps(data, indent=2, default=str),
        media_type="application/json",
        headers={
            "Content-Disposition": 'attachment; filename="ehass-my-data.json"',
            "Cache-Control": "no-store",
        },
    )
