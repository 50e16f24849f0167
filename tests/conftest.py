"""Fixtures shared by the whole suite.

The database is EHASS_TEST_DATABASE_URL (default: a fresh SQLite file), migrated with
Alembic once per run. Each test runs inside a transaction that is rolled back afterwards;
the app under test joins that transaction through savepoints, so every request commits
for real while the test leaves nothing behind. Tests that need several connections or
processes (concurrency) use `committed_database` instead and clean up after themselves.
"""

from __future__ import annotations

import base64
import itertools
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from ehass.config import Settings
from ehass.core import crypto
from ehass.core.clock import FrozenClock
from ehass.db import Database, create_engine
from ehass.main import create_app
from ehass.migrate import upgrade
from ehass.models import Base
from ehass.runtime import build_keyring
from tests.factories import Factories
from tests.mail import smtp, worker

# Fixtures defined elsewhere, available to every test.
__all__ = ["smtp", "worker"]

# Shared with the server processes some tests start, so they read what the tests wrote.
TEST_ENCRYPTION_KEYS = (
    "test:" + base64.urlsafe_b64encode(b"ehass test field encryption key!").decode()
)

# Signs audit checkpoints in production-mode servers and settings the tests start.
TEST_AUDIT_SIGNING_KEY = base64.b64encode(b"ehass test audit signing key 32b").decode()

# A Monday, far from any daylight-saving change in the zones the tests use.
DEFAULT_NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("EHASS_TEST_DATABASE_URL")
    if url:
        return url
    return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'ehass-test.db'}"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _database_url(tmp_path_factory)


@pytest.fixture(scope="session")
def redis_url() -> str | None:
    return os.environ.get("EHASS_TEST_REDIS_URL") or None


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str | None) -> Settings:
    return Settings(
        env="test",
        database_url=database_url,
        redis_url=redis_url,
        redis_key_prefix=f"ehass-test-{uuid.uuid4().hex[:8]}",
        secret_key="test-secret-key-that-is-long-enough-0123456789",
        encryption_keys=TEST_ENCRYPTION_KEYS,
        log_json=True,
        log_level="INFO",
        _env_file=None,
    )


@pytest.fixture(scope="session", autouse=True)
def keyring(settings: Settings) -> crypto.Keyring:
    """Field encryption is configured before any model touches an encrypted column."""
    ring = build_keyring(settings)
    crypto.configure(ring)
    return ring


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    await reset_schema(engine, settings.database_url)
    yield engine
    await engine.dispose()


async def reset_schema(engine: AsyncEngine, url: str) -> None:
    """Drops whatever a previous run left, then builds the schema with the migrations."""
    async with engine.begin() as connection:
        if connection.dialect.name == "mysql":
            await connection.execute(text("SET FOREIGN_KEY_CHECKS=0"))
        await connection.run_sync(Base.metadata.drop_all)
        await connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
        if connection.dialect.name == "mysql":
            await connection.execute(text("SET FOREIGN_KEY_CHECKS=1"))
    # Alembic runs its own event loop: give it a thread.
    await anyio.to_thread.run_sync(upgrade, url)


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as connection:
        transaction = await connection.begin()
        try:
            yield connection
        finally:
            await transaction.rollback()


@pytest.fixture
def sessionmaker(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )


@pytest.fixture
async def session(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    async with sessionmaker() as session:
        yield session


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(DEFAULT_NOW)


@pytest.fixture
def app(
    settings: Settings,
    engine: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> Any:
    return create_app(settings, clock=clock, database=Database(engine, sessionmaker))


_addresses = itertools.count(1)


@pytest.fixture
def client_ip() -> str:
    """A documentation-range address of the test's own: per-address counters never leak
    from one test into the next, even when Redis keeps them for the whole run."""
    return f"2001:db8::{next(_addresses):x}"


@pytest.fixture
async def client(app: Any, client_ip: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(client_ip, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
    await app.state.runtime.shared.close()


@pytest.fixture
def factories(session: AsyncSession, client: httpx.AsyncClient, clock: FrozenClock) -> Factories:
    return Factories(session=session, client=client, clock=clock)


@pytest.fixture
def api(client: httpx.AsyncClient) -> Callable[..., Awaitable[httpx.Response]]:
    """`await api("GET", "/doctors", token=...)`: a request under /api/v1."""

    async def call(
        method: str, path: str, *, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return await client.request(method, f"/api/v1{path}", headers=headers, **kwargs)

    return call


@pytest.fixture
async def unreachable_database_client(tmp_path: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose database cannot be opened (its directory does not exist)."""
    settings = Settings(
        env="test",
        encryption_keys=TEST_ENCRYPTION_KEYS,  # the process-wide keyring stays the suite's
        database_url=f"sqlite+aiosqlite:///{tmp_path}/missing-dir/none.db",
        secret_key="test-secret-key-that-is-long-enough-0123456789",
        _env_file=None,
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
    await app.state.database.dispose()


SCALE_TESTS = Path(__file__).resolve().parent / "scale"


def _names_scale_tests(config: pytest.Config) -> bool:
    for arg in config.args:
        path = (config.invocation_params.dir / arg.split("::", 1)[0]).resolve()
        if path == SCALE_TESTS or SCALE_TESTS in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """tests/scale deploys nginx, MariaDB and Redis (`make test-scale`): it runs only when
    named on the command line, never as part of the whole suite."""
    if collection_path.resolve() == SCALE_TESTS and not _names_scale_tests(config):
        return True
    return None


def pytest_report_header(config: pytest.Config) -> str:
    url = os.environ.get("EHASS_TEST_DATABASE_URL") or "sqlite (temporary file)"
    redis = os.environ.get("EHASS_TEST_REDIS_URL") or "none (in-process stand-ins)"
    return f"ehass: database {url.split('@')[-1]}, redis {redis}"
