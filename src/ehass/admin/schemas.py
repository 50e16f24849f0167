from __future__ import annotations

from typing import Literal

from pydantic import Field

from ehass.core.schemas import ResponseModel, UtcDateTime


class DatabaseHealth(ResponseModel):
    status: Literal["ok", "unavailable"]
    backend: str
    latency_ms: float | None
    revision: str | None
    expected_revision: str | None
    migrations_current: bool


class RedisHealth(ResponseModel):
    status: Literal["ok", "unavailable", "not_configured"]
    latency_ms: float | None


class WorkerBeat(ResponseModel):
    worker_id: str
    host: str
    pid: int
    embedded: bool
    started_at: UtcDateTime
    seen_at: UtcDateTime


class WorkerHealth(ResponseModel):
    status: Literal["embedded", "ok", "missing"]
    detail: str
    workers: list[WorkerBeat] = Field(description="Workers seen in the last minute")


class OutboxHealth(ResponseModel):
    due: int = Field(description="Messages due and not yet delivered")
    dead: int = Field(description="Messages given up on after the last retry")
    oldest_due_seconds: int | None = Field(description="How long the oldest due message waits")


class SystemHealth(ResponseModel):
    status: Literal["ok", "degraded", "unavailable"]
    version: str
    uptime_seconds: int
    database: DatabaseHealth
    redis: RedisHealth
    worker: WorkerHealth
    outbox: OutboxHealth | None = Field(description="Null when the database does not answer")
    audit_entries: int | None
