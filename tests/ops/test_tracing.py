"""OpenTelemetry tracing: off by default; when on, a request yields a server span with the
SQL (and Redis) spans beneath it. Spans go to an in-memory exporter, never the network."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy.ext.asyncio import async_sessionmaker

from ehass.db import Database
from ehass.main import create_app
from ehass.tracing import install_tracing, traces_url


def test_tracing_is_off_without_an_endpoint(settings, engine):
    app = create_app(settings, database=Database(engine, async_sessionmaker(engine)))
    assert install_tracing(app, engine, settings) is None
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("http://collector:4318", "http://collector:4318/v1/traces"),
        ("http://collector:4318/", "http://collector:4318/v1/traces"),
        ("https://otel.example.org/v1/traces", "https://otel.example.org/v1/traces"),
    ],
)
def test_traces_url(given, url):
    assert traces_url(given) == url


async def test_a_request_produces_a_server_span_with_sql_spans(settings, engine, redis_url):
    traced = settings.model_copy(update={"otel_endpoint": "http://127.0.0.1:4318"})
    # Built untraced, then traced into memory here (create_app would export over the network).
    # The engine's own sessions (no test transaction): /readyz only reads.
    app = create_app(settings, database=Database(engine, async_sessionmaker(engine)))
    exporter = InMemorySpanExporter()
    tracing = install_tracing(app, engine, traced, exporter=exporter)
    assert tracing is not None
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client:
            response = await client.get("/readyz")
            await client.get("/healthz")  # excluded: probes are not traced
        await app.state.runtime.shared.close()
    finally:
        tracing.shutdown()
    assert response.status_code == 200, response.text

    spans = exporter.get_finished_spans()
    servers = [s for s in spans if s.kind == SpanKind.SERVER]
    assert [s.name for s in servers] == ["GET /readyz"]
    server = servers[0]
    assert server.attributes["http.route"] == "/readyz"
    assert server.resource.attributes["service.name"] == "ehass"

    sql = [s for s in spans if s.kind == SpanKind.CLIENT and "db.statement" in s.attributes]
    sql = sql or [s for s in spans if s.kind == SpanKind.CLIENT and "db.query.text" in s.attributes]
    assert sql, [(s.name, dict(s.attributes)) for s in spans]
    assert any("alembic_version" in str(dict(s.attributes)) for s in sql)
    assert all(s.context.trace_id == server.context.trace_id for s in sql)
    if redis_url:
        redis = [s for s in spans if s.attributes.get("db.system") == "redis"]
        assert redis and redis[0].context.trace_id == server.context.trace_id

    # Uninstrumented again: later requests make no spans.
    exporter.clear()
    async with engine.connect() as connection:
        await connection.exec_driver_sql("SELECT 1")
    assert exporter.get_finished_spans() == ()


def test_with_an_endpoint_the_otlp_exporter_becomes_the_process_provider(tmp_path):
    script = textwrap.dedent(
        f"""
        from fastapi import FastAPI
        from opentelemetry import trace
        from ehass.config import Settings
        from ehass.db import create_engine
        from ehass.tracing import install_tracing

        settings = Settings(
            otel_endpoint="http://127.0.0.1:9/", _env_file=None,
            database_url="sqlite+aiosqlite:///{tmp_path}/t.db",
        )
        app = FastAPI()
        tracing = install_tracing(app, create_engine(settings), settings)
        provider = trace.get_tracer_provider()
        assert provider is tracing.provider, provider
        assert provider.resource.attributes["service.name"] == "ehass"
        (processor,) = provider._active_span_processor._span_processors
        print(type(processor).__name__, processor.span_exporter._endpoint)
        tracing.shutdown()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "OTEL_EXPORTER_OTLP_TIMEOUT": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.split() == ["BatchSpanProcessor", "http://127.0.0.1:9/v1/traces"]
