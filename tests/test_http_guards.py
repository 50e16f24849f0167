"""Security headers, CORS and per-address rate limits on every response."""

from __future__ import annotations

import uuid

import httpx
import pytest

from ehass.db import Database
from ehass.main import create_app


@pytest.mark.parametrize("path", ["/api/v1/doctors", "/api/v1/nothing", "/healthz", "/docs"])
async def test_security_headers_on_every_response(client, path):
    response = await client.get(path)
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "server" not in headers or "uvicorn" not in headers["server"]
    assert "strict-transport-security" not in headers  # plain HTTP here


async def test_api_csp_forbids_everything_and_responses_are_not_cached(client):
    response = await client.get("/api/v1/doctors")
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert response.headers["cache-control"] == "no-store"


async def test_hsts_over_tls(app):
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://testserver"
    ) as client:
        response = await client.get("/healthz")
    assert response.headers["strict-transport-security"].startswith("max-age=")


def _app_with(settings, engine, sessionmaker, **changes):
    changed = settings.model_copy(update={"redis_key_prefix": f"t-{uuid.uuid4().hex}", **changes})
    return create_app(changed, database=Database(engine, sessionmaker))


async def _client(app, ip="2001:db8:ffff::1"):
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(ip, 1234)), base_url="http://testserver"
    )


async def test_cors_only_for_configured_origins(settings, engine, sessionmaker):
    app = _app_with(settings, engine, sessionmaker, cors_origins=["https://portal.example.org"])
    async with await _client(app) as client:
        allowed = await client.options(
            "/api/v1/doctors",
            headers={
                "Origin": "https://portal.example.org",
                "Access-Control-Request-Method": "GET",
            },
        )
        refused = await client.get("/api/v1/doctors", headers={"Origin": "https://evil.example"})
    await app.state.runtime.shared.close()
    assert allowed.headers["access-control-allow-origin"] == "https://portal.example.org"
    assert "access-control-allow-origin" not in refused.headers


async def test_auth_endpoints_are_limited_per_address(settings, engine, sessionmaker):
    app = _app_with(settings, engine, sessionmaker, rate_limit_auth_per_address="3/minute")
    async with await _client(app) as client, await _client(app, "2001:db8:ffff::2") as other:
        answers = [
            (await client.post("/api/v1/auth/refresh", json={"refresh_token": "x"})).status_code
            for _ in range(4)
        ]
        elsewhere = await other.post("/api/v1/auth/refresh", json={"refresh_token": "x"})
        general = await client.get("/api/v1/doctors")
    await app.state.runtime.shared.close()
    assert answers == [401, 401, 401, 429]
    assert elsewhere.status_code == 401
    assert general.status_code == 200


async def test_every_endpoint_has_a_ceiling_with_retry_after(settings, engine, sessionmaker):
    app = _app_with(settings, engine, sessionmaker, rate_limit_per_address="5/minute")
    async with await _client(app) as client:
        statuses = [(await client.get("/api/v1/doctors")).status_code for _ in range(6)]
        limited = await client.get("/api/v1/doctors")
        probe = await client.get("/healthz")
    await app.state.runtime.shared.close()
    assert statuses == [200] * 5 + [429]
    assert limited.headers["content-type"].startswith("application/problem+json")
    assert 0 < int(limited.headers["retry-after"]) <= 60
    assert probe.status_code == 200  # load-balancer probes are never limited


async def test_limits_can_be_turned_off_for_load_tests(settings, engine, sessionmaker):
    app = _app_with(
        settings, engine, sessionmaker, rate_limit_per_address="2/minute", rate_limit_enabled=False
    )
    async with await _client(app) as client:
        statuses = {(await client.get("/api/v1/doctors")).status_code for _ in range(5)}
    await app.state.runtime.shared.close()
    assert statuses == {200}
