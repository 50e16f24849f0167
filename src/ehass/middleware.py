"""The outermost layer: a request id on every response, one log line per request, and a
problem+json 500 (never a traceback) for anything unexpected."""

from __future__ import annotations

import re
import secrets
import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ehass.errors import problem, unexpected_error

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
        except Exception:
            log.exception("request.unhandled_error")
            if response_started:
                raise
            await unexpected_error(request_id)(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            log.info(
                "request",
                method=scope["method"],
                route=getattr(route, "path", None),
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            structlog.contextvars.unbind_contextvars("request_id")
