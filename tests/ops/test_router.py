from __future__ import annotations

import httpx

from ehass.config import Settings
from ehass.db import Database
from ehass.main import create_app
from tests.conftest import TEST_ENCRYPTION_KEYS


async def test_healthz_answers_ok(client):
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_answers_200_when_the_database_answers(client, redis_url):
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["database"] == "ok"
    assert body["redis"] == ("ok" if redis_url else "not_configured")


async def test_readyz_answers_503_when_redis_is_configured_but_down(settings, engine, sessionmaker):
    broken = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    app = create_app(broken, database=Database(engine, sessionmaker))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        response = await client.get("/readyz")
    await app.state.runtime.shared.close()
    assert response.status_code == 503
    assert response.json()["redis"] == "unavailable"


async def test_readyz_answers_503_when_the_database_does_not(tmp_path):
    settings = Settings(
        env="test",
        encryption_keys=TEST_ENCRYPTION_KEYS,  # the process-wide keyring stays the suite's
        database_url=f"sqlite+aiosqlite:///{tmp_path}/missing-dir/none.db",
        secret_key="test-secret-key-that-is-long-enough-0123456789",
        _env_file=None,
    )
    app = create_app(settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        response = await client.get("/readyz")
    await app.state.database.dispose()
    assert response.status_code == 503
    assert response.json()["database"] == "unavailable"
