"""Prometheus metrics: the guarded /metrics endpoint, route-template labels, the scrape-time
gauges, the loopback metrics server and multiprocess mode."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import textwrap
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from pydantic import SecretStr
from sqlalchemy import func, select

from ehass import metrics
from ehass.audit.models import AuditChainHead
from ehass.config import Settings
from ehass.db import Database
from ehass.main import create_app
from ehass.metrics import install_metrics, start_metrics_server
from tests.conftest import DEFAULT_NOW

TOKEN = "metrics-scrape-token-0123456789"
TEMPLATE = "/api/v1/appointments/{appointmentId}"


@pytest.fixture
def app(settings, engine, sessionmaker, clock) -> Any:
    """The suite's app, with a metrics token (create_app installs the metrics)."""
    changed = settings.model_copy(update={"metrics_token": SecretStr(TOKEN)})
    return create_app(changed, clock=clock, database=Database(engine, sessionmaker))


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def scrape(client: httpx.AsyncClient, token: str | None = TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await client.get("/metrics", headers=headers)


# --- the endpoint is not public ---------------------------------------------------------


async def test_metrics_answer_404_without_a_token(client):
    response = await scrape(client, token=None)
    assert response.status_code == 404
    unknown = await client.get("/no-such-path")
    # Indistinguishable from any path that does not exist.
    assert response.headers["content-type"] == unknown.headers["content-type"]
    assert response.json()["title"] == unknown.json()["title"]


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer ", f"Basic {TOKEN}", TOKEN],
)
async def test_metrics_answer_404_with_a_wrong_token(client, authorization):
    response = await client.get("/metrics", headers={"Authorization": authorization})
    assert response.status_code == 404


async def test_metrics_answer_404_when_no_token_is_configured(settings, engine, sessionmaker):
    app = create_app(settings, database=Database(engine, sessionmaker))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        response = await scrape(client)
    await app.state.runtime.shared.close()
    assert response.status_code == 404


async def test_metrics_answer_the_prometheus_text_format_with_the_token(client):
    await client.get("/healthz")
    response = await scrape(client)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert response.headers["cache-control"] == "no-store"
    body = response.text
    for series in (
        'ehass_http_requests_total{method="GET",route="/healthz",status="200"}',
        'ehass_http_request_duration_seconds_bucket{le="0.001",method="GET",route="/healthz"}',
        'ehass_http_request_duration_seconds_bucket{le="2.5",method="GET",route="/healthz"}',
        "ehass_http_requests_in_flight ",
        "ehass_db_pool_checked_out ",
        "ehass_audit_chain_length ",
        "ehass_audit_unsealed_oldest_seconds ",
        "ehass_redis_errors_total ",
        "ehass_bookings_total ",
        "ehass_cancellations_total ",
        "ehass_booking_conflicts_total ",
        "ehass_login_failures_total ",
        "ehass_rate_limited_total ",
    ):
        assert series in body, series
    # The scrape itself is in flight while it is answered.
    assert "ehass_http_requests_in_flight 1.0" in body


async def test_metrics_endpoint_is_not_in_the_openapi_schema(client):
    schema = (await client.get("/openapi.json")).json()
    assert "/metrics" not in schema["paths"]


