"""Domain errors carry their HTTP status; one set of handlers renders RFC 9457 problem+json."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, ClassVar

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ehass.core.pagination import InvalidCursor

PROBLEM_JSON = "application/problem+json"
log = structlog.get_logger("ehass.errors")


class DomainError(Exception):
    """An expected failure a client can act on. Services raise these, never HTTPException."""

    status_code: ClassVar[int] = 400
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"
    # True when the transaction must still commit (a revocation that answers 401).
    keep_changes: bool = False
    # False when the service records its own, more precise audit entry for this failure.
    audit_as_denial: bool = True

    def __init__(self, detail: str | None = None, *, headers: Mapping[str, str] | None = None):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = dict(headers or {})


class NotAuthenticatedError(DomainError):
    status_code = 401
    slug = "unauthenticated"
    title = "Authentication required"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class PermissionDeniedError(DomainError):
    status_code = 403
    slug = "forbidden"
    title = "Not allowed"


class NotFoundError(DomainError):
    status_code = 404
    slug = "not-found"
    title = "Not found"


class ConflictError(DomainError):
    status_code = 409
    slug = "conflict"
    title = "Conflict"


class UnprocessableError(DomainError):
    """Well-formed input the domain rejects; `loc` points at the field to blame."""

    status_code = 422
    slug = "validation-error"
    title = "Invalid request"

    def __init__(self, detail: str, *, loc: Sequence[str | int] = ()) -> None:
        super().__init__(detail)
        self.errors = [{"loc": list(loc), "msg": detail, "type": "value_error"}]


class TooManyRequestsError(DomainError):
    status_code = 429
    slug = "rate-limited"
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: float) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, math.ceil(retry_after)))})


class ServiceUnavailableError(DomainError):
    status_code = 503
    slug = "unavailable"
    title = "Service unavailable"


def problem(
    status: int,
    *,
    detail: str,
    title: str | None = None,
    slug: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"/problems/{slug}" if slug else "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    # Only loc, msg and type: pydantic's `input` and `ctx` may echo a password back.
    return [
        {"loc": list(err.get("loc", ())), "msg": str(err.get("msg", "")), "type": err.get("type")}
        for err in errors
    ]


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    extra = {"errors": exc.errors} if isinstance(exc, UnprocessableError) else {}
    return problem(
        exc.status_code,
        detail=exc.detail,
        title=exc.title,
        slug=exc.slug,
        headers=exc.headers,
        **extra,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return problem(
        422,
        detail="The request is not valid; see errors.",
        title="Invalid request",
        slug="validation-error",
        errors=_validation_errors(exc.errors()),
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    headers = dict(exc.headers or {})
    if exc.status_code == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return problem(exc.status_code, detail=detail, headers=headers)


def unexpected_error(request_id: str | None) -> JSONResponse:
    return problem(
        500,
        detail="An unexpected error occurred. Quote the request id when reporting it.",
        slug="internal-error",
        request_id=request_id,
    )


async def _invalid_cursor(request: Request, exc: Exception) -> JSONResponse:
    return await _domain_error(
        request, UnprocessableError("The cursor is malformed.", loc=("query", "cursor"))
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(InvalidCursor, _invalid_cursor)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
