"""The scale-out deployment the tests of this folder share, and what it needs.

`make test-scale` runs them (the default `make test` leaves this folder out: see
tests/conftest.py). They need nginx, MariaDB (EHASS_TEST_DATABASE_URL) and Redis
(EHASS_TEST_REDIS_URL), and fail, rather than skip, without them: a green run must mean
the deployment was tested.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Generator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import async_sessionmaker

from ehass.config import Settings
from tests.scale.deployment import INSTANCES, Deployment, start_nginx
from tests.scale.nginx import nginx_binary
from tests.servers import database_of_its_own, running_servers, server_env, wait_ready

# The contract's lockout (API.md: 10 failed logins per account), and the default ceiling
# of requests per address on the endpoints that take passwords or tokens.
LOGIN_FAILURES_PER_ACCOUNT = 10
AUTH_REQUESTS_PER_ADDRESS = 60


def _requirements(settings: Settings, redis_url: str | None) -> str:
    """The nginx binary; fails the test (not skips it) when something is missing."""
    missing = []
    binary = nginx_binary()
    if binary is None:
        missing.append("nginx (apt-get install -y nginx)")
    if make_url(settings.database_url).get_backend_name() != "mysql":
        missing.append("MariaDB: EHASS_TEST_DATABASE_URL=mysql+asyncmy://...")
    if not redis_url:
        missing.append("Redis: EHASS_TEST_REDIS_URL=redis://...")
    if missing:
        pytest.fail(
            "the scale tests need " + "; ".join(missing) + " (`make test-scale` sets the URLs)",
            pytrace=False,
        )
    assert binary is not None
    return binary


async def _require_redis(redis_url: str) -> None:
    client = Redis.from_url(redis_url, socket_connect_timeout=2)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        pytest.fail(f"Redis at {redis_url} does not answer: {exc}", pytrace=False)
    finally:
        await client.aclose()


async def _forget_keys(redis_url: str, prefix: str) -> None:
    """Deletes the run's keys: rate-limit windows and cached session states."""
    client = Redis.from_url(redis_url)
    try:
        async for key in client.scan_iter(match=f"{prefix}*", count=1000):
            await client.delete(key)
    finally:
        await client.aclose()


@pytest.fixture(scope="module")
async def deployment(
    settings: Settings, redis_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Deployment]:
    binary = _requirements(settings, redis_url)
    assert redis_url is not None
    await _require_redis(redis_url)
    tmp_dir = tmp_path_factory.mktemp("scale")
    prefix = f"ehass-scale-{uuid.uuid4().hex[:8]}"
    metrics_token = secrets.token_urlsafe(24)
    async with database_of_its_own(settings, tmp_dir, uuid.uuid4().hex[:8]) as (url, engine):
        # Production settings with throwaway secrets (server_env adds the suite's field
        # encryption key, so the apps read what the tests write with the models).
        env = server_env(
            {
                "EHASS_ENV": "production",
                "EHASS_DATABASE_URL": url,
                "EHASS_REDIS_URL": redis_url,
                "EHASS_REDIS_KEY_PREFIX": prefix,
                "EHASS_SECRET_KEY": secrets.token_urlsafe(48),
                "EHASS_METRICS_TOKEN": metrics_token,
                "EHASS_FORWARDED_ALLOW_IPS": "127.0.0.1",
                "EHASS_RATE_LIMIT_ENABLED": "true",
                "EHASS_LOGIN_FAILURES_PER_ACCOUNT": str(LOGIN_FAILURES_PER_ACCOUNT),
                "EHASS_RATE_LIMIT_AUTH_PER_ADDRESS": f"{AUTH_REQUESTS_PER_ADDRESS}/minute",
                "EHASS_LOG_LEVEL": "WARNING",
            }
        )
        try:
            with running_servers(INSTANCES, env=env, log_dir=tmp_dir) as servers:
                await asyncio.gather(*(wait_ready(server) for server in servers))
                nginx = start_nginx(binary, tmp_dir / "nginx", [s.port for s in servers])
                deployed = Deployment(
                    instances=servers,
                    nginx=nginx,
                    env=env,
                    log_dir=tmp_dir,
                    sessionmaker=async_sessionmaker(engine, expire_on_commit=False),
                    metrics_token=metrics_token,
                )
                try:
                    yield deployed
                finally:
                    # Restarted instances are not the ones running_servers stops.
                    deployed.stop()
        finally:
            await _forget_keys(redis_url, prefix)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Generator[None, Any, None]:
    """A failing test's report ends with the logs of the apps and nginx."""
    outcome = yield
    report = outcome.get_result()
    deployed = getattr(item, "funcargs", {}).get("deployment")
    if report.failed and isinstance(deployed, Deployment):
        report.sections.append(("deployment logs", deployed.logs()))