async def test_openmetrics_on_request(client):
    response = await client.get(
        "/metrics",
        headers={
            "Authorization": f"Bearer {TOKEN}",
            "Accept": "application/openmetrics-text; version=1.0.0",
        },
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


# --- requests: counted once, labelled by template -----------------------------------------


async def test_a_request_is_counted_once_under_its_route_template(api, factories, clock):
    patient = await factories.patient()
    doctor = await factories.doctor()
    appointment = await factories.appointment(
        patient=patient, doctor=doctor, at=datetime(2026, 12, 1, 9, 0, tzinfo=clock.now().tzinfo)
    )
    token = await factories.token(patient)
    labels = {"method": "GET", "route": TEMPLATE}
    before = sample("ehass_http_requests_total", **labels, status="200")
    before_count = sample("ehass_http_request_duration_seconds_count", **labels)

    response = await api("GET", f"/appointments/{appointment.id}", token=token)

    assert response.status_code == 200, response.text
    assert sample("ehass_http_requests_total", **labels, status="200") == before + 1
    assert sample("ehass_http_request_duration_seconds_count", **labels) == before_count + 1
    raw = f"/api/v1/appointments/{appointment.id}"
    assert not any(s.labels.get("route") == raw for m in REGISTRY.collect() for s in m.samples), (
        "the raw path must never become a label"
    )


async def test_the_status_is_the_answered_one(api):
    labels = {"method": "GET", "route": TEMPLATE, "status": "401"}
    before = sample("ehass_http_requests_total", **labels)
    response = await api("GET", "/appointments/987654")
    assert response.status_code == 401
    assert sample("ehass_http_requests_total", **labels) == before + 1


async def test_unknown_paths_are_labelled_unmatched(client):
    labels = {"method": "GET", "route": "unmatched", "status": "404"}
    before = sample("ehass_http_requests_total", **labels)
    await client.get("/api/v1/nothing/zq-probe-one")
    await client.get("/no/such/thing/zq-probe-two")
    assert sample("ehass_http_requests_total", **labels) == before + 2
    body = (await scrape(client)).text
    # Words no timestamp or counter value can contain (digits could, by chance).
    assert "zq-probe" not in body


async def test_unusual_methods_share_one_label(client):
    before = sample("ehass_http_requests_total", method="OTHER", route="unmatched", status="404")
    await client.request("PROPFIND", "/nowhere")
    after = sample("ehass_http_requests_total", method="OTHER", route="unmatched", status="404")
    assert after == before + 1


async def test_in_flight_returns_to_where_it_was(client):
    before = sample("ehass_http_requests_in_flight")
    await client.get("/healthz")
    assert sample("ehass_http_requests_in_flight") == before


async def test_templates_of_nested_routers_are_complete():
    from fastapi import APIRouter

    inner = APIRouter(prefix="/items")

    @inner.get("/{itemId}")
    async def item(itemId: int) -> dict[str, int]:
        return {"id": itemId}

    middle = APIRouter(prefix="/shop")
    middle.include_router(inner)
    outer = APIRouter(prefix="/api/v2")
    outer.include_router(middle)
    tiny = FastAPI()
    tiny.include_router(outer)
    install_metrics(tiny, Settings(_env_file=None))
    labels = {"method": "GET", "route": "/api/v2/shop/items/{itemId}", "status": "200"}
    before = sample("ehass_http_requests_total", **labels)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=tiny), base_url="http://testserver"
    ) as client:
        assert (await client.get("/api/v2/shop/items/7")).status_code == 200
    assert sample("ehass_http_requests_total", **labels) == before + 1


# --- domain counters and scrape-time gauges -----------------------------------------------


@pytest.mark.parametrize(
    ("helper", "name"),
    [
        (metrics.count_booking, "ehass_bookings_total"),
        (metrics.count_cancellation, "ehass_cancellations_total"),
        (metrics.count_booking_conflict, "ehass_booking_conflicts_total"),
        (metrics.count_login_failure, "ehass_login_failures_total"),
        (metrics.count_rate_limited, "ehass_rate_limited_total"),
        (metrics.count_redis_error, "ehass_redis_errors_total"),
    ],
)
def test_domain_counters(helper, name):
    before = sample(name)
    helper()
    assert sample(name) == before + 1


async def test_audit_chain_length_and_pool_are_read_at_scrape_time(client, factories, session):
    await factories.patient()  # something audited, so the chain is not empty
    await client.get("/healthz")
    expected = await session.scalar(select(func.max(AuditChainHead.last_id))) or 0
    body = (await scrape(client)).text
    assert f"ehass_audit_chain_length {float(expected)}" in body
    # The test's own connection holds one connection out of the pool.
    assert "ehass_db_pool_checked_out 0.0" not in body


