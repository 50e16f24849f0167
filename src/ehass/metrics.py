"""Prometheus metrics: HTTP traffic, the database pool, domain events and the audit chain.

The metric objects are process-global and defined once, here, at import. The services
count domain events through the small `count_*` helpers; `install_metrics()` adds the
request middleware and a token-guarded `GET /metrics`; `start_metrics_server()` serves the
same text on a loopback port of its own.

Several worker processes (`ehass serve --workers N`) need prometheus_client's
multiprocess mode: set `PROMETHEUS_MULTIPROC_DIR` to an empty directory, writable by the
workers, *before* the server starts (the workers inherit it, and prometheus_client reads it
when it is imported). Each process then writes its values to files there, and a scrape sums
them (`MultiProcessCollector`). Wipe the directory at every start: files of a previous run
would otherwise be added in.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from threading import Thread
from wsgiref.simple_server import WSGIServer

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
)
from prometheus_client.exposition import choose_encoder
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette._utils import get_route_path
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ehass.config import Settings
from ehass.routes import templates_of

log = structlog.get_logger("ehass.metrics")

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# A fast API: most answers take a few milliseconds; anything past 2.5 s is an outlier.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# How often a worker re-reads the scrape-time gauges when a separate metrics port is served
# (that server runs outside the event loop, so it cannot query the database itself).
REFRESH_SECONDS = 15.0
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "ehass_http_requests_total",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "ehass_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
HTTP_REQUESTS_IN_FLIGHT = Gauge(
    "ehass_http_requests_in_flight",
    "HTTP requests being answered right now.",
    multiprocess_mode="livesum",
)
DB_POOL_CHECKED_OUT = Gauge(
    "ehass_db_pool_checked_out",
    "Database connections checked out of the pool.",
    multiprocess_mode="livesum",  # each worker has a pool of its own
)
AUDIT_CHAIN_LENGTH = Gauge(
    "ehass_audit_chain_length",
    "Entries in the audit hash chain (the chain head's last id).",
    multiprocess_mode="livemax",  # one shared database: the freshest reading is the largest
)
AUDIT_UNSEALED_OLDEST = Gauge(
    "ehass_audit_unsealed_oldest_seconds",
    "Age of the oldest committed audit entry not yet sealed into the chain (0: none). "
    "The sealer keeps it under a second; alarm when it stays above a few.",
    multiprocess_mode="livemax",
)
REDIS_ERRORS = Counter("ehass_redis_errors_total", "Redis calls that failed.")
REDIS_CIRCUIT_OPEN = Gauge(
    "ehass_redis_circuit_open",
    "1 while Redis is not being asked after repeated failures (circuit open or probing).",
    multiprocess_mode="livemax",  # each process has its own circuit: 1 when any is open
)
REDIS_SHORT_CIRCUITED = Counter(
    "ehass_redis_short_circuited_total",
    "Redis calls not made because the circuit was open (served as when Redis is down).",
)
BOOKINGS = Counter("ehass_bookings_total", "Appointments booked.")
CANCELLATIONS = Counter("ehass_cancellations_total", "Appointments cancelled.")
BOOKING_CONFLICTS = Counter(
    "ehass_booking_conflicts_total", "Bookings refused with 409 because the slot was taken."
)
LOGIN_FAILURES = Counter("ehass_login_failures_total", "Failed login attempts.")
RATE_LIMITED = Counter("ehass_rate_limited_total", "Requests refused with 429.")
NOTIFICATIONS_DELIVERED = Counter(
    "ehass_notifications_delivered_total",
    "Messages delivered, by kind and channel (smtp, or log when no SMTP is configured).",
    ["kind", "channel"],
)
NOTIFICATION_FAILURES = Counter(
    "ehass_notification_failures_total",
    "Delivery attempts that failed, by outcome (retry later, or dead-lettered).",
    ["outcome"],
)
OUTBOX_DUE = Gauge(
    "ehass_outbox_due",
    "Messages due for delivery and not yet delivered.",
    multiprocess_mode="livemax",
)
OUTBOX_DEAD = Gauge(
    "ehass_outbox_dead",
    "Messages given up on after the last retry (the dead-letter state).",
    multiprocess_mode="livemax",
)


# --- domain events: one call where the event happens ---------------------------------


def count_booking() -> None:
    BOOKINGS.inc()


def count_cancellation() -> None:
    CANCELLATIONS.inc()


def count_booking_conflict() -> None:
    BOOKING_CONFLICTS.inc()


def count_login_failure() -> None:
    LOGIN_FAILURES.inc()


def count_rate_limited() -> None:
    RATE_LIMITED.inc()


def count_redis_error() -> None:
    REDIS_ERRORS.inc()


def count_redis_short_circuit() -> None:
    REDIS_SHORT_CIRCUITED.inc()


def set_redis_circuit_open(is_open: bool) -> None:
    REDIS_CIRCUIT_OPEN.set(1 if is_open else 0)


def count_delivery(kind: str, channel: str) -> None:
    NOTIFICATIONS_DELIVERED.labels(kind=kind, channel=channel).inc()


def count_delivery_failure(outcome: str) -> None:
    NOTIFICATION_FAILURES.labels(outcome=outcome).inc()


def set_outbox(*, due: int, dead: int) -> None:
    OUTBOX_DUE.set(due)
    OUTBOX_DEAD.set(dead)


# --- registries -------------------------------------------------------------------


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROC_DIR_ENV))


def collector_registry() -> CollectorRegistry:
    """What a scrape reads: this process's registry, or, in multiprocess mode, a fresh
    registry summing the files every worker wrote."""
    if not multiprocess_mode():
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def mark_process_dead(pid: int) -> None:
    """Forget a dead worker's live gauges (in-flight requests, pool connections).

    In multiprocess mode the `live*` gauges of a worker stay in PROMETHEUS_MULTIPROC_DIR
    after it dies, until this is called with its pid. gunicorn users call it from the
    `child_exit` server hook (`def child_exit(server, worker): mark_process_dead(worker.pid)`).
    uvicorn's supervisor has no such hook: a worker it restarts leaves its last values
    behind until the next start wipes the directory, so call this from whatever supervises
    the workers when it knows one has exited. Outside multiprocess mode it does nothing.
    """
    if multiprocess_mode():
        multiprocess.mark_process_dead(pid)


# --- scrape-time gauges -----------------------------------------------------------


def _set_pool_gauge(engine: AsyncEngine | None) -> None:
    if engine is None:
        return
    checked_out = getattr(engine.sync_engine.pool, "checkedout", None)
    if callable(checked_out):
        DB_POOL_CHECKED_OUT.set(checked_out())


async def refresh_gauges(app: FastAPI) -> None:
    """Reads the gauges that live elsewhere: the engine's pool, the audit chain head, the
    oldest unsealed audit entry and the outbox. A database that does not answer leaves the
    last readings in place."""
    # Late: the services import this module.
    from ehass.audit.models import AuditChainHead, AuditPending
    from ehass.notifications.repository import outbox_counts

    database = getattr(app.state, "database", None)
    if database is None:
        return
    _set_pool_gauge(database.engine)
    try:
        async with asyncio.timeout(2), database.sessionmaker() as session:
            last_id = await session.scalar(select(func.max(AuditChainHead.last_id)))
            # The smallest id is the oldest append; its own `at` says when it was made.
            oldest = await session.scalar(
                select(AuditPending.at).order_by(AuditPending.id).limit(1)
            )
            now = app.state.runtime.clock.now()
            outbox = await outbox_counts(session, now=now)
    except Exception as exc:  # a scrape must answer even when the database does not
        log.warning("metrics.database_unavailable", error=type(exc).__name__)
        return
    AUDIT_CHAIN_LENGTH.set(last_id or 0)
    AUDIT_UNSEALED_OLDEST.set(max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
    set_outbox(due=outbox["due"] or 0, dead=outbox["dead"] or 0)


# --- route templates ----------------------------------------------------------------


# --- the middleware -----------------------------------------------------------------


class MetricsMiddleware:
    """Counts requests, those in flight and their latency, labelled by route template.

    Meant to be the outermost middleware, so it also sees what the others answer
    themselves (413, 429, 500). With `refresh_seconds`, a task started with the app
    re-reads the scrape-time gauges for a metrics server outside the event loop.
    """

    def __init__(
        self, app: ASGIApp, *, fastapi_app: FastAPI, refresh_seconds: float | None = None
    ) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self.refresh_seconds = refresh_seconds
        self.templates = templates_of(fastapi_app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" and self.refresh_seconds:
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        path = get_route_path(scope)
        root_path = scope.get("root_path", "")
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        HTTP_REQUESTS_IN_FLIGHT.inc()
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            elapsed = time.perf_counter() - started
            HTTP_REQUESTS_IN_FLIGHT.dec()
            route = self.templates.label(scope, path, root_path)
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_REQUEST_DURATION.labels(method, route).observe(elapsed)
            database = getattr(self.fastapi_app.state, "database", None)
            _set_pool_gauge(getattr(database, "engine", None))

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        task: asyncio.Task[None] | None = None

        async def receive_and_watch() -> Message:
            nonlocal task
            message = await receive()
            if message["type"] == "lifespan.startup" and task is None:
                task = asyncio.create_task(self._refresh_forever())
            elif message["type"] == "lifespan.shutdown" and task is not None:
                task.cancel()
            return message

        try:
            await self.app(scope, receive_and_watch, send)
        finally:
            if task is not None:
                task.cancel()

    async def _refresh_forever(self) -> None:
        assert self.refresh_seconds
        while True:
            await refresh_gauges(self.fastapi_app)
            await asyncio.sleep(self.refresh_seconds)


# --- exposition ---------------------------------------------------------------------


def _authorized(request: Request, token: bytes) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    return secrets.compare_digest(given.strip().encode(), token)


def install_metrics(app: FastAPI, settings: Settings) -> None:
    """Adds the request middleware (outermost) and `GET /metrics`.

    `/metrics` is not public: without `EHASS_METRICS_TOKEN` it does not exist, and a
    request without `Authorization: Bearer <token>` gets the same 404 as any unknown path.
    """
    app.add_middleware(
        MetricsMiddleware,
        fastapi_app=app,
        refresh_seconds=REFRESH_SECONDS if settings.metrics_port is not None else None,
    )
    secret = settings.metrics_token
    if isinstance(secret, SecretStr):
        secret = secret.get_secret_value()
    token = secret.encode() if secret else None

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics(request: Request) -> Response:
        if token is None or not _authorized(request, token):
            raise HTTPException(status_code=404)  # the router's own "no such path"
        await refresh_gauges(request.app)
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(
            encoder(collector_registry()),
            headers={"Content-Type": content_type, "Cache-Control": "no-store"},
        )


def start_metrics_server(settings: Settings) -> tuple[WSGIServer, Thread] | None:
    """Serves the metrics on 127.0.0.1:`EHASS_METRICS_PORT` from a thread, without a token
    (loopback only); None when no port is set. Call it once, in the process that starts the
    server: with several workers that is the supervisor, which reads the workers' files."""
    if settings.metrics_port is None:
        return None
    return start_http_server(settings.metrics_port, addr="127.0.0.1", registry=collector_registry())


__all__ = [
    "MetricsMiddleware",
    "collector_registry",
    "count_booking",
    "count_booking_conflict",
    "count_cancellation",
    "count_login_failure",
    "count_rate_limited",
    "count_redis_error",
    "count_redis_short_circuit",
    "install_metrics",
    "mark_process_dead",
    "refresh_gauges",
    "set_redis_circuit_open",
    "start_metrics_server",
]
