from __future__ import annotations

import httpx
from sqlalchemy import text

from ehass.db import Database
from ehass.main import create_app


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


async def test_readyz_answers_503_when_the_database_does_not(unreachable_database_client):
    response = await unreachable_database_client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["database"] == "unavailable"


async def test_each_request_is_logged_once_with_route_template_user_and_role(api, factories):
    from structlog.testing import capture_logs

    patient = await factories.patient()
    token = await factories.token(patient)
    with capture_logs() as logs:
        response = await api("GET", f"/users/{patient.id}", token=token)
    assert response.status_code == 200
    lines = [entry for entry in logs if entry["event"] == "request"]
    assert len(lines) == 1
    line = lines[0]
    assert line["route"] == "/api/v1/users/{userId}"
    assert (line["method"], line["status"]) == ("GET", 200)
    assert (line["user_id"], line["role"]) == (patient.id, "patient")
    assert line["duration_ms"] >= 0


async def test_readyz_answers_503_while_migrations_are_pending(client, session):
    await session.execute(text("UPDATE alembic_version SET version_num = 'an-older-one'"))
    await session.flush()
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["database"] == "migrations_pending"
