"""Forgotten password and email verification pages: the browser side of auth/recovery.py.

The links in the emails open these pages; a page never uses a link on load (mail scanners
fetch links to check them, and would use up a single-use token), only when its button is
pressed. Referrer-Policy: no-referrer (every answer) keeps the token out of other sites' logs.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from ehass.auth import recovery
from ehass.core.principal import ClientInfo
from ehass.deps import ClientDep, RuntimeDep, SessionDep
from ehass.runtime import Runtime
from ehass.web.deps import CsrfChecked, MaybePrincipal
from ehass.web.forms import Problems, attempt, values_of
from ehass.web.pages import redirect, render

router = APIRouter(include_in_schema=False)


@router.get("/forgot-password")
async def forgot_password_form(request: Request, principal: MaybePrincipal) -> Response:
    return render(
        request,
        "forgot_password.html",
        principal=principal,
        values={"email": ""},
        problems=Problems(),
        sent=False,
    )


@router.post("/forgot-password", dependencies=[CsrfChecked])
async def forgot_password(
    request: Request, session: SessionDep, rt: RuntimeDep, client: ClientDep
) -> Response:
    values = values_of(await request.form(), "email")
    problems = Problems()
    if not values["email"]:
        problems.fields["email"] = "Enter the email address of your account."
    sent = False
    if not problems:
        sent = (
            await attempt(
                session,
                lambda: _request(session, rt, values["email"], client),
                problems,
            )
            is not None
        )
    return render(
        request,
        "forgot_password.html",
        status_code=200 if sent else (429 if problems.general else 422),
        values=values,
        problems=problems,
        sent=sent,
    )


async def _request(session: AsyncSession, rt: Runtime, email: str, client: ClientInfo) -> bool:
    # The same answer whether or not an account uses the address (no enumeration).
    await recovery.request_password_reset(session, rt, email=email, client=client)
    return True


@router.get("/reset-password")
async def reset_password_form(
    request: Request, token: str = Query(default="", max_length=128)
) -> Response:
    return render(
        request, "reset_password.html", token=token, values={"password": ""}, problems=Problems()
    )


@router.post("/reset-password", dependencies=[CsrfChecked])
async def reset_password(
    request: Request, session: SessionDep, rt: RuntimeDep, client: ClientDep
) -> Response:
    values = values_of(await request.form(), "token", "password")
    problems = Problems()
    if not values["password"]:
        problems.fields["password"] = "Choose a new password."  # noqa: S105 - a message
    done = None
    if not problems:
        done = await attempt(
            session,
            lambda: _reset(session, rt, values["token"], values["password"], client),
            problems,
            known={"new_password"},
        )
    if done is None:
        if "new_password" in problems.fields:
            problems.fields["password"] = problems.fields.pop("new_password")
        return render(
            request,
            "reset_password.html",
            status_code=400 if problems.general else 422,
            token=values["token"],
            values={"password": ""},  # a password is never sent back to the browser
            problems=problems,
        )
    return redirect("/signin?reset=1")


async def _reset(
    session: AsyncSession, rt: Runtime, token: str, password: str, client: ClientInfo
) -> bool:
    await recovery.reset_password(session, rt, token=token, new_password=password, client=client)
    return True


@router.get("/verify-email")
async def verify_email_form(
    request: Request, principal: MaybePrincipal, token: str = Query(default="", max_length=128)
) -> Response:
    return render(
        request,
        "verify_email.html",
        principal=principal,
        token=token,
        problems=Problems(),
        verified=False,
    )


@router.post("/verify-email", dependencies=[CsrfChecked])
async def verify_email(
    request: Request,
    principal: MaybePrincipal,
    session: SessionDep,
    rt: RuntimeDep,
    client: ClientDep,
) -> Response:
    values = values_of(await request.form(), "token")
    problems = Problems()
    verified = await attempt(
        session, lambda: _verify(session, rt, values["token"], client), problems
    )
    return render(
        request,
        "verify_email.html",
        status_code=200 if verified else 400,
        principal=principal,
        token=values["token"],
        problems=problems,
        verified=bool(verified),
    )


async def _verify(session: AsyncSession, rt: Runtime, token: str, client: ClientInfo) -> bool:
    await recovery.verify_email(session, rt, token=token, client=client)
    return True