async def test_the_age_of_the_oldest_unsealed_entry_is_read_at_scrape_time(client, session, clock):
    from ehass.audit import sealer
    from ehass.audit import service as audit

    await sealer.seal_committed(session)
    body = (await scrape(client)).text
    assert "ehass_audit_unsealed_oldest_seconds 0.0" in body
    for seconds_ago in (42, 7):
        audit.record(
            session, at=clock.now() - timedelta(seconds=seconds_ago), action="t", entity="t"
        )
    await audit.append(session)
    body = (await scrape(client)).text
    assert "ehass_audit_unsealed_oldest_seconds 42.0" in body
    await sealer.seal_committed(session)
    body = (await scrape(client)).text
    assert "ehass_audit_unsealed_oldest_seconds 0.0" in body


async def test_with_a_metrics_port_the_gauges_are_refreshed_while_the_app_runs(monkeypatch):
    refreshed: list[FastAPI] = []

    async def refresh(app: FastAPI) -> None:
        refreshed.append(app)

    monkeypatch.setattr(metrics, "refresh_gauges", refresh)

    async def inner(scope, receive, send):
        assert (await receive())["type"] == "lifespan.startup"
        await send({"type": "lifespan.startup.complete"})
        await asyncio.sleep(0.1)  # the app serves
        assert (await receive())["type"] == "lifespan.shutdown"
        await send({"type": "lifespan.shutdown.complete"})

    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive():
        return messages.pop(0)

    async def send(message):
        pass

    tiny = FastAPI()
    middleware = metrics.MetricsMiddleware(inner, fastapi_app=tiny, refresh_seconds=0.01)
    await middleware({"type": "lifespan"}, receive, send)
    assert len(refreshed) >= 3 and set(map(id, refreshed)) == {id(tiny)}
    stopped_at = len(refreshed)
    await asyncio.sleep(0.05)
    assert len(refreshed) == stopped_at  # the task ended with the app


# --- the loopback metrics server ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_metrics_server_without_a_port():
    assert start_metrics_server(Settings(_env_file=None)) is None


def test_metrics_server_on_loopback_port():
    port = _free_port()
    started = start_metrics_server(Settings(metrics_port=port, _env_file=None))
    assert started is not None
    server, thread = started
    try:
        assert server.server_address[0] == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body = response.read().decode()
        assert response.status == 200
        assert "ehass_http_requests_in_flight" in body
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --- multiprocess mode --------------------------------------------------------------------

_WORKER = textwrap.dedent(
    """
    import asyncio, json, os, sys

    import httpx
    from fastapi import FastAPI

    from ehass import metrics
    from ehass.config import Settings

    mode = sys.argv[1]
    if mode == "work":
        bookings, in_flight = int(sys.argv[2]), int(sys.argv[3])
        for _ in range(bookings):
            metrics.count_booking()
        metrics.HTTP_REQUESTS_IN_FLIGHT.inc(in_flight)  # as if cut off mid-request
        print(os.getpid())
    else:
        for pid in sys.argv[2:]:
            metrics.mark_process_dead(int(pid))
        app = FastAPI()
        metrics.install_metrics(app, Settings(metrics_token="tok", _env_file=None))

        async def scrape():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                await client.get("/missing")
                response = await client.get("/metrics", headers={"Authorization": "Bearer tok"})
            return response.status_code, response.text

        print(json.dumps(asyncio.run(scrape())))
    """
)


