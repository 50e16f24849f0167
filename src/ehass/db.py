"""The engine, the session factory, and the one place a request's transaction ends."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import Request
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
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

# A connection back in the pool for longer than this is pinged before it is handed out
# again; one used more recently is trusted (a dead one fails its first statement, which
# answers 503 with nothing written, and the pool then replaces every connection).
IDLE_PING_SECONDS = 2.0
_RETURNED_AT = "ehass.returned_at"


def create_engine(settings: Settings, *, reads_only: bool = False) -> AsyncEngine:
    """The engine of every transaction, or with `reads_only` a second pool of autocommit
    connections for requests that only read: no transaction to begin or end, so a read
    costs its statements alone (and on SQLite never queues behind the writer)."""
    url = make_url(settings.database_url)
    # hide_parameters: a logged database error never quotes the values it was given.
    kwargs: dict[str, Any] = {
        "echo": settings.database_echo,
        "hide_parameters": True,
        "pool_reset_on_return": None,
    }
    if reads_only:
        kwargs["isolation_level"] = "AUTOCOMMIT"
    if url.get_backend_name() == "sqlite":
        # One connection per process: SQLite has one writer anyway, and queueing in the
        # pool is fairer than SQLite's busy-wait. Other processes wait on busy_timeout.
        kwargs |= {"pool_size": 1, "max_overflow": 0, "connect_args": {"timeout": 30}}
        engine = create_async_engine(url, **kwargs)
        _configure_sqlite(engine, reads_only=reads_only)
        _reset_only_open_transactions(engine, lambda driver: driver.in_transaction)
        return _without_transactions(engine) if reads_only else engine
    if url.get_backend_name() == "mysql":
        if "charset" not in url.query:
            url = url.update_query_dict({"charset": "utf8mb4"})
        size = (
            max(2, settings.database_pool_size // 2) if reads_only else settings.database_pool_size
        )
        kwargs |= {"pool_size": size, "max_overflow": size, "pool_recycle": 1800}
        if not reads_only:
            # READ COMMITTED: a check made after taking a row lock sees what others
            # committed before the lock was granted (REPEATABLE READ would read an older
            # snapshot).
            kwargs["isolation_level"] = "READ COMMITTED"
        engine = create_async_engine(url, **kwargs)
        _ping_idle_connections(engine)
        _reset_only_open_transactions(engine, lambda driver: driver.get_transaction_status())
        return _without_transactions(engine) if reads_only else engine
    kwargs.pop("pool_reset_on_return")
    return create_async_engine(url, **kwargs)


def _without_transactions(engine: AsyncEngine) -> AsyncEngine:
    """Every connection of this engine is in autocommit mode, so there is never a
    transaction to end; yet closing a Connection still calls the driver's rollback(), which
    asyncmy sends to the server. This engine's own dialect skips it."""

    def nothing_to_end(_dbapi_connection: Any) -> None:
        return None

    engine.dialect.do_rollback = nothing_to_end  # type: ignore[method-assign]
    engine.dialect.do_commit = nothing_to_end  # type: ignore[method-assign]
    return engine


def _ping_idle_connections(engine: AsyncEngine) -> None:
    """`pool_pre_ping` costs a round trip on every checkout; pinging only connections that
    sat idle keeps the protection where it matters (a restarted or timed-out server) and
    drops the round trip from every busy request."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get(_RETURNED_AT)
        if returned is None or time.monotonic() - returned < IDLE_PING_SECONDS:
            return  # new, or in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool discards this connection and checks out (or opens) another.
            raise DisconnectionError("idle connection no longer answers") from exc


def _reset_only_open_transactions(engine: AsyncEngine, in_transaction: Any) -> None:
    """The pool's reset-on-return sends a ROLLBACK after every request, even one that has
    just committed. The driver knows whether a transaction is still open (the server
    reports it with every answer), so roll back only then: a connection never reaches its
    next user inside someone else's transaction, and a committed request costs no round trip.
    """

    @event.listens_for(engine.sync_engine, "reset")
    def _on_reset(dbapi_connection: Any, record: Any, state: Any) -> None:
        if state.terminate_only or not state.asyncio_safe:
            return  # the pool closes this connection instead of reusing it
        if in_transaction(record.driver_connection):
            engine.dialect.do_rollback(dbapi_connection)


def _configure_sqlite(engine: AsyncEngine, *, reads_only: bool) -> None:
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

    if reads_only:
        return  # autocommit: each statement reads the last committed state, WAL lets it

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front: a transaction that reads and then
        # writes can never fail half-way because another process wrote in between.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


@dataclass
class Database:
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    # Where read-only requests run their statements (`read`): the autocommit pool of
    # `from_settings`, else whatever the sessionmaker is bound to, so a test that binds
    # it to one connection reads its own uncommitted rows.
    reader: AsyncEngine | AsyncConnection | None = None

    def __post_init__(self) -> None:
        if self.reader is None:
            self.reader = self.sessionmaker.kw.get("bind") or self.engine

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        engine = create_engine(settings)
        return cls(
            engine,
            async_sessionmaker(engine, expire_on_commit=False),
            create_engine(settings, reads_only=True),
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def dispose(self) -> None:
        await self.engine.dispose()
        if isinstance(self.reader, AsyncEngine) and self.reader is not self.engine:
            await self.reader.dispose()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for statements that only read, outside any transaction."""
        if isinstance(self.reader, AsyncConnection):
            yield self.reader
            return
        assert self.reader is not None
        async with self.reader.connect() as connection:
            yield connection

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


async def get_reader(request: Request) -> AsyncIterator[AsyncConnection]:
    """Yields a connection for an endpoint that only reads: nothing to commit, and the
    same answers as `get_session` when the database fails or access is denied."""
    database: Database = request.app.state.database
    try:
        async with database.read() as connection:
            yield connection
    except DomainError as exc:
        if exc.status_code in DENIALS and exc.audit_as_denial:
            await _record_denial(database, request, exc)
        raise
    except (OperationalError, InterfaceError) as exc:
        log.warning("database.unavailable", error=type(exc.orig or exc).__name__)
        raise DatabaseUnavailableError(
            "The database could not complete the request; nothing was changed. Retry shortly."
        ) from exc


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
