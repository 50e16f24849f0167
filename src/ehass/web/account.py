"""Signing up, in and out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from ehass.auth import service as auth_service
from ehass.auth.service import MfaRequiredError
from ehass.core.principal import Principal, Role
from ehass.deps import ClientDep, RuntimeDep, SessionDep
from ehass.errors import DomainError
from ehass.users import service as user_service
from ehass.users.schemas import RegisterRequest
from ehass.web.deps import CsrfChecked, MaybePrincipal, WebPrincipal
from ehass.web.forms import Problems, attempt, parse, undo, values_of
from ehass.web.pages import redirect, render, safe_next
from ehass.web.security import clear_session_cookie, set_session_cookie

router = APIRouter(include_in_schema=False)

HOMES = {Role.PATIENT: "/appointments", Role.DOCTOR: "/doctor/schedule", Role.ADMIN: "/admin/users"}


def home_of(principal: Principal) -> str:
    return HOMES[principal.role]


@router.get("/")
async def home(request: Request, principal: MaybePrincipal) -> Response:
    if principal is not None:
        return redirect(home_of(principal))
    return render(request, "home.html")


@router.get("/signin")
async def signin_form(request: Request, principal: MaybePrincipal) -> Response:
    if principal is not None:
        return redirect(home_of(principal))
    return render(
        request,
        "signin.html",
        values={"email": ""},
        problems=Problems(),
        next=safe_next(request.query_params.get("next"), ""),
        ask_otp=False,
    )


@router.post("/signin", dependencies=[CsrfChecked])
async def signin(
    request: Request, session: SessionDep, rt: RuntimeDep, client: ClientDep
) -> Response:
    form = await request.form()
    values = values_of(form, "email", "password", "otp", "next")
    problems = Problems()
    ask_otp = bool(values["otp"])
    if not values["email"]:
        problems.fields["email"] = "Enter your email address."
    if not values["password"]:
        problems.fields["password"] = "Enter your password."  # noqa: S105 - a message
    started = None
    if not problems:
        try:
            started = await auth_service.start_session(
                session,
                rt,
                email=values["email"],
                password=values["password"],
                otp=values["otp"] or None,
                client=client,
            )
        except MfaRequiredError as exc:
            ask_otp = True
            problems.fields["otp"] = "Enter the 6-digit code from your authenticator app."
            await undo(session, exc)
        except DomainError as exc:
            problems.general.append(exc.detail)
            await undo(session, exc)
    if started is None:
        return render(
            request,
            "signin.html",
            status_code=401 if problems.general else 422,
            values={"email": values["email"]},
            problems=problems,
            next=safe_next(values["next"], ""),
            ask_otp=ask_otp,
        )
    user, user_session = started
    response = redirect(safe_next(values["next"], HOMES[Role(user.role)]))
    set_session_cookie(request, response, user_session.id)
    return response


@router.post("/signout", dependencies=[CsrfChecked])
async def signout(
    request: Request, principal: WebPrincipal, session: SessionDep, rt: RuntimeDep
) -> Response:
    await auth_service.logout(session, rt, principal)
    response = redirect("/signin?signed_out=1")
    clear_session_cookie(request, response)
    return response


_SIGNUP_FIELDS = ("name", "email", "password", "date_of_birth")


@router.get("/signup")
async def signup_form(request: Request) -> Response:
    return render(
        request, "signup.html", values=dict.fromkeys(_SIGNUP_FIELDS, ""), problems=Problems()
    )


@router.post("/signup", dependencies=[CsrfChecked])
async def signup(
    request: Request, session: SessionDep, rt: RuntimeDep, client: ClientDep
) -> Response:
    form = await request.form()
    values = values_of(form, *_SIGNUP_FIELDS)
    problems = Problems()
    for name, label in (("name", "your name"), ("email", "an email address")):
        if not values[name]:
            problems.fields[name] = f"Enter {label}."
    if not values["date_of_birth"]:
        problems.fields["date_of_birth"] = "Enter your date of birth."
    body = None
    if not problems:
        body = parse(
            RegisterRequest,
            {**values, "role": "patient", "date_of_birth": values["date_of_birth"] or None},
            problems,
        )
    user = None
    if body is not None:
        known = set(_SIGNUP_FIELDS)
        user = await attempt(
            session, lambda: user_service.register(session, rt, request=body), problems, known=known
        )
    started = None
    if user is not None:
        started = await attempt(
            session,
            lambda: auth_service.start_session(
                session, rt, email=values["email"], password=values["password"], client=client
            ),
            problems,
        )
    if started is None:
        values["password"] = ""  # a password is never sent back to the browser
        return render(request, "signup.html", status_code=422, values=values, problems=problems)
    response = redirect("/doctors?welcome=1")
    set_session_cookie(request, response, started[1].id)
    return response
