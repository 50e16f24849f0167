"""The connection life cycle: a request pays for its statements, not for the pool.

No ROLLBACK after a committed request and no ping of a connection that was in use a moment
ago; but a connection never reaches its next user inside an open transaction, and one that
sat idle while the server dropped it is replaced before anyone sees the error.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util import greenlet_spawn

from ehass import db
from ehass.config import Settings
from ehass.db import Database, create_engine


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine of its own: the suite's engine holds each test's outer transaction."""
    engine = create_engine(settings)
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE IF NOT EXISTS ehass_pool_probe (id INTEGER)"))
        await connection.execute(text("DELETE FROM ehass_pool_probe"))
    yield engine
    async with engine.begin() as connection:
        await connection.execute(text("DROP TABLE ehass_pool_probe"))
    await engine.dispose()


@pytest.fixture
def driver_calls(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every ROLLBACK and ping SQLAlchemy sends outside a statement, in order."""
    calls: list[str] = []
    dialect = engine.dialect

    def counting(name: str, call: Callable[[Any], None]) -> Callable[[Any], None]:
        def wrapper(dbapi_connection: Any) -> None:
            calls.append(name)
            call(dbapi_connection)

        return wrapper

    monkeypatch.setattr(dialect, "do_rollback", counting("rollback", dialect.do_rollback))
    monkeypatch.setattr(dialect, "do_ping", counting("ping", dialect.do_ping))
    return calls


async def _warm(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def test_a_committed_transaction_costs_no_ping_and_no_rollback(
    engine: AsyncEngine, driver_calls: list[str]
) -> None:
    await _warm(engine)  # the first connect runs the dialect's own set-up
    driver_calls.clear()
    for _ in range(3):
        async with engine.connect() as connection:
            await connection.execute(text("INSERT INTO ehass_pool_probe (id) VALUES (1)"))
            await connection.commit()
    assert driver_calls == []
    async with engine.connect() as connection:
        assert (await connection.scalar(text("SELECT COUNT(*) FROM ehass_pool_probe"))) == 3


async def test_a_connection_returned_inside_a_transaction_is_rolled_back_on_return(
    engine: AsyncEngine, driver_calls: list[str]
) -> None:
    await _warm(engine)
    driver_calls.clear()

    def leave_open() -> None:
        # Straight from the pool, as a driver-level user would: nothing but the pool's
        # own reset can end this transaction.
        raw = engine.sync_engine.raw_connection()
        cursor = raw.cursor()
        cursor.execute("BEGIN")
        cursor.execute("INSERT INTO ehass_pool_probe (id) VALUES (7)")
        cursor.close()
        raw.close()

    await greenlet_spawn(leave_open)
    assert driver_calls == ["rollback"]
    async with engine.connect() as connection:
        assert (await connection.scalar(text("SELECT COUNT(*) FROM ehass_pool_probe"))) == 0


async def test_a_connection_in_use_a_moment_ago_is_not_pinged(
    engine: AsyncEngine, driver_calls: list[str]
) -> None:
    await _warm(engine)
    driver_calls.clear()
    await _warm(engine)
    assert "ping" not in driver_calls


ON_MARIADB = os.environ.get("EHASS_TEST_DATABASE_URL", "").startswith("mysql")


@pytest.mark.skipif(not ON_MARIADB, reason="SQLite has no server to drop a connection")
async def test_an_idle_connection_the_server_dropped_is_replaced_before_use(
    engine: AsyncEngine, driver_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with engine.connect() as victim:
        server_id = await victim.scalar(text("SELECT CONNECTION_ID()"))
        await victim.commit()
        async with engine.connect() as killer:
            # The server ends the victim's session while it is idle, as a restart or
            # wait_timeout would; it goes back to the pool none the wiser.
            await killer.execute(text(f"KILL CONNECTION {int(server_id)}"))
            await killer.commit()
    monkeypatch.setattr(db, "IDLE_PING_SECONDS", 0.0)  # every pooled connection is "idle"
    driver_calls.clear()
    for _ in range(3):
        async with engine.connect() as connection:
            assert (await connection.scalar(text("SELECT 1"))) == 1
    assert "ping" in driver_calls


async def test_a_read_runs_its_statements_and_nothing_else(settings: Settings) -> None:
    database = Database.from_settings(settings)
    reader = database.reader
    assert isinstance(reader, AsyncEngine)
    sent: list[str] = []

    def statement(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        sent.append(sql)

    try:
        async with database.read() as connection:
            before = await _transaction_commands(connection)
        event.listen(reader.sync_engine, "before_cursor_execute", statement)
        for _ in range(3):
            async with database.read() as connection:
                assert (await connection.scalar(text("SELECT 2"))) == 2
        event.remove(reader.sync_engine, "before_cursor_execute", statement)
        assert sent == ["SELECT 2"] * 3
        async with database.read() as connection:
            # The pool handed the one connection round each time: its server counts every
            # COMMIT and ROLLBACK it was sent, pings and resets included.
            assert await _transaction_commands(connection) == before
    finally:
        await database.dispose()


async def _transaction_commands(connection: AsyncConnection) -> dict[str, int] | None:
    if connection.dialect.name != "mysql":
        return None  # an in-process library: there is no server to send anything to
    rows = await connection.execute(
        text(
            "SELECT variable_name, variable_value FROM information_schema.session_status "
            "WHERE variable_name IN ('COM_COMMIT', 'COM_ROLLBACK')"
        )
    )
    return {name: int(value) for name, value in rows}
