"""A lean HTTP/1.1 keep-alive client for the load generator.

The generator shares two cores with the apps, nginx and MariaDB, so every microsecond it
spends is taken from the system under test. httpx costs about 5 ms of CPU per request
here; this client (asyncio protocol, httptools parser, requests pre-encoded as bytes) costs
a few tens of microseconds. One request at a time per connection, no pipelining; callers
wait for a free connection, and that wait counts in their latency.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from typing import Any

import httptools


class ConnectionLostError(Exception):
    pass


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.body: list[bytes] = []
        self.keep_alive = True
        self.received = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionLostError(f"bad response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.keep_alive = False
        self._fail(ConnectionLostError(str(exc or "closed by peer")))

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if not self.parser.should_keep_alive():
            self.keep_alive = False
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self.parser.get_status_code(), b"".join(self.body)))

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def send(self, request: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None and self.waiter is None
        self.body = []
        self.received = False
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Client:
    """At most `connections` connections to host:port; `request()` returns (status, body)."""

    def __init__(self, host: str, port: int, *, connections: int, timeout: float) -> None:
        self.host, self.port = host, port
        self.max = connections
        self.timeout = timeout
        self.idle: deque[_Connection] = deque()
        self.opened = 0
        self.waiting: deque[asyncio.Future[None]] = deque()
        self.host_header = f"{host}:{port}".encode()

    def encode(
        self, method: str, path: str, *, token: str | None = None, body: Any = None
    ) -> bytes:
        lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: " + self.host_header]
        if token:
            lines.append(f"Authorization: Bearer {token}".encode())
        payload = b""
        if body is not None:
            payload = json.dumps(body).encode()
            lines.append(b"Content-Type: application/json")
        if payload or method in ("POST", "PUT"):
            lines.append(b"Content-Length: %d" % len(payload))
        return b"\r\n".join(lines) + b"\r\n\r\n" + payload

    async def _acquire(self) -> _Connection:
        while True:
            while self.idle:
                conn = self.idle.pop()
                if conn.keep_alive and conn.transport and not conn.transport.is_closing():
                    return conn
                self.opened -= 1
            if self.opened < self.max:
                self.opened += 1
                try:
                    _, conn = await asyncio.get_running_loop().create_connection(
                        _Connection, self.host, self.port
                    )
                except BaseException:
                    self.opened -= 1
                    raise
                return conn
            fut = asyncio.get_running_loop().create_future()
            self.waiting.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut in self.waiting:
                    self.waiting.remove(fut)
                raise

    def _release(self, conn: _Connection, reusable: bool) -> None:
        if reusable and conn.keep_alive:
            self.idle.append(conn)
        else:
            conn.close()
            self.opened -= 1
        while self.waiting:
            fut = self.waiting.popleft()
            if not fut.done():
                fut.set_result(None)
                break

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Sends a request made by `encode()`. A keep-alive connection the server closed
        before answering is retried once on a new one (nothing was processed)."""
        async with asyncio.timeout(self.timeout):
            for attempt in (1, 2):
                conn = await self._acquire()
                ok = False
                try:
                    result = await conn.send(raw)
                    ok = True
                    return result
                except ConnectionLostError:
                    if conn.received or attempt == 2:
                        raise
                finally:
                    self._release(conn, ok)
        raise AssertionError("unreachable")

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()
