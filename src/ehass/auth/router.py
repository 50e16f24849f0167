from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from ehass.auth import mfa, recovery, service
from ehass.auth.schemas import (
    EmailVerification,
    LoginRequest,
    MfaCode,
    MfaDisable,
    MfaEnrolment,
    MfaRecoveryCodes,
    PasswordResetAccepted,
    PasswordResetConfirm,
    PasswordResetRequest,
    RefreshRequest,
    SessionList,
    SessionRead,
    SessionSummary,
    TokenPair,
)
from ehass.deps import ClientDep, CurrentPrincipal, RuntimeDep, SessionDep
from ehass.openapi import problems
from ehass.users import service as user_service
from ehass.users.schemas import RegisterRequest, UserRead

router = APIRouter(prefix="/auth", tags=["auth"])

_LOGIN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": LoginRequest.model_json_schema()},
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["username", "password"],
                    "properties": {
                        "username": {"type": "string", "description": "The email address"},
                        "password": {"type": "string"},
                    },
                }
            },
        },
    }
}


async def _login_request(request: Request) -> LoginRequest:
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            fields = {
                "otp": form.get("otp"),
                "email": form.get("username") or form.get("email"),
                "password": form.get("password"),
            }
            return LoginRequest.model_validate({k: v for k, v in fields.items() if v is not None})
        return LoginRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(
            [{**err, "loc": ("body", *err["loc"])} for err in exc.errors()]
        ) from exc


@router.post(
    "/register",
    status_code=201,
    response_model=UserRead,
    responses=problems(409, 422, 429),
)
async def register(body: RegisterRequest, session: SessionDep, rt: RuntimeDep) -> UserRead:
    user = await user_service.register(session, rt, request=body)
    return UserRead.of(user)


@router.post(
    "/login",
    response_model=TokenPair,
    openapi_extra=_LOGIN_BODY,
    responses=problems(401, 422, 429),
)
async def login(
    request: Request, session: SessionDep, rt: RuntimeDep, client: ClientDep
) -> TokenPair:
    body = await _login_request(request)
    return await service.login(
        session, rt, email=body.email, password=body.password, otp=body.otp, client=client
    )


@router.post("/refresh", response_model=TokenPair, responses=problems(401, 422, 429))
async def refresh(body: RefreshRequest, session: SessionDep, rt: RuntimeDep) -> TokenPair:
    return await service.refresh(session, rt, refresh_token=body.refresh_token)


@router.post("/logout", status_code=204, responses=problems(401))
async def logout(principal: CurrentPrincipal, session: SessionDep, rt: RuntimeDep) -> Response:
    await service.logout(session, rt, principal)
    return Response(status_code=204)


_RESET_ACCEPTED = PasswordResetAccepted(
    detail="If an active account uses this address, a link to set a new password is on its "
    "way. It works once, for a limited time."
)


@router.post(
    "/password-reset",
    status_code=202,
    response_model=PasswordResetAccepted,
    responses=problems(422, 429),
    summary="Ask for a password reset link (the same answer whether or not the account exists)",
)
async def request_password_reset(
    body: PasswordResetRequest, session: SessionDep, rt: RuntimeDep, client: ClientDep
) -> PasswordResetAccepted:
    await recovery.request_password_reset(session, rt, email=body.email, client=client)
    return _RESET_ACCEPTED


@router.post(
    "/password-reset/confirm",
    status_code=204,
    responses=problems(400, 422, 429),
    summary="Set a new password with the token from a reset link; ends every session",
)
async def confirm_password_reset(
    body: PasswordResetConfirm, session: SessionDep, rt: RuntimeDep, client: ClientDep
) -> Response:
    await recovery.reset_password(
        session, rt, token=body.token, new_password=body.new_password, client=client
    )
    return Response(status_code=204)


@router.post(
    "/verify-email",
    status_code=204,
    responses=problems(400, 422, 429),
    summary="Verify an email address with the token from a verification link",
)
async def verify_email(
    body: EmailVerification, session: SessionDep, rt: RuntimeDep, client: ClientDep
) -> Response:
    await recovery.verify_email(session, rt, token=body.token, client=client)
    return Response(status_code=204)


@router.get("/session", response_model=SessionRead, responses=problems(401))
async def current_session(principal: CurrentPrincipal, session: SessionDep) -> SessionRead:
    user_session = await service.current_session(session, principal)
    return SessionRead(
        session_id=user_session.id,
        user_id=principal.user_id,
        role=principal.role,
        created_at=user_session.created_at,
        expires_at=user_session.expires_at,
    )


@router.get("/sessions", response_model=SessionList, responses=problems(401))
async def list_sessions(
    principal: CurrentPrincipal, session: SessionDep, rt: RuntimeDep
) -> SessionList:
    sessions = await service.list_sessions(session, rt, principal)
    return SessionList(
        items=[
            SessionSummary(
                session_id=s.id,
                created_at=s.created_at,
                last_seen_at=s.last_seen_at,
                expires_at=s.expires_at,
                ip=s.ip,
                user_agent=s.user_agent,
                current=s.id == principal.session_id,
            )
            for s in sessions
        ]
    )


@router.delete("/sessions/{sessionId}", status_code=204, responses=problems(401, 404, 422))
async def revoke_session(
    session_id: Annotated[str, Path(alias="sessionId", max_length=64)],
    principal: CurrentPrincipal,
    session: SessionDep,
    rt: RuntimeDep,
) -> Response:
    await service.revoke_session(session, rt, principal, session_id=session_id)
    return Response(status_code=204)


@router.post("/mfa/enroll", response_model=MfaEnrolment, responses=problems(401, 409))
async def enroll_mfa(
    principal: CurrentPrincipal, session: SessionDep, rt: RuntimeDep
) -> MfaEnrolment:
    enrolment = await mfa.enroll(session, rt, principal)
    return MfaEnrolment(
        secret=enrolment.secret, otpauth_uri=enrolment.otpauth_uri, qr_svg=enrolment.qr_svg
    )


@router.post("/mfa/confirm", response_model=MfaRecoveryCodes, responses=problems(401, 409, 422))
async def confirm_mfa(
    body: MfaCode, principal: CurrentPrincipal, session: SessionDep, rt: RuntimeDep
) -> MfaRecoveryCodes:
    codes = await mfa.confirm(session, rt, principal, code=body.code)
    return MfaRecoveryCodes(recovery_codes=codes)


@router.post("/mfa/disable", status_code=204, responses=problems(401, 403, 422))
async def disable_mfa(
    body: MfaDisable, principal: CurrentPrincipal, session: SessionDep, rt: RuntimeDep
) -> Response:
    await mfa.disable(session, rt, principal, password=body.password)
    return Response(status_code=204)
