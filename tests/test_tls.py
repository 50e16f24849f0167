"""`ehass serve` over TLS, and production's refusal to serve plain HTTP to the network."""

from __future__ import annotations

import base64
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import trustme

SECRET = "tls-test-secret-that-is-long-enough-0123456789"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EHASS_")}
    env |= {
        "EHASS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'tls.db'}",
        "EHASS_SECRET_KEY": SECRET,
        "EHASS_ENV": "production",
        "EHASS_ENCRYPTION_KEYS": "k1:" + base64.urlsafe_b64encode(b"t" * 32).decode(),
        "EHASS_AUDIT_SIGNING_KEY": base64.b64encode(b"a" * 32).decode(),
    }
    return env


def test_serves_https_with_hsts(env, tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ehass.cli",
            "serve",
            "--port",
            str(port),
            "--ssl-certfile",
            str(cert_file),
            "--ssl-keyfile",
            str(key_file),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    context = ssl.create_default_context()
    ca.configure_trust(context)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"https://127.0.0.1:{port}/healthz", verify=context, timeout=2)
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"server did not start: {server.stderr.read().decode()}")
                time.sleep(0.2)
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
        assert response.headers["strict-transport-security"].startswith("max-age=")
        assert "server" not in response.headers
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"https://127.0.0.1:{port}/healthz", timeout=2)  # untrusted without the CA
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.parametrize(
    ("extra", "args", "refused"),
    [
        ({}, ["--host", "0.0.0.0"], True),  # noqa: S104
        ({"EHASS_FORWARDED_ALLOW_IPS": "10.0.0.5"}, ["--host", "0.0.0.0"], False),  # noqa: S104
    ],
)
def test_production_refuses_plain_http_on_the_network(env, extra, args, refused):
    port = str(_free_port())
    process = subprocess.Popen(
        [sys.executable, "-m", "ehass.cli", "serve", *args, "--port", port],
        env=env | extra,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        code = process.wait(timeout=8)
    except subprocess.TimeoutExpired:
        code = None  # still serving: it was allowed to start
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)
    if refused:
        assert code == 2
        assert "plain HTTP" in process.stderr.read().decode()
    else:
        assert code is None


def test_database_and_redis_urls_carry_tls_options():
    from ehass.config import Settings
    from ehass.db import create_engine
    from ehass.shared import SharedState

    settings = Settings(
        _env_file=None,
        database_url="mysql+asyncmy://ehass:pw@db.internal:3306/ehass?ssl_ca=/etc/ssl/db-ca.pem",
        redis_url="rediss://cache.internal:6380/0?ssl_ca_certs=/etc/ssl/redis-ca.pem",
    )
    engine = create_engine(settings)
    _, connect = engine.dialect.create_connect_args(engine.url)
    assert connect["ssl"] == {"ca": "/etc/ssl/db-ca.pem"}
    assert connect["charset"] == "utf8mb4"
    shared = SharedState(settings)
    assert shared.redis is not None
    pool = shared.redis.connection_pool
    assert pool.connection_class.__name__ == "SSLConnection"
    assert pool.connection_kwargs["ssl_ca_certs"] == "/etc/ssl/redis-ca.pem"


def test_forwarded_headers_are_believed_only_from_trusted_proxies(env, tmp_path):
    """Behind a proxy, the client's address comes from X-Forwarded-For, and only then."""
    import asyncio

    from tests.servers import running_servers, server_env, wait_ready

    async def client_ip_seen(forwarded_allow: str | None) -> str:
        settings = {
            "EHASS_DATABASE_URL": env["EHASS_DATABASE_URL"],
            "EHASS_SECRET_KEY": SECRET,
            "EHASS_ENV": "test",
            "EHASS_RATE_LIMIT_AUTH_PER_ADDRESS": "1/minute",
        }
        if forwarded_allow:
            settings["EHASS_FORWARDED_ALLOW_IPS"] = forwarded_allow
        with running_servers(1, env=server_env(settings), log_dir=tmp_path) as (server,):
            await wait_ready(server)
            async with httpx.AsyncClient(base_url=server.base_url) as client:
                headers = {"X-Forwarded-For": "198.51.100.23"}
                body = {"refresh_token": "x"}
                first = await client.post("/api/v1/auth/refresh", json=body, headers=headers)
                # Another forwarded address: a separate budget only if the header is believed.
                headers = {"X-Forwarded-For": "198.51.100.24"}
                second = await client.post("/api/v1/auth/refresh", json=body, headers=headers)
            return f"{first.status_code},{second.status_code}"

    subprocess.run(
        [sys.executable, "-m", "ehass.cli", "db", "upgrade"],
        env={**env, "EHASS_ENV": "test"},
        check=True,
        capture_output=True,
    )
    assert asyncio.run(client_ip_seen("127.0.0.1")) == "401,401"
    assert asyncio.run(client_ip_seen(None)) == "401,429"


def test_startup_waits_for_a_late_database(env, tmp_path):
    """The server keeps trying while the database cannot be opened, then serves."""
    import time

    late_dir = tmp_path / "not-yet"
    url = f"sqlite+aiosqlite:///{late_dir / 'late.db'}"
    settings = {**env, "EHASS_DATABASE_URL": url, "EHASS_ENV": "test"}
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "ehass.cli", "serve", "--port", str(port)],
        env=settings,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(3)
        assert server.poll() is None, server.stderr.read().decode()  # still waiting, not crashed
        late_dir.mkdir()
        upgraded = subprocess.run(
            [sys.executable, "-m", "ehass.cli", "db", "upgrade"],
            env=settings,
            capture_output=True,
            check=False,
        )
        assert upgraded.returncode == 0, upgraded.stderr
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        else:
            pytest.fail("the server did not become ready after the database appeared")
    finally:
        server.terminate()
        server.wait(timeout=10)
