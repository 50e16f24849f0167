from __future__ import annotations

from typing import Literal

from ehass.core.schemas import ResponseModel


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


class WorkerHealth(ResponseModel):
    status: Literal["embedded", "ok", "missing"]
    detail: str


class SystemHealth(ResponseModel):
    status: Literal["ok", "degraded", "unavailable"]
    version: str
    uptime_seconds: int
    database: DatabaseHealth
    redis: RedisHealth
    worker: WorkerHealth
    audit_entries: int | None
