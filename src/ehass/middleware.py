"""The outermost layer: a request id on every response, one log line per request, and a
problem+json 500 (never a traceback) for anything unexpected."""

from __future__ import annotations

import math
import re
import secrets
import time

import structlog
from limits import parse as parse_limit
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ehass import metrics
from ehass.core import context
from ehass.core.principal import ClientInfo
from ehass.errors import problem, unexpected_error
from ehass.routes import templates_of
from ehass.shared import SharedState

log = structlog.get_logger("ehass.request")
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class _BodyTooLarge(Exception):
    pass


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, root_path = scope.get("path", ""), scope.get("root_path", "")
        headers = dict(scope.get("headers") or [])
        sent = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = sent if _SAFE_REQUEST_ID.match(sent) else secrets.token_hex(16)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge
            return message

        structlog.contextvars.bind_contextvars(request_id=request_id)
        client = scope.get("client")
        user_agent = headers.get(b"user-agent", b"").decode("latin-1")[:255] or None
        context_token = context.begin(
            ClientInfo(
                ip=client[0] if client else None, user_agent=user_agent, request_id=request_id
            )
        )
        try:
            declared = headers.get(b"content-length", b"0")
            if declared.isdigit() and int(declared) > self.max_body_bytes:
                raise _BodyTooLarge
            await self.app(scope, receive_limited, send_with_id)
        except _BodyTooLarge:
            if response_started:
                raise
            response = problem(
                413,
                detail=f"The request body is larger than {self.max_body_bytes} bytes.",
                slug="body-too-large",
            )
            await response(scope, receive, send_with_id)
        except ClientDisconnect:
            status = 499  # the client closed the request: there is nobody left to answer
            log.info("request.client_disconnected")
        except Exception:
            log.exception("request.unhandled_error")
            if response_started:
                raise
            await unexpected_error(request_id)(scope, receive, send_with_id)
        finally:
            principal = context.current().principal
            log.info(
                "request",
                method=scope["method"],
                route=templates_of(scope["app"]).label(scope, path, root_path),
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                user_id=principal.user_id if principal else None,
                role=str(principal.role) if principal else None,
            )
            structlog.contextvars.unbind_contextvars("request_id")
            context.end(context_token)


_API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# Swagger UI and ReDoc pages bootstrap with an inline script; only they get this policy.
_DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'"
)
_DOCS_PATHS = ("/docs", "/redoc")
_COMMON_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
]
_JSON = (b"content-type", b"application/json")
_JSON_UTF8 = (b"content-type", b"application/json; charset=utf-8")
_HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")


class SecurityHeadersMiddleware:
    """Headers a browser needs to keep health data out of frames, caches and sniffers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        csp = _DOCS_CSP if path.startswith(_DOCS_PATHS) else _API_CSP
        extra = [*_COMMON_HEADERS, (b"content-security-policy", csp.encode())]
        if scope.get("scheme") == "https":
            extra.append(_HSTS)
        if path.startswith("/api/"):
            extra.append((b"cache-control", b"no-store"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # FastAPI's fastest path (models serialised straight to JSON bytes) names
                # no charset; the contract's JSON does.
                headers = [_JSON_UTF8 if h == _JSON else h for h in message.get("headers", [])]
                added = extra
                # The web pages set a policy of their own (scripts and styles from 'self');
                # the API and everything else never do, and get the one above.
                if any(name.lower() == b"content-security-policy" for name, _ in headers):
                    added = [h for h in extra if h[0] != b"content-security-policy"]
                message["headers"] = [*headers, *added]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RateLimitMiddleware:
    """Requests per client address: a general ceiling, and a tighter one on the endpoints
    that take passwords or tokens (register, login, refresh, password reset, verification,
    and the sign-in pages)."""

    EXEMPT = ("/healthz", "/readyz", "/static-offline-docs/")
    AUTH_PATHS = frozenset(
        {
            *(
                f"/api/v1/auth/{path}"
                for path in (
                    "register",
                    "login",
                    "refresh",
                    "password-reset",
                    "password-reset/confirm",
                    "verify-email",
                )
            ),
            "/signin",
            "/signup",
        }
    )

    def __init__(self, app: ASGIApp, *, shared: SharedState, general: str, auth: str) -> None:
        self.app = app
        self.shared = shared
        self.general = parse_limit(general)
        self.auth = parse_limit(auth)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(self.EXEMPT):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else "unknown"
        limits = [("general", self.general)]
        if path in self.AUTH_PATHS:
            limits.append(("auth", self.auth))
        for name, item in limits:
            state = await self.shared.hit(item, "requests", name, address)
            if not state.allowed:
                metrics.count_rate_limited()
                response = problem(
                    429,
                    detail="Too many requests from this address; slow down.",
                    slug="rate-limited",
                    headers={"Retry-After": str(max(1, math.ceil(state.retry_after)))},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
