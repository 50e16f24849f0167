"""Private Redis and MariaDB servers the fault tests may stop, freeze and restart.

They listen on free ports of 127.0.0.1 with data in the test's temporary directory; the
shared servers of the suite (EHASS_TEST_DATABASE_URL, EHASS_TEST_REDIS_URL) are never
touched. Every process is stopped on the way out, on failure too, and dies with pytest
(PR_SET_PDEATHSIG) should pytest itself be killed (those started from pytest's main
thread: the signal follows the thread that started the child, and anyio's worker threads
come and go).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import reset_schema
from tests.servers import LOOPBACK, free_port

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 20.0
MARIADBD = "/usr/sbin/mariadbd"


def require_binary(name: str) -> str:
    """The binary's path; a failure (not a skip) when it is missing: CI must have it."""
    found = shutil.which(name) or (name if Path(name).is_file() else None)
    if found is None:
        pytest.fail(
            f"the fault tests need `{name}` (install the mariadb-server and redis-server "
            "packages); they start private servers of their own",
            pytrace=False,
        )
    return found


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _answers(port: int, probe: bytes, expect: bytes, timeout: float = 0.5) -> bool:
    """True when a server on `port` answers `probe` (nothing: the server speaks first)
    with `expect` (matched from byte 0, or from byte 4 after a MySQL packet header)."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
            if probe:
                sock.sendall(probe)
            answer = sock.recv(64)
    except OSError:
        return False
    return answer.startswith(expect) if probe else answer[4:].startswith(expect)


@dataclass
class ServerProcess:
    """A server subprocess that can be stopped, frozen, thawed and restarted on its port."""

    name: str
    command: Sequence[str]
    port: int
    log_path: Path
    probe: bytes
    expect: bytes
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    frozen: bool = field(default=False, init=False)

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        on_main_thread = threading.current_thread() is threading.main_thread()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                list(self.command),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if on_main_thread else None,
            )
        self.frozen = False
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not _answers(self.port, self.probe, self.expect):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"{self.name} did not start on port {self.port}:\n{self.log_tail()}")
            time.sleep(0.05)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM (a clean shutdown), SIGKILL when it takes too long."""
        if not self.running:
            return
        assert self.process is not None
        self.thaw()  # a stopped process would keep SIGTERM pending
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def freeze(self) -> None:
        assert self.process is not None and self.running
        self.process.send_signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        if self.frozen and self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGCONT)
        self.frozen = False

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "<no log>"


class PrivateRedis(ServerProcess):
    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"


class PrivateMariaDB(ServerProcess):
    def url(self, database: str = "") -> str:
        return f"mysql+asyncmy://root@{LOOPBACK}:{self.port}/{database}"


def _redis(tmp_dir: Path) -> PrivateRedis:
    binary = require_binary("redis-server")
    port = free_port()
    command = [
        binary,
        "--port", str(port),
        "--bind", LOOPBACK,
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--dir", str(tmp_dir),
        "--protected-mode", "yes",
    ]  # fmt: skip
    return PrivateRedis(
        name="private redis",
        command=command,
        port=port,
        log_path=tmp_dir / "redis.log",
        probe=b"PING\r\n",
        expect=b"+PONG",
    )


def _mariadb(tmp_dir: Path) -> PrivateMariaDB:
    install = require_binary("mariadb-install-db")
    server = require_binary(MARIADBD)
    datadir = tmp_dir / "data"
    log_path = tmp_dir / "mariadb.log"
    with log_path.open("wb") as log:
        installed = subprocess.run(
            [
                install,
                "--no-defaults",
                f"--datadir={datadir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--user=root",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=120,
            check=False,
        )
    if installed.returncode != 0:
        pytest.fail(f"mariadb-install-db failed:\n{log_path.read_text(errors='replace')[-3000:]}")
    port = free_port()
    command = [
        server,
        "--no-defaults",
        "--user=root",
        f"--datadir={datadir}",
        f"--port={port}",
        f"--bind-address={LOOPBACK}",
        f"--socket={tmp_dir / 'mysqld.sock'}",
        f"--pid-file={tmp_dir / 'mysqld.pid'}",
        f"--log-error={log_path}",
        "--skip-name-resolve",
        "--performance-schema=OFF",
        "--innodb-buffer-pool-size=32M",
        "--innodb-log-file-size=8M",
        "--max-connections=300",
        "--character-set-server=utf8mb4",
        "--collation-server=utf8mb4_unicode_ci",
    ]
    # The server speaks first: a handshake packet whose 5th byte is protocol version 10.
    return PrivateMariaDB(
        name="private mariadb",
        command=command,
        port=port,
        log_path=log_path,
        probe=b"",
        expect=b"\x0a",
    )


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A fresh Redis of the test's own, running; stopped afterwards whatever happened."""
    redis = _redis(tmp_path)
    try:
        redis.start()
        yield redis
    finally:
        redis.stop()


@pytest.fixture(scope="session")
def mariadb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateMariaDB]:
    """One private MariaDB for the fault tests (installing takes a second or two)."""
    server = _mariadb(tmp_path_factory.mktemp("mariadb"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_mariadb(mariadb_server: PrivateMariaDB) -> Iterator[PrivateMariaDB]:
    """The private MariaDB, running when the test starts and again when it ends."""
    mariadb_server.thaw()
    if not mariadb_server.running:
        mariadb_server.start()
    try:
        yield mariadb_server
    finally:
        mariadb_server.thaw()
        if not mariadb_server.running:
            mariadb_server.start()


@pytest.fixture
async def mariadb_database(private_mariadb: PrivateMariaDB) -> AsyncIterator[str]:
    """A migrated, empty database of the test's own on the private MariaDB: its URL."""
    name = f"ehass_faults_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(private_mariadb.url(), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(
                text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
            )
        url = private_mariadb.url(name)
        engine = create_async_engine(url)
        try:
            await reset_schema(engine, url)
        finally:
            await engine.dispose()
        yield url
    finally:
        with contextlib.suppress(Exception):
            async with admin.connect() as connection:
                await connection.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        await admin.dispose()
