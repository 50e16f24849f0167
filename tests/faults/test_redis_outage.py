"""Redis stops or freezes under load: the app degrades to the database, never to a 5xx.

Two `ehass serve` processes share a private MariaDB and a private Redis (see conftest);
Redis is then stopped (SIGTERM) or frozen (SIGSTOP) while a client keeps reading and
booking. Sessions fall back to the database and rate limits to per-process counters;
/readyz says 503 while Redis does not answer and 200 again once it does, without an app
restart.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import anyio
import pytest

from tests.faults.conftest import PrivateRedis
from tests.faults.support import (
    Timed,
    app_env,
    app_servers,
    booking,
    call,
    log_in,
    logs,
    seed,
    slots,
    wait_until,
)
from tests.servers import Server

# A request may wait for a dead Redis at most a few socket timeouts (1 s each).
DEGRADED_SECONDS = 6.0
HEALTHY_SECONDS = 2.0


async def _load(
    servers: list[Server], tokens: list[str], people, starts, *, rounds: int
) -> list[Timed]:
    """`rounds` rounds of authenticated reads on each server plus one booking per round;
    `starts` are consumed as bookings are made."""
    answers: list[Timed] = []
    for round_ in range(rounds):
        server = servers[round_ % len(servers)]
        token = tokens[round_ % len(tokens)]
        reads = [call(s, "GET", "/api/v1/appointments", token=token) for s in servers]
        book = call(
            server, "POST", "/api/v1/appointments", token=token, json=booking(people, starts.pop())
        )
        answers.extend(await asyncio.gather(*reads, book))
    return answers


def _assert_served(answers: list[Timed], servers: list[Server], *, within: float) -> None:
    bad = [
        a.describe()
        for a in answers
        if a.seconds > within or a.status != (201 if a.response.request.method == "POST" else 200)
    ]
    assert not bad, "\n".join(bad) + "\n" + logs(servers)


async def _all_ready(servers: list[Server]) -> bool:
    return all(state == (200, "ok") for state in await _readiness(servers))


async def _readiness(servers: list[Server]) -> list[tuple[int, str]]:
    answers = await asyncio.gather(*(call(s, "GET", "/readyz") for s in servers))
    return [(a.status, a.response.json()["redis"]) for a in answers]


@pytest.mark.usefixtures("private_mariadb")
async def test_redis_stopped_during_load(
    private_redis: PrivateRedis, mariadb_database: str, tmp_path: Path
) -> None:
    people = await seed(mariadb_database, patients=4)
    starts = slots(30)
    env = app_env(mariadb_database, EHASS_REDIS_URL=private_redis.url)
    async with app_servers(2, env, tmp_path) as servers:
        tokens = [await log_in(servers[i % 2], p) for i, p in enumerate(people.patients[:3])]
        _assert_served(
            await _load(servers, tokens, people, starts, rounds=4), servers, within=HEALTHY_SECONDS
        )

        # A session the patient is about to end while Redis is away; its "active" verdict
        # was cached in Redis by the reads above.
        doomed = await log_in(servers[0], people.patients[3])
        assert (await call(servers[1], "GET", "/api/v1/appointments", token=doomed)).status == 200

        await anyio.to_thread.run_sync(private_redis.stop)
        _assert_served(
            await _load(servers, tokens, people, starts, rounds=6), servers, within=DEGRADED_SECONDS
        )
        assert await _readiness(servers) == [(503, "unavailable")] * 2
        logout = await call(servers[0], "POST", "/api/v1/auth/logout", token=doomed)
        assert logout.status == 204, logout.describe()
        for server in servers:
            answer = await call(server, "GET", "/api/v1/appointments", token=doomed)
            assert answer.status == 401, answer.describe()
            assert answer.seconds < DEGRADED_SECONDS, answer.describe()

        await anyio.to_thread.run_sync(private_redis.start)
        await wait_until(lambda: _all_ready(servers), seconds=10)
        _assert_served(
            await _load(servers, tokens, people, starts, rounds=4), servers, within=HEALTHY_SECONDS
        )

        # With Redis back, a revocation on one process reaches the other at once, though
        # the other had just cached the session as active.
        late = await log_in(servers[1], people.patients[3])
        assert (await call(servers[1], "GET", "/api/v1/appointments", token=late)).status == 200
        assert (await call(servers[0], "POST", "/api/v1/auth/logout", token=late)).status == 204
        after = await call(servers[1], "GET", "/api/v1/appointments", token=late)
        assert after.status == 401, after.describe()
        # The other tokens still work on both.
        _assert_served(
            await _load(servers, tokens, people, starts, rounds=2), servers, within=HEALTHY_SECONDS
        )


@pytest.mark.usefixtures("private_mariadb")
async def test_redis_frozen_requests_stay_bounded(
    private_redis: PrivateRedis, mariadb_database: str, tmp_path: Path
) -> None:
    people = await seed(mariadb_database, patients=2)
    starts = slots(20)
    env = app_env(mariadb_database, EHASS_REDIS_URL=private_redis.url)
    async with app_servers(1, env, tmp_path) as servers:
        tokens = [await log_in(servers[0], p) for p in people.patients]
        _assert_served(
            await _load(servers, tokens, people, starts, rounds=2), servers, within=HEALTHY_SECONDS
        )

        private_redis.freeze()
        try:
            # Connections to a frozen Redis open (the kernel accepts them) but nothing
            # answers: only the socket timeouts end each wait.
            _assert_served(
                await _load(servers, tokens, people, starts, rounds=3),
                servers,
                within=DEGRADED_SECONDS,
            )
            [ready] = await asyncio.gather(call(servers[0], "GET", "/readyz"))
            assert ready.status == 503, ready.describe()
            assert ready.response.json()["redis"] == "unavailable"
            assert ready.seconds < DEGRADED_SECONDS, ready.describe()
        finally:
            private_redis.thaw()

        await wait_until(lambda: _all_ready(servers), seconds=10)
        _assert_served(
            await _load(servers, tokens, people, starts, rounds=2), servers, within=HEALTHY_SECONDS
        )