def _run(tmp: Path, *args: str) -> str:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp)}
    done = subprocess.run(
        [sys.executable, "-c", _WORKER, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _value(body: str, series: str) -> float:
    for line in body.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{series} not in\n{body}")


def test_multiprocess_mode_sums_the_workers(tmp_path):
    first = _run(tmp_path, "work", "2", "1")
    _run(tmp_path, "work", "3", "2")

    status, body = json.loads(_run(tmp_path, "scrape"))
    assert status == 200
    assert _value(body, "ehass_bookings_total") == 5
    # The scraping process has its own /metrics request in flight.
    assert _value(body, "ehass_http_requests_in_flight") == 1 + 2 + 1
    unmatched = 'ehass_http_requests_total{method="GET",route="unmatched",status="404"}'
    assert _value(body, unmatched) == 1

    # A dead worker's live gauges go; its counts stay.
    status, body = json.loads(_run(tmp_path, "scrape", first))
    assert _value(body, "ehass_http_requests_in_flight") == 2 + 1
    assert _value(body, "ehass_bookings_total") == 5
    assert _value(body, unmatched) == 2


async def test_bookings_conflicts_cancellations_and_login_failures_are_counted(client, factories):
    doctor = await factories.doctor()
    first, second = await factories.patient(), await factories.patient()
    body = {"doctor_id": doctor.doctor.id, "scheduled_at": "2026-12-02T09:00:00Z"}
    before = {
        name: sample(name)
        for name in (
            "ehass_bookings_total",
            "ehass_booking_conflicts_total",
            "ehass_cancellations_total",
            "ehass_login_failures_total",
        )
    }
    headers = {"Authorization": f"Bearer {await factories.token(first)}"}
    booked = await client.post("/api/v1/appointments", json=body, headers=headers)
    assert booked.status_code == 201
    other = {"Authorization": f"Bearer {await factories.token(second)}"}
    assert (await client.post("/api/v1/appointments", json=body, headers=other)).status_code == 409
    cancelled = await client.delete(f"/api/v1/appointments/{booked.json()['id']}", headers=headers)
    assert cancelled.status_code == 200
    failed = await client.post(
        "/api/v1/auth/login", json={"email": first.email, "password": "not the password"}
    )
    assert failed.status_code == 401
    assert {name: sample(name) - value for name, value in before.items()} == {
        "ehass_bookings_total": 1,
        "ehass_booking_conflicts_total": 1,
        "ehass_cancellations_total": 1,
        "ehass_login_failures_total": 1,
    }
    scraped = (await scrape(client)).text
    assert "ehass_bookings_total" in scraped and "ehass_audit_chain_length" in scraped


async def test_outbox_depth_and_dead_letters_are_read_at_scrape_time(client, factories, session):
    from ehass.notifications.models import DeliveryStatus, Notification, NotificationKind

    patient = await factories.patient()
    now = DEFAULT_NOW
    for status, due in (
        (DeliveryStatus.PENDING, now),  # due
        (DeliveryStatus.PENDING, now + timedelta(hours=1)),  # a reminder, not due yet
        (DeliveryStatus.DEAD, now),
        (DeliveryStatus.SENT, now),
    ):
        session.add(
            Notification(
                kind=NotificationKind.BOOKED,
                status=status,
                user_id=patient.id,
                message_id=f"<{status}-{due.timestamp()}@ehass.localhost>",
                payload={},
                due_at=due,
                attempts=0,
                created_at=now,
            )
        )
    await session.flush()

    body = (await scrape(client)).text

    assert "ehass_outbox_due 1.0" in body
    assert "ehass_outbox_dead 1.0" in body


def test_deliveries_and_their_failures_are_counted():
    sent = (
        "ehass_notifications_delivered_total",
        {"kind": "appointment.booked", "channel": "smtp"},
    )
    dead = ("ehass_notification_failures_total", {"outcome": "dead"})
    before = sample(sent[0], **sent[1]), sample(dead[0], **dead[1])
    metrics.count_delivery("appointment.booked", "smtp")
    metrics.count_delivery_failure("dead")
    assert (sample(sent[0], **sent[1]), sample(dead[0], **dead[1])) == (
        before[0] + 1,
        before[1] + 1,
    )
