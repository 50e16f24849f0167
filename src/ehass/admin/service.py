"""What administrators see of the running system."""

from __future__ import annotations

import time
from datetime import timedelta
from importlib.metadata import version

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from ehass.admin.schemas import (
    DatabaseHealth,
    OutboxHealth,
    RedisHealth,
    SystemHealth,
    WorkerBeat,
    WorkerHealth,
)
from ehass.audit.models import AuditChainHead
from ehass.core.principal import Principal
from ehass.errors import PermissionDeniedError
from ehass.migrate import head_revision
from ehass.notifications import repository as notification_repository
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


# A worker beats every 10 seconds; a minute of silence means it is gone.
WORKER_SILENCE = timedelta(minutes=1)
# Due messages older than this mean delivery is stuck (no worker, or a failing one).
OUTBOX_STUCK_SECONDS = 300


async def _worker_and_outbox(
    session: AsyncSession, rt: Runtime
) -> tuple[WorkerHealth, OutboxHealth | None]:
    now = rt.clock.now()
    try:
        beats = await notification_repository.heartbeats(session, since=now - WORKER_SILENCE)
        counts = await notification_repository.outbox_counts(session, now=now)
    except Exception:  # the database is already reported as unavailable
        return WorkerHealth(status="missing", detail="unknown", workers=[]), None
    workers = [WorkerBeat.model_validate(beat) for beat in beats]
    if any(not beat.embedded for beat in beats):
        worker = WorkerHealth(status="ok", detail="`ehass worker` processes", workers=workers)
    elif beats or rt.settings.runs_embedded_worker:
        worker = WorkerHealth(
            status="embedded", detail="a worker runs inside the app process", workers=workers
        )
    else:
        worker = WorkerHealth(
            status="missing", detail="no worker seen in the last minute", workers=[]
        )
    return worker, OutboxHealth(
        due=counts["due"] or 0,
        dead=counts["dead"] or 0,
        oldest_due_seconds=counts["oldest_due_seconds"],
    )


async def health(session: AsyncSession, rt: Runtime, principal: Principal) -> SystemHealth:
    require_admin(principal)
    database, chain_length = await _database(session)
    redis = await _redis(rt)
    worker, outbox = await _worker_and_outbox(session, rt)
    stuck = outbox is not None and (outbox.oldest_due_seconds or 0) > OUTBOX_STUCK_SECONDS
    if database.status != "ok":
        status = "unavailable"
    elif redis.status == "unavailable" or not database.migrations_current or stuck:
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
        outbox=outbox,
        audit_entries=chain_length,
    )
