"""Puts the web front ends into the app: pages, static files, and HTML error pages."""

from __future__ import annotations

import mimetypes
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from ehass.errors import DomainError
from ehass.web import account, admin, doctor, live, patient, profile, recovery
from ehass.web.events import SlotEvents, SlotEventsMiddleware, listen_to_the_orm
from ehass.web.pages import HERE, redirect, render
from ehass.web.security import clear_session_cookie

Handler = Callable[[Request, Exception], Awaitable[Response]]
# Paths that are never pages: they keep the API's problem+json answers.
NOT_PAGES = ("/api/", "/docs", "/redoc", "/openapi", "/static-offline-docs", "/metrics")


def _is_page(request: Request) -> bool:
    path = request.url.path
    return not path.startswith(NOT_PAGES) and "text/html" in request.headers.get("accept", "")


def _html_errors(original: Handler) -> Handler:
    """Pages answer errors as pages; everything else keeps the API's answer."""

    async def handle(request: Request, exc: Exception) -> Response:
        if not _is_page(request):
            return await original(request, exc)
        status = getattr(exc, "status_code", 422)
        if status == 401:
            target = request.url.path
            if request.url.query:
                target += "?" + request.url.query
            response = redirect("/signin?next=" + quote(target if request.method == "GET" else "/"))
            clear_session_cookie(request, response)
            return response
        if isinstance(exc, RequestValidationError):
            status, detail = 404, "There is no such page."
        elif isinstance(exc, DomainError):
            detail = exc.detail
        else:
            detail = "There is no such page." if status == 404 else "That did not work."
        return render(request, "error.html", status_code=status, status=status, detail=detail)

    return handle


def install_web(app: FastAPI) -> None:
    routers = (account, recovery, patient, doctor, admin, profile, live)
    for module in routers:
        app.include_router(module.router)
    shared = app.state.runtime.shared
    settings = app.state.settings
    app.state.slot_events = bus = SlotEvents(
        publisher=shared.redis,
        redis_url=settings.redis_url,
        channel=f"{settings.redis_key_prefix}:web:slots",
    )
    listen_to_the_orm()
    app.add_middleware(SlotEventsMiddleware, bus=bus)
    mimetypes.add_type("application/manifest+json", ".webmanifest")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="web-static")
    for kind in (DomainError, RequestValidationError, StarletteHTTPException):
        app.exception_handlers[kind] = _html_errors(app.exception_handlers[kind])
