"""What the fault tests share: seeding a committed database, real app servers, bounded calls."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

import anyio
import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from ehass.core.clock import SystemClock
from ehass.users.models import User
from tests.factories import PASSWORD, Factories
from tests.servers import Server, running_servers, server_env, wait_ready

SECRET_KEY = "fault-test-secret-key-that-is-long-enough-0123456789"
# No single request may take longer than this, whatever is broken behind the app.
REQUEST_TIMEOUT = httpx.Timeout(10.0)
SLOTS_PER_DAY = 16  # 09:00-17:00 UTC in 30-minute slots


@dataclass
class People:
    doctor: User
    patients: list[User]

    @property
    def doctor_id(self) -> int:
        assert self.doctor.doctor is not None
        return self.doctor.doctor.id


async def seed(url: str, *, patients: int) -> People:
    """Commits a doctor (Mon-Fri 09:00-17:00 UTC) and `patients` patients."""
    engine = create_async_engine(url)
    try:
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            factories = Factories(session=session, client=None, clock=SystemClock())  # type: ignore[arg-type]
            doctor = await factories.doctor()
            people = [await factories.patient() for _ in range(patients)]
            await session.commit()
    finally:
        await engine.dispose()
    return People(doctor=doctor, patients=people)


def slots(count: int, *, today: date | None = None) -> list[datetime]:
    """`count` distinct bookable starts on weekdays at least three days ahead (the servers
    use the real clock)."""
    day = (today or datetime.now(UTC).date()) + timedelta(days=3)
    found: list[datetime] = []
    while len(found) < count:
        if day.weekday() < 5:
            start = datetime.combine(day, clock_time(9), tzinfo=UTC)
            found.extend(start + timedelta(minutes=30 * i) for i in range(SLOTS_PER_DAY))
        day += timedelta(days=1)
    return found[:count]


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def app_env(database_url: str, **extra: str) -> dict[str, str]:
    return server_env(
        {
            "EHASS_DATABASE_URL": database_url,
            "EHASS_SECRET_KEY": SECRET_KEY,
            "EHASS_REDIS_KEY_PREFIX": f"ehass-faults-{uuid.uuid4().hex[:8]}",
            "EHASS_ENV": "test",
            "EHASS_LOG_LEVEL": "WARNING",
            **extra,
        }
    )


@asynccontextmanager
async def app_servers(
    count: int, env: Mapping[str, str], log_dir: Path
) -> AsyncIterator[list[Server]]:
    with running_servers(count, env=env, log_dir=log_dir) as servers:
        await asyncio.gather(*(wait_ready(server) for server in servers))
        yield servers


def logs(servers: Sequence[Server]) -> str:
    return "\n".join(f"--- log of {s.base_url}\n{s.log_tail(3000)}" for s in servers)


@dataclass
class Timed:
    response: httpx.Response
    seconds: float

    @property
    def status(self) -> int:
        return self.response.status_code

    def describe(self) -> str:
        r = self.response
        return (
            f"{r.request.method} {r.request.url} -> {r.status_code} in {self.seconds:.2f} s: "
            f"{r.text[:300]}"
        )


async def call(
    server: Server,
    method: str,
    path: str,
    *,
    token: str | None = None,
    json: Any = None,
    client: httpx.AsyncClient | None = None,
) -> Timed:
    """One request on a connection of its own (unless `client` is given), timed; a request
    that hangs fails the test through REQUEST_TIMEOUT."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    started = time.monotonic()
    if client is not None:
        response = await client.request(method, server.base_url + path, json=json, headers=headers)
    else:
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT) as own:
            response = await own.request(method, server.base_url + path, json=json, headers=headers)
    return Timed(response, time.monotonic() - started)


async def log_in(server: Server, user: User) -> str:
    answer = await call(
        server, "POST", "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}
    )
    assert answer.status == 200, answer.describe()
    return answer.response.json()["access_token"]


def booking(people: People, at: datetime, reason: str = "fault test") -> dict[str, Any]:
    return {"doctor_id": people.doctor_id, "scheduled_at": iso(at), "reason": reason}


def assert_problem(timed: Timed, status: int, slug: str | None = None) -> None:
    """A problem+json answer of `status` (and type `/problems/<slug>`), never a traceback."""
    response = timed.response
    assert response.status_code == status, timed.describe()
    assert response.headers["content-type"].startswith("application/problem+json"), timed.describe()
    body = response.json()
    assert body["status"] == status
    if slug is not None:
        assert body["type"] == f"/problems/{slug}", timed.describe()
    assert "Traceback" not in response.text


async def wait_until(check: Callable[[], Awaitable[bool]], *, seconds: float) -> None:
    """Returns once `check()` is true; fails after `seconds`."""
    with anyio.fail_after(seconds):
        while True:
            if await check():
                return
            await anyio.sleep(0.2)
