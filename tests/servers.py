"""Real `ehass serve` processes, for tests that need several server instances at once.

The in-process app of conftest cannot show what happens when two processes (each with its
own connection pool and event loop) race for the same rows; these can.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ehass.config import Settings
from ehass.db import create_engine

LOOPBACK = "127.0.0.1"
READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0


class ServerFailedError(RuntimeError):
    """A server died or never became ready; the message ends with its log."""


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "<no log>"


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it for a socket bound to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def server_env(settings: Mapping[str, str]) -> dict[str, str]:
    """The parent's environment without its EHASS_ settings, plus `settings`.

    A developer's own EHASS_DATABASE_URL or EHASS_CONFIG_FILE must not leak into the
    servers under test.
    """
    from tests.conftest import TEST_AUDIT_SIGNING_KEY, TEST_ENCRYPTION_KEYS

    env = {key: value for key, value in os.environ.items() if not key.startswith("EHASS_")}
    env["EHASS_ENCRYPTION_KEYS"] = TEST_ENCRYPTION_KEYS  # to read what the tests wrote
    env["EHASS_AUDIT_SIGNING_KEY"] = TEST_AUDIT_SIGNING_KEY  # production requires one
    env.update(settings)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_server(env: Mapping[str, str], log_dir: Path, *, port: int | None = None) -> Server:
    """`ehass serve` on `port` (default: a free one), in a process group of its own, so
    that it and anything it starts can be signalled together (see `stop_server`)."""
    port = port or free_port()
    log_path = log_dir / f"server-{port}.log"
    # Appended to: a server restarted on the same port keeps its predecessor's log.
    with log_path.open("ab") as log:
        # The child keeps its own copy of the file descriptor; a file (not a pipe) never
        # fills up and blocks the server when nobody reads it.
        process = subprocess.Popen(
            [sys.executable, "-m", "ehass.cli", "serve", "--host", LOOPBACK, "--port", str(port)],
            env=dict(env),
            cwd=log_dir,  # no stray .env file of the checkout is read
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(process=process, port=port, log_path=log_path)


def stop_server(server: Server) -> None:
    """SIGTERM to the server's process group; SIGKILL when it takes too long."""
    if server.process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGTERM)
    try:
        server.process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()


async def wait_ready(server: Server) -> None:
    """Returns once GET /readyz answers 200; fails with the server's log if it dies first."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    async with httpx.AsyncClient(base_url=server.base_url, timeout=2.0) as client:
        while True:
            if server.process.poll() is not None:
                raise ServerFailedError(
                    f"server on port {server.port} exited with {server.process.returncode}:\n"
                    + server.log_tail()
                )
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise ServerFailedError(
                    f"server on port {server.port} not ready after {READY_TIMEOUT_SECONDS:.0f} s:\n"
                    + server.log_tail()
                )
            await anyio.sleep(0.1)


@contextmanager
def running_servers(count: int, *, env: Mapping[str, str], log_dir: Path) -> Iterator[list[Server]]:
    """Starts `count` servers (call `wait_ready` on each); stops them all on the way out."""
    with ExitStack() as stack:
        servers = []
        for _ in range(count):
            server = start_server(env, log_dir)
            stack.callback(stop_server, server)
            servers.append(server)
        yield servers


# --- a committed database of a test's own ----------------------------------------------

_DATABASE_NAME = re.compile(r"^[A-Za-z0-9_]+$")


async def _on_mysql_server(url: str, statement: str) -> None:
    """Runs `statement`, where `{name}` stands for the database of `url`, connected to none."""
    parsed = make_url(url)
    name = parsed.database or ""
    if not _DATABASE_NAME.fullmatch(name):
        raise ValueError(f"unexpected test database name {name!r}")
    # URL.set treats None as "unchanged"; _replace (NamedTuple API) really drops it.
    engine = create_async_engine(parsed._replace(database=None), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            # Identifiers cannot be bound parameters; the name is checked above.
            await connection.execute(text(statement.format(name=f"`{name}`")))
    finally:
        await engine.dispose()


@asynccontextmanager
async def database_of_its_own(
    settings: Settings, tmp_dir: Path, suffix: str
) -> AsyncIterator[tuple[str, AsyncEngine]]:
    """A migrated, empty database beside the suite's own (a SQLite file in `tmp_dir`, or
    `<database>_<suffix>` on the same MySQL server), for tests whose data other processes
    must see or whose DDL would commit the shared test transaction. Dropped afterwards."""
    from tests.conftest import reset_schema

    url = make_url(settings.database_url)
    on_mysql = url.get_backend_name() == "mysql"
    if on_mysql:
        own = url.set(database=f"{url.database}_{suffix}").render_as_string(hide_password=False)
        await _on_mysql_server(
            own,
            "CREATE DATABASE IF NOT EXISTS {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
        )
    else:
        own = f"sqlite+aiosqlite:///{tmp_dir / f'ehass-{suffix}.db'}"
    engine = create_engine(settings.model_copy(update={"database_url": own}))
    try:
        await reset_schema(engine, own)
        yield own, engine
    finally:
        await engine.dispose()
        if on_mysql:
            await _on_mysql_server(own, "DROP DATABASE IF EXISTS {name}")
