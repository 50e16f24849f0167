"""The engine, the session factory, and the one place a request's transaction ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import Request
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from ehass.audit import service as audit
from ehass.availability import versions  # noqa: F401 - every session raises schedule versions
from ehass.config import Settings
from ehass.errors import DomainError, ServiceUnavailableError

log = structlog.get_logger("ehass.db")


def create_engine(settings: Settings) -> AsyncEngine:
    url = make_url(settings.database_url)
    # hide_parameters: a logged database error never quotes the values it was given.
    kwargs: dict[str, Any] = {"echo": settings.database_echo, "hide_parameters": True}
    if url.get_backend_name() == "sqlite":
        # One connection per process: SQLite has one writer anyway, and queueing in the
        # pool is fairer than SQLite's busy-wait. Other processes wait on busy_timeout.
        kwargs |= {"pool_size": 1, "max_overflow": 0, "connect_args": {"timeout": 30}}
        engine = create_async_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    if url.get_backend_name() == "mysql":
        if "charset" not in url.query:
            url = url.update_query_dict({"charset": "utf8mb4"})
        # READ COMMITTED: a check made after taking a row lock sees what others committed
        # before the lock was granted (REPEATABLE READ would read an older snapshot).
        kwargs |= {
            "pool_size": settings.database_pool_size,
            "max_overflow": settings.database_pool_size,
            "pool_pre_ping": True,
            "pool_recycle": 1800,
            "isolation_level": "READ COMMITTED",
        }
    return create_async_engine(url, **kwargs)


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN IMMEDIATE below is honoured.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA busy_timeout=30000",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front: a transaction that reads and then
        # writes can never fail half-way because another process wrote in between.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


@dataclass
class Database:
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        engine = create_engine(settings)
        return cls(engine, async_sessionmaker(engine, expire_on_commit=False))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def dispose(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A unit of work outside a request (CLI, jobs): its audit entries written and the
        whole committed on success, rolled back on any error."""
        async with self.sessionmaker() as session:
            try:
                yield session
                await audit.append(session)
                await session.commit()
            except BaseException:
                audit.discard(session)
                await session.rollback()
                raise


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Yields the request's session; commits when the endpoint returns, else rolls back.

    The audit entries the request queued are written (one INSERT into audit_pending) in
    the same transaction, right before it commits; a denied access is recorded on its own,
    also as one INSERT. Neither waits for the chain head: the sealer chains them later.
    """
    database: Database = request.app.state.database
    async with database.sessionmaker() as session:
        try:
            yield session
            await audit.append(session)
        except DomainError as exc:
            if exc.keep_changes:
                await audit.append(session)
                await session.commit()
            else:
                audit.discard(session)
                await session.rollback()
            if exc.status_code in DENIALS and exc.audit_as_denial:
                await _record_denial(database, request, exc)
            raise
        except (OperationalError, InterfaceError) as exc:
            # The database is down, restarting, or chose this transaction as a deadlock
            # victim: nothing was committed, and the client may simply try again.
            audit.discard(session)
            with suppress(Exception):
                await session.rollback()
            log.warning("database.unavailable", error=type(exc.orig or exc).__name__)
            raise DatabaseUnavailableError(
                "The database could not complete the request; nothing was changed. Retry shortly."
            ) from exc
        except BaseException:
            audit.discard(session)
            await session.rollback()
            raise
        await _commit(session)


async def _commit(session: AsyncSession) -> None:
    try:
        await session.commit()
    except (OperationalError, InterfaceError) as exc:
        # The COMMIT was sent, but its answer never came: the server may have committed just
        # before it went away. Saying "nothing was changed" could be false, so say so.
        with suppress(Exception):
            await session.rollback()
        log.warning("database.commit_outcome_unknown", error=type(exc.orig or exc).__name__)
        raise CommitOutcomeUnknownError(
            "The database went away while saving: the change may or may not have been made. "
            "Repeat the request with the same Idempotency-Key, or check before trying again."
        ) from exc
    except BaseException:
        with suppress(Exception):
            await session.rollback()
        raise


class CommitOutcomeUnknownError(ServiceUnavailableError):
    slug = "commit-outcome-unknown"
    title = "Outcome unknown"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Retry-After": "1"})


class DatabaseUnavailableError(ServiceUnavailableError):
    slug = "database-unavailable"
    title = "Database unavailable"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Retry-After": "1"})


DENIALS = frozenset({401, 403, 404})


async def _record_denial(database: Database, request: Request, exc: DomainError) -> None:
    route = request.scope.get("route")
    template = getattr(route, "path", request.url.path)
    # The first path parameter names what was refused; a secret in the path (a calendar
    # feed token) never goes into the trail, and nothing longer than the column fits.
    ids = [value for name, value in request.path_params.items() if name != "token"]
    entity_id = str(ids[0])[:64] if ids else None
    async with database.sessionmaker() as session:
        audit.record(
            session,
            at=request.app.state.runtime.clock.now(),
            action="access.denied",
            entity=_entity_of(template),
            entity_id=entity_id,
            changes={"status": exc.status_code, "method": request.method, "route": template},
        )
        await audit.append(session)
        await session.commit()


def _entity_of(template: str) -> str:
    """`/api/v1/appointments/{appointmentId}` -> `appointment`."""
    parts = [p for p in template.split("/") if p and not p.startswith("{")]
    resource = parts[-1] if parts else "unknown"
    if resource in {"availability", "session", "sessions"}:
        return "session" if resource.startswith("session") else resource
    return resource[:-1] if resource.endswith("s") else resource
