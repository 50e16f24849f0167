"""Slow, abandoned and idle clients do not starve the others.

Raw sockets against a real `ehass serve`: a body sent a byte at a time, headers sent a
byte at a time, requests abandoned half-way, and 200 idle connections, all at once;
meanwhile /healthz keeps answering quickly and the slow clients still get an answer.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import anyio
import httpx

from ehass.config import Settings
from ehass.db import create_engine
from tests.conftest import reset_schema
from tests.faults.support import app_env, app_servers, logs
from tests.servers import LOOPBACK, Server

IDLE_CONNECTIONS = 200
ABANDONED = 20
DRIP_SECONDS = 0.1
QUICK_SECONDS = 1.0
BODY = b'{"email": "nobody@test.ehass.org", "password": "not the password at all"}'


async def _open(server: Server) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(LOOPBACK, server.port)


def _login_head(length: int) -> bytes:
    return (
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: " + str(length).encode() + b"\r\n\r\n"
    )


async def _status_line(reader: asyncio.StreamReader) -> bytes:
    with anyio.fail_after(30):
        return await reader.readline()


async def _drip(writer: asyncio.StreamWriter, data: bytes, chunk: int = 4) -> None:
    for at in range(0, len(data), chunk):
        writer.write(data[at : at + chunk])
        await writer.drain()
        await anyio.sleep(DRIP_SECONDS)


async def _slow_body(server: Server) -> bytes:
    reader, writer = await _open(server)
    try:
        writer.write(_login_head(len(BODY)))
        await _drip(writer, BODY)
        return await _status_line(reader)
    finally:
        writer.close()


async def _slow_headers(server: Server) -> bytes:
    reader, writer = await _open(server)
    try:
        await _drip(
            writer,
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"x" * 60 + b"\r\n\r\n",
        )
        return await _status_line(reader)
    finally:
        writer.close()


async def _abandon(server: Server, n: int) -> None:
    """Half a body, a whole request whose answer nobody reads, or a reset connection."""
    _, writer = await _open(server)
    if n % 3 == 0:
        writer.write(_login_head(len(BODY)) + BODY[: len(BODY) // 2])
    else:
        writer.write(_login_head(len(BODY)) + BODY)
    await writer.drain()
    await anyio.sleep(0.05)
    if n % 3 == 2:
        writer.transport.abort()  # RST instead of FIN
    else:
        writer.close()


async def _healthz_meanwhile(server: Server, until: anyio.Event) -> list[float]:
    durations: list[float] = []
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as client:
        while not until.is_set():
            started = time.monotonic()
            response = await client.get("/healthz", headers={"Connection": "close"})
            durations.append(time.monotonic() - started)
            assert response.status_code == 200, response.text
            await anyio.sleep(0.05)
    return durations


async def _sqlite_database(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ehass.db'}"
    engine = create_engine(Settings(database_url=url, _env_file=None))
    try:
        await reset_schema(engine, url)
    finally:
        await engine.dispose()
    return url


async def test_slow_and_idle_clients_do_not_starve_others(tmp_path: Path) -> None:
    url = await _sqlite_database(tmp_path)
    env = app_env(url, EHASS_RATE_LIMIT_ENABLED="false")
    async with app_servers(1, env, tmp_path) as [server]:
        idle: list[asyncio.StreamWriter] = []
        try:
            for n in range(IDLE_CONNECTIONS):
                _, writer = await _open(server)
                if n % 2:  # half never send a byte, half stop inside the headers
                    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                idle.append(writer)

            done = anyio.Event()
            results: dict[str, object] = {}

            async def run(name: str, work) -> None:
                results[name] = await work

            async with anyio.create_task_group() as group:
                group.start_soon(run, "healthz", _healthz_meanwhile(server, done))
                async with anyio.create_task_group() as clients:
                    clients.start_soon(run, "slow_body", _slow_body(server))
                    clients.start_soon(run, "slow_headers", _slow_headers(server))
                    for n in range(ABANDONED):
                        clients.start_soon(_abandon, server, n)
                done.set()
        finally:
            for writer in idle:
                writer.transport.abort()

        durations = results["healthz"]
        assert isinstance(durations, list) and len(durations) >= 5, results
        assert max(durations) < QUICK_SECONDS, (sorted(durations)[-5:], logs([server]))
        # The slow ones were served too, each in its turn: a wrong password, a health check.
        assert results["slow_body"].startswith(b"HTTP/1.1 401"), results["slow_body"]
        assert results["slow_headers"].startswith(b"HTTP/1.1 200"), results["slow_headers"]
        # And the server is still well afterwards.
        async with httpx.AsyncClient(base_url=server.base_url, timeout=5.0) as client:
            assert (await client.get("/readyz")).status_code == 200
        assert server.process.poll() is None, logs([server])


async def test_abandoned_request_is_not_logged_as_a_server_error(tmp_path: Path) -> None:
    url = await _sqlite_database(tmp_path)
    env = app_env(url, EHASS_RATE_LIMIT_ENABLED="false")
    async with app_servers(1, env, tmp_path) as [server]:
        for _ in range(3):
            _, writer = await _open(server)
            writer.write(_login_head(len(BODY)) + BODY[:10])
            await writer.drain()
            writer.close()
        await anyio.sleep(1.0)  # the server notices the disconnects when it reads the bodies
        async with httpx.AsyncClient(base_url=server.base_url, timeout=5.0) as client:
            assert (await client.get("/healthz")).status_code == 200
        log = server.log_tail(100_000)
    assert "request.unhandled_error" not in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
