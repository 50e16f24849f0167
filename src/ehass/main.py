"""create_app(): middleware, routers, error handlers and the resources they share."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline
from sqlalchemy import text
from sqlalchemy.exc import InterfaceError, OperationalError

from ehass.admin.router import router as admin_router
from ehass.appointments.router import router as appointments_router
from ehass.auth.router import router as auth_router
from ehass.availability.router import router as availability_router
from ehass.calendars.router import feed_router
from ehass.calendars.router import router as calendars_router
from ehass.config import Settings, get_settings
from ehass.core.clock import Clock, SystemClock
from ehass.db import Database
from ehass.doctors.router import router as doctors_router
from ehass.errors import PROBLEM_JSON, install_error_handlers
from ehass.holds.router import router as holds_router
from ehass.logging import configure_logging
from ehass.metrics import install_metrics
from ehass.middleware import (
    RateLimitMiddleware,
    RequestContextMiddleware,
    SecurityHeadersMiddleware,
)
from ehass.notifications import worker
from ehass.notifications.router import router as notifications_router
from ehass.openapi import problems
from ehass.ops.router import router as ops_router
from ehass.runtime import Runtime
from ehass.shared import SharedState
from ehass.tracing import install_tracing
from ehass.users.router import router as users_router
from ehass.waitlist.router import router as waitlist_router
from ehass.web.mount import install_web

API_PREFIX = "/api/v1"
log = structlog.get_logger("ehass.main")
DESCRIPTION = (
    "EHASS books medical appointments: patients find a doctor and book, move or cancel; "
    "doctors set their working hours; administrators manage accounts.\n\n"
    "Errors are RFC 9457 `application/problem+json`. Datetimes are RFC 3339 and answered "
    "in UTC (`2026-12-01T14:30:00Z`); a request datetime without an offset is a 422. "
    "Lists are cursor-paginated: pass `next_cursor` back as `cursor`."
)


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    database: Database | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(
        json=settings.json_logs, level=settings.log_level, cache=settings.env != "test"
    )
    database = database or Database.from_settings(settings)
    shared = SharedState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await wait_for_database(database, within_seconds=settings.startup_timeout_seconds)
        async with worker.embedded(database, app.state.runtime):
            yield
        await shared.close()
        await database.dispose()

    app = FastAPIOffline(
        title="EHASS",
        summary="Enterprise Health Appointment Scheduling System",
        description=DESCRIPTION,
        version=version("ehass"),
        lifespan=lifespan,
        generate_unique_id_function=lambda route: route.name,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.runtime = Runtime.create(settings, clock or SystemClock(), shared)

    api = APIRouter(prefix=API_PREFIX)
    # Routes are matched in this order, each router's table scanned in turn, so the
    # busiest (the directory, free times, appointments) come first.
    for router in (
        doctors_router,
        availability_router,
        # Before appointments: `/appointments/{id}.ics` must not be read as an id.
        calendars_router,
        appointments_router,
        auth_router,
        users_router,
        holds_router,
        waitlist_router,
        admin_router,
        notifications_router,
    ):
        api.include_router(router)
    app.include_router(api)
    app.include_router(ops_router)
    app.include_router(feed_router)
    install_error_handlers(app)
    install_web(app)  # the patient, doctor and admin pages at /; after the error handlers
    # Added innermost first: requests pass context -> security headers -> CORS -> limits.
    if settings.rate_limit_enabled:
        app.add_middleware(
            RateLimitMiddleware,
            shared=shared,
            general=settings.rate_limit_per_address,
            auth=settings.rate_limit_auth_per_address,
        )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
            expose_headers=["Location", "X-Request-ID", "Retry-After"],
            max_age=600,
        )
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    install_metrics(app, settings)  # outermost: it also counts what middleware answers itself
    install_tracing(app, database.engine, settings)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


async def wait_for_database(database: Database, *, within_seconds: float) -> None:
    """Startup waits for the database, with backoff, instead of crashing when it is late."""
    deadline = time.monotonic() + within_seconds
    delay = 0.2
    while True:
        try:
            async with database.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            return
        except (OperationalError, InterfaceError, OSError) as exc:
            if time.monotonic() + delay > deadline:
                log.error("database.unreachable", waited_seconds=within_seconds)
                raise
            log.warning("database.waiting", retry_in_seconds=delay, error=type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    # Every operation may be rate limited or fail unexpectedly; one with a body may get a
    # body it cannot decode or one that is too large. Error bodies are problem+json only
    # (FastAPI also lists the default media type).
    everywhere = problems(429, 500)
    with_body = problems(400, 413)  # 400: a body that is not even text
    for name, path in schema.get("paths", {}).items():
        for operation in path.values():
            responses = operation.setdefault("responses", {})
            extra = {**everywhere, **(with_body if "requestBody" in operation else {})}
            if name.startswith(RateLimitMiddleware.EXEMPT):
                extra.pop(429)
            for status, declared in extra.items():
                if str(status) not in responses:
                    entry = {k: v for k, v in declared.items() if k != "model"}
                    responses[str(status)] = entry
            for status, response in responses.items():
                content = response.get("content", {})
                if status[:1] in "45" and PROBLEM_JSON in content:
                    for media_type in [m for m in content if m.startswith("application/json")]:
                        del content[media_type]
    app.openapi_schema = schema
    return schema
