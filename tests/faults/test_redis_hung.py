"""Redis accepts connections but never answers: after a few timeouts it is not asked.

Without the circuit breaker every call waits out the socket timeout, so every request
pays it once per Redis call. With it, after 3 failures in a row calls are answered at once
as when Redis is down (sessions from the database, counters in the process, the slot
cache a miss, live events delivered locally), one probe per open period tries Redis
again, and a revocation made meanwhile still holds, there and once Redis is back.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from limits import RateLimitItemPerMinute
from redis.asyncio import Redis

from ehass import metrics
from ehass.config import Settings
from ehass.shared import BREAKER_FAILURES, SharedState
from ehass.web.events import SlotChange, SlotEvents
from tests.faults.conftest import PrivateRedis
from tests.faults.support import app_env, app_servers, call, log_in, logs, seed, wait_until
from tests.servers import LOOPBACK, Server

SOCKET_TIMEOUT = 0.25  # the default of EHASS_REDIS_SOCKET_TIMEOUT_SECONDS
METRICS_TOKEN = "fault-test-metrics-token-0123456789"


class SilentServer:
    """Accepts TCP connections and reads what is sent, and never answers: a hung Redis."""

    def __init__(self) -> None:
        self.connections = 0
        self.bytes_received = 0
        self._writers: list[asyncio.StreamWriter] = []

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        while chunk := await reader.read(4096):
            self.bytes_received += len(chunk)

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    async def __aenter__(self) -> SilentServer:
        self._server = await asyncio.start_server(self._handle, LOOPBACK, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        for writer in self._writers:
            writer.close()
        self._server.close()
        await self._server.wait_closed()


@pytest.fixture
async def silent_redis() -> AsyncIterator[SilentServer]:
    async with SilentServer() as server:
        yield server


def _gauge(name: str) -> float | None:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name)


async def _timed(call_: object) -> float:
    started = time.monotonic()
    await call_  # type: ignore[misc]
    return time.monotonic() - started


async def test_every_redis_call_is_answered_at_once_once_the_circuit_opens(
    silent_redis: SilentServer,
) -> None:
    settings = Settings(_env_file=None, redis_url=silent_redis.url)
    shared = SharedState(settings)
    bus = SlotEvents(publisher=shared.redis, channel="ehass-test:web:slots")
    item = RateLimitItemPerMinute(5)
    metrics.set_redis_circuit_open(False)  # the gauge is process-wide
    try:
        # The first calls each wait out the (short) socket timeout, and answer as when
        # Redis is down.
        for _ in range(BREAKER_FAILURES):
            seconds = await _timed(shared.session_account("s1"))
            assert SOCKET_TIMEOUT * 0.8 <= seconds < SOCKET_TIMEOUT * 4
        assert _gauge("ehass_redis_circuit_open") == 1.0
        short_circuited = _gauge("ehass_redis_short_circuited_total") or 0.0
        sent = silent_redis.bytes_received
        connections = silent_redis.connections

        # Every path to Redis now answers at once, without sending it a byte.
        with anyio.fail_after(0.5):
            assert await shared.session_account("s1") == (False, None)  # the database decides
            await shared.revoke_session_accounts({"s1": 60})
            await shared.put_session_accounts({"s2": (b"account", 60)}, replace=False)
            assert await shared.cache_get("slots:1:1", ["hours", "d:x"]) == [None, None]
            await shared.cache_put("slots:1:1", {"hours": b"x"}, ttl_seconds=60)
            received = asyncio.Queue[SlotChange]()
            async with bus.subscribe(7) as queue:
                await bus.publish(SlotChange(7, taken=("2026-12-07T09:00:00Z",)))
                received = queue
            # Counters fall back to this process: the limit still holds.
            hits = [(await shared.hit(item, "hung", "k")).allowed for _ in range(6)]
        assert hits == [True] * 5 + [False]
        assert received.qsize() == 1  # this process's pages still hear of the booking
        assert silent_redis.bytes_received == sent
        assert silent_redis.connections == connections
        assert (_gauge("ehass_redis_short_circuited_total") or 0.0) - short_circuited >= 10

        # Health checks still ask Redis itself (and wait for it): they report on Redis,
        # and run at the pace of whatever polls them.
        seconds = await _timed(shared.ping())
        assert SOCKET_TIMEOUT * 0.8 <= seconds < SOCKET_TIMEOUT * 4
        assert silent_redis.bytes_received > sent
    finally:
        await bus.close()
        await shared.close()


async def test_the_probe_after_the_open_period_asks_redis_again(
    silent_redis: SilentServer,
) -> None:
    settings = Settings(
        _env_file=None,
        redis_url=silent_redis.url,
        redis_breaker_open_seconds=0.5,
        redis_breaker_max_open_seconds=0.5,
    )
    shared = SharedState(settings)
    try:
        for _ in range(BREAKER_FAILURES):
            await shared.cache_get("k", ["f"])
        sent = silent_redis.bytes_received
        assert await _timed(shared.cache_get("k", ["f"])) < 0.05
        await anyio.sleep(0.5)
        # One probe waits out the timeout; the calls made while it runs do not.
        probe = asyncio.create_task(shared.cache_get("k", ["f"]))
        await anyio.sleep(0.05)
        assert await _timed(shared.cache_get("k", ["f"])) < 0.05
        assert await probe == [None]
        assert silent_redis.bytes_received > sent
        # It failed: the circuit is open again, for the (capped) period.
        assert shared.guard.breaker.seconds_until_probe() == pytest.approx(0.5, abs=0.1)
    finally:
        await shared.close()


async def _listener_connections(publisher: Redis | None, seconds: float) -> int:
    """How often a page's live-event listener connects in `seconds` to a Redis that
    hangs up on every connection."""
    connections = 0

    async def hang_up(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    server = await asyncio.start_server(hang_up, LOOPBACK, 0)
    port = server.sockets[0].getsockname()[1]
    bus = SlotEvents(publisher=publisher, redis_url=f"redis://{LOOPBACK}:{port}/0")
    try:
        async with bus.subscribe(1):
            await anyio.sleep(seconds)
    finally:
        await bus.close()
        server.close()
        await server.wait_closed()
    return connections


async def test_live_pages_do_not_reconnect_to_redis_while_its_circuit_is_open(
    silent_redis: SilentServer,
) -> None:
    shared = SharedState(Settings(_env_file=None, redis_url=silent_redis.url))
    try:
        # Without a circuit the listener retries after 0.5 s, then 1 s.
        assert await _listener_connections(None, 1.2) >= 2
        for _ in range(BREAKER_FAILURES):
            shared.guard.breaker.record_failure()
        # With the shared client's circuit open (2 s), it waits for the probe time.
        assert await _listener_connections(shared.redis, 1.2) == 1
    finally:
        await shared.close()


# --- a whole app in front of a frozen Redis ------------------------------------------------


def _session_id(token: str) -> str:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sid"]


async def _metric(server: Server, name: str) -> float:
    answer = await call(server, "GET", "/metrics", token=METRICS_TOKEN)
    assert answer.status == 200, answer.describe()
    for line in answer.response.text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def _ready(server: Server) -> bool:
    return (await call(server, "GET", "/readyz")).status == 200


@pytest.mark.usefixtures("private_mariadb")
async def test_a_hung_redis_costs_its_timeout_only_a_few_times(
    private_redis: PrivateRedis, mariadb_database: str, tmp_path: Path
) -> None:
    people = await seed(mariadb_database, patients=2)
    prefix = "ehass-faults-hung"
    env = app_env(
        mariadb_database,
        EHASS_REDIS_URL=private_redis.url,
        EHASS_REDIS_KEY_PREFIX=prefix,
        EHASS_METRICS_TOKEN=METRICS_TOKEN,
        EHASS_REDIS_BREAKER_MAX_OPEN_SECONDS="4",
    )
    redis = Redis.from_url(private_redis.url)
    async with app_servers(1, env, tmp_path) as [server]:
        token = await log_in(server, people.patients[0])
        doomed = await log_in(server, people.patients[1])
        for bearer in (token, doomed):
            answer = await call(server, "GET", "/api/v1/appointments", token=bearer)
            assert answer.status == 200, answer.describe()
        # Redis holds the doomed session's account; it would outlive the outage.
        doomed_key = f"{prefix}:session:{_session_id(doomed)}"
        assert await redis.get(f"{prefix}:session-account:{_session_id(doomed)}") is not None
        assert await redis.get(doomed_key) is None  # no revocation mark yet

        # What the same request costs with Redis answering, on this (shared, busy) machine.
        healthy = [(await call(server, "GET", "/api/v1/appointments", token=token)).seconds]
        healthy += [(await call(server, "GET", "/api/v1/appointments", token=token)).seconds]
        baseline = max(healthy)

        private_redis.freeze()
        try:
            durations = []
            for _ in range(20):
                answer = await call(server, "GET", "/api/v1/appointments", token=token)
                assert answer.status == 200, answer.describe() + logs([server])
                durations.append(answer.seconds)
            # Each request asks Redis twice (rate limit, session). Waiting out 1 s each, as
            # before, took over 40 s; even 0.25 s timeouts alone would take over 10 s.
            assert sum(durations) < 10.0, (durations, logs([server]))
            # Only the first request (3 timeouts open the circuit) and one probe per open
            # period (2 s, then 4 s) wait for Redis; the others cost what they did before.
            slow = [d for d in durations if d > baseline + SOCKET_TIMEOUT]
            assert len(slow) <= 5, (durations, healthy)
            assert await _metric(server, "ehass_redis_circuit_open") == 1.0
            assert await _metric(server, "ehass_redis_short_circuited_total") > 20

            ready = await call(server, "GET", "/readyz")
            assert ready.status == 503, ready.describe()
            assert ready.response.json()["redis"] == "unavailable"
            assert ready.seconds < baseline + 4 * SOCKET_TIMEOUT, ready.describe()

            # A logout while Redis hangs ends the session at once: the database decides.
            logout = await call(server, "POST", "/api/v1/auth/logout", token=doomed)
            assert logout.status == 204, logout.describe()
            refused = await call(server, "GET", "/api/v1/appointments", token=doomed)
            assert refused.status == 401, refused.describe()
            assert refused.seconds < 1.0, refused.describe()
        finally:
            private_redis.thaw()

        # Redis answers again: the next probe, one open period (4 s at most here) after
        # the last, closes the circuit. No health check is asked: they would close it too.
        async def closed() -> bool:
            answer = await call(server, "GET", "/api/v1/appointments", token=token)
            assert answer.status == 200, answer.describe()
            return await _metric(server, "ehass_redis_circuit_open") == 0.0

        await wait_until(closed, seconds=10)
        assert await _ready(server)
        # The revocation Redis missed was written before Redis was read again, so the
        # account cached before the outage no longer lets the session in.
        refused = await call(server, "GET", "/api/v1/appointments", token=doomed)
        assert refused.status == 401, refused.describe()
        assert await redis.get(doomed_key) == b"0"
        # And Redis is in use again: a new session's account is cached there.
        fresh = await log_in(server, people.patients[1])
        assert (await call(server, "GET", "/api/v1/appointments", token=fresh)).status == 200
        assert await redis.get(f"{prefix}:session-account:{_session_id(fresh)}") is not None
    await redis.aclose()
