"""What administrators see of the running system."""

from __future__ import annotations

import time
from importlib.metadata import version

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from ehass.admin.schemas import DatabaseHealth, RedisHealth, SystemHealth, WorkerHealth
from ehass.audit.models import AuditChainHead
from ehass.core.principal import Principal
from ehass.errors import PermissionDeniedError
from ehass.migrate import head_revision
from ehass.runtime import Runtime

STARTED = time.monotonic()


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise PermissionDeniedError("Administrators only.")


async def _database(session: AsyncSession) -> tuple[DatabaseHealth, int | None]:
    backend = session.bind.dialect.name if session.bind else "unknown"
    expected = head_revision()
    started = time.perf_counter()
    try:
        revision = (await session.execute(text("SELECT version_num FROM alembic_version"))).scalar()
        latency = round((time.perf_counter() - started) * 1000, 2)
        chain = (await session.execute(select(AuditChainHead.last_id))).scalar()
    except Exception:  # whatever the failure, the answer is "unavailable"
        health = DatabaseHealth(
            status="unavailable",
            backend=backend,
            latency_ms=None,
            revision=None,
            expected_revision=expected,
            migrations_current=False,
        )
        return health, None
    health = DatabaseHealth(
        status="ok",
        backend=backend,
        latency_ms=latency,
        revision=revision,
        expected_revision=expected,
        migrations_current=revision == expected,
    )
    return health, chain


async def _redis(rt: Runtime) -> RedisHealth:
    started = time.perf_counter()
    answer = await rt.shared.ping()
    if answer is None:
        return RedisHealth(status="not_configured", latency_ms=None)
    latency = round((time.perf_counter() - started) * 1000, 2)
    return RedisHealth(
        status="ok" if answer else "unavailable", latency_ms=latency if answer else None
    )


async def health(session: AsyncSession, rt: Runtime, principal: Principal) -> SystemHealth:
    require_admin(principal)
    database, chain_length = await _database(session)
    redis = await _redis(rt)
    worker = WorkerHealth(status="embedded", detail="background work runs inside the app process")
    if database.status != "ok":
        status = "unavailable"
    elif redis.status == "unavailable" or not database.migrations_current:
        status = "degraded"
    else:
        status = "ok"
    return SystemHealth(
        status=status,
        version=version("ehass"),
        uptime_seconds=int(time.monotonic() - STARTED),
        database=database,
        redis=redis,
        worker=worker,
        audit_entries=chain_length,
    )
