"""OpenTelemetry tracing, off unless EHASS_OTEL_ENDPOINT is set.

When set, spans of every request (FastAPI), every SQL statement (SQLAlchemy) and every
Redis command go through the official instrumentations to an OTLP/HTTP collector, under
the service name `ehass`. The endpoint may be the collector's base URL
(`http://collector:4318`, to which `/v1/traces` is added) or the full traces URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import structlog

# The SDK and the instrumentations are imported only when tracing is on: most deployments
# run without it, and every process would otherwise load some fifty modules it never uses.
if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from sqlalchemy.ext.asyncio import AsyncEngine

    from ehass.config import Settings

log = structlog.get_logger("ehass.tracing")

SERVICE = "ehass"
# Probes and scrapes every few seconds would drown the traces that matter.
EXCLUDED_URLS = "/healthz,/metrics"


def traces_url(endpoint: str) -> str:
    """`http://collector:4318` -> `http://collector:4318/v1/traces`; a URL with a path is
    taken as it is."""
    if urlsplit(endpoint).path in ("", "/"):
        return endpoint.rstrip("/") + "/v1/traces"
    return endpoint


@dataclass
class Tracing:
    """What install_tracing set up; `shutdown()` flushes the spans and undoes it."""

    provider: TracerProvider
    app: FastAPI

    def shutdown(self) -> None:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.instrumentation.redis import RedisInstrumentor
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        FastAPIInstrumentor.uninstrument_app(self.app)
        SQLAlchemyInstrumentor().uninstrument()
        RedisInstrumentor().uninstrument()
        self.provider.shutdown()


def install_tracing(
    app: FastAPI,
    engine: AsyncEngine,
    settings: Settings,
    *,
    exporter: SpanExporter | None = None,
) -> Tracing | None:
    """Instruments the app, the engine and Redis; None (and nothing done) without
    `settings.otel_endpoint`.

    Call it in create_app, before the app serves its first request. `exporter` replaces
    the OTLP exporter (tests pass an in-memory one): spans are then exported one by one,
    and the process-wide tracer provider is left alone, so other apps stay untraced.
    """
    if not settings.otel_endpoint:
        return None
    from importlib.metadata import version

    from opentelemetry import trace
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    resource = Resource.create({SERVICE_NAME: SERVICE, SERVICE_VERSION: version("ehass")})
    provider = TracerProvider(resource=resource)
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = traces_url(settings.otel_endpoint)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        # Code asking the API for a tracer (and propagation) uses this provider too.
        if type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider":
            trace.set_tracer_provider(provider)
        log.info("tracing.enabled", endpoint=endpoint)
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))

    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, excluded_urls=EXCLUDED_URLS)
    # The latest instrumentation (0.66b1) still declares `sqlalchemy < 2.1` and would refuse
    # to run on 2.1; the engine events it hooks are unchanged there, and the tests check it.
    SQLAlchemyInstrumentor().instrument(
        engine=engine.sync_engine, tracer_provider=provider, skip_dep_check=True
    )
    RedisInstrumentor().instrument(tracer_provider=provider)
    return Tracing(provider=provider, app=app)
