"""A scale-out deployment on this machine: `ehass serve` processes on one MariaDB database
and one Redis, with nginx in front configured from deploy/nginx.conf.

Everything listens on 127.0.0.1 (free ports) and runs in process groups of its own. Each
test talks from loopback addresses of its own (127.77.x.y): to nginx and the apps they are
different clients, as they would be in production, so per-address limits never leak from
one test into another, and only nginx (127.0.0.1) is a trusted proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ehass.appointments.models import Appointment
from ehass.core.clock import SystemClock
from ehass.users.models import User
from tests.factories import PASSWORD, Factories
from tests.scale import nginx as nginx_conf
from tests.servers import Server, free_port, start_server, stop_server, wait_ready

INSTANCES = 3
REQUEST_TIMEOUT = httpx.Timeout(20.0)
NGINX_START_SECONDS = 10.0
API = "/api/v1"

_addresses = itertools.count(1)


def client_address() -> str:
    """A loopback address no other caller of this run uses."""
    n = next(_addresses)
    return f"127.77.{n // 250}.{n % 250 + 1}"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def slot_day(offset: int = 0) -> date:
    """A weekday at least three days ahead (the apps run on the real clock), `offset`
    weekdays further on."""
    day = datetime.now(UTC).date() + timedelta(days=3)
    found = -1
    while True:
        if day.weekday() < 5:
            found += 1
            if found == offset:
                return day
        day += timedelta(days=1)


def at(day: date, hour: int, minutes: int = 0) -> datetime:
    """`hour` o'clock UTC on `day`, plus `minutes` (which may run past the hour)."""
    return datetime.combine(day, clock_time(hour), tzinfo=UTC) + timedelta(minutes=minutes)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Nginx(Server):
    """nginx, master and worker, with its configuration and logs beside `log_path`."""

    def log_tail(self, chars: int = 3000) -> str:
        parts = []
        for name in ("nginx.out", "error.log", "access.log"):
            with contextlib.suppress(OSError):
                text = (self.log_path.parent / name).read_text(errors="replace")[-chars:]
                parts.append(f"--- nginx {name}\n{text}")
        return "\n".join(parts)


def start_nginx(binary: str, prefix: Path, app_ports: Sequence[int]) -> Nginx:
    port = free_port()
    conf = nginx_conf.write_conf(prefix, port, app_ports)
    base = [binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
    check = subprocess.run([*base, "-t"], capture_output=True, text=True, check=False)
    if check.returncode:
        raise RuntimeError(f"nginx refused its configuration:\n{check.stderr}")
    with (prefix / "nginx.out").open("ab") as out:
        process = subprocess.Popen(
            base,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the master and its worker are stopped together
        )
    started = Nginx(process=process, port=port, log_path=prefix / "error.log")
    deadline = time.monotonic() + NGINX_START_SECONDS
    while True:
        try:
            if httpx.get(f"{started.base_url}/healthz", timeout=2.0).status_code == 200:
                return started
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            stop_server(started)
            raise RuntimeError(f"nginx did not start:\n{started.log_tail()}")
        time.sleep(0.05)


@dataclass
class Deployment:
    instances: list[Server]
    nginx: Nginx
    env: dict[str, str]
    log_dir: Path
    sessionmaker: async_sessionmaker[AsyncSession]
    metrics_token: str

    # --- addressing -------------------------------------------------------------------

    def base_url(self, target: int | None) -> str:
        """Instance `target`'s own address, or nginx's for None."""
        return self.nginx.base_url if target is None else self.instances[target].base_url

    def client(self, target: int | None = None, *, address: str) -> httpx.AsyncClient:
        """A client from loopback `address`, to instance `target` or (None) through nginx."""
        return httpx.AsyncClient(
            base_url=self.base_url(target),
            timeout=REQUEST_TIMEOUT,
            transport=httpx.AsyncHTTPTransport(local_address=address),
        )

    @contextlib.asynccontextmanager
    async def clients(
        self, *, address: str, nginx: bool = False
    ) -> AsyncIterator[list[httpx.AsyncClient]]:
        """One client per instance (and one through nginx, last, when asked)."""
        targets: list[int | None] = [*range(len(self.instances)), *([None] if nginx else [])]
        async with contextlib.AsyncExitStack() as stack:
            yield [
                await stack.enter_async_context(self.client(t, address=address)) for t in targets
            ]

    # --- processes --------------------------------------------------------------------

    def signal(self, index: int, signum: signal.Signals) -> None:
        os.killpg(self.instances[index].process.pid, signum)

    async def wait_exit(self, index: int, seconds: float) -> int:
        """The instance's exit status; fails when it is still running after `seconds`."""
        process = self.instances[index].process
        return await anyio.to_thread.run_sync(lambda: process.wait(timeout=seconds))

    async def restart(self, index: int) -> None:
        """A fresh process on the same port, so nginx's upstream finds it again."""
        old = self.instances[index]
        stop_server(old)
        self.instances[index] = start_server(self.env, self.log_dir, port=old.port)
        await wait_ready(self.instances[index])

    async def in_flight(self, index: int) -> int:
        """Requests instance `index` is answering right now (this one excluded), from its
        own metrics."""
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT) as client:
            response = await client.get(
                f"{self.instances[index].base_url}/metrics", headers=bearer(self.metrics_token)
            )
        response.raise_for_status()
        for line in response.text.splitlines():
            if line.startswith("ehass_http_requests_in_flight"):
                return int(float(line.split()[-1])) - 1
        raise AssertionError("no ehass_http_requests_in_flight in the metrics")

    def logs(self) -> str:
        parts = [
            f"--- instance {index} ({server.base_url})\n{server.log_tail()}"
            for index, server in enumerate(self.instances)
        ]
        return "\n".join([*parts, self.nginx.log_tail()])

    def stop(self) -> None:
        for server in (self.nginx, *self.instances):
            stop_server(server)

    # --- data ------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def factories(self) -> AsyncIterator[Factories]:
        """The suite's model builders on the deployment's database, committed on the way
        out (there is no in-process client to log in with: log in through the apps)."""
        async with self.sessionmaker() as session:
            yield Factories(session=session, client=None, clock=SystemClock())  # type: ignore[arg-type]
            await session.commit()

    async def doctor_and_patients(self, patients: int, **doctor: Any) -> tuple[int, list[User]]:
        """Commits a doctor (Mon-Fri 09:00-17:00 UTC in 30-minute slots, unless `doctor`
        says otherwise) and `patients` patients; returns the doctor's id and the patients."""
        async with self.factories() as make:
            user = await make.doctor(**doctor)
            people = [await make.patient() for _ in range(patients)]
        assert user.doctor is not None
        return user.doctor.id, people

    async def appointments(self, **where: Any) -> list[Appointment]:
        """Appointments (any status) matching column=value filters, from the database."""
        query = select(Appointment).filter_by(**where).order_by(Appointment.id)
        async with self.sessionmaker() as session:
            return list((await session.execute(query)).scalars())

    async def count_appointments(self, **where: Any) -> int:
        query = select(func.count()).select_from(Appointment).filter_by(**where)
        async with self.sessionmaker() as session:
            return int((await session.execute(query)).scalar_one())


async def log_in(client: httpx.AsyncClient, user: User) -> dict[str, Any]:
    """The token pair of a fresh session of `user`, logged in through `client`."""
    response = await client.post(
        f"{API}/auth/login", json={"email": user.email, "password": PASSWORD}
    )
    assert response.status_code == 200, f"{client.base_url}: {response.text}"
    return response.json()


async def log_in_all(clients: Sequence[httpx.AsyncClient], users: Sequence[User]) -> list[str]:
    """Access tokens of `users`, in order, logged in round-robin through `clients`."""
    pairs = await asyncio.gather(
        *(log_in(clients[i % len(clients)], user) for i, user in enumerate(users))
    )
    return [pair["access_token"] for pair in pairs]


@dataclass(frozen=True)
class Call:
    """One request of a burst: to instance `target`, or through nginx for None."""

    target: int | None
    method: str
    path: str
    token: str | None = None
    json: Any = None
    headers: tuple[tuple[str, str], ...] = ()


async def burst(
    deployment: Deployment, calls: Sequence[Call], *, address: str
) -> list[httpx.Response]:
    """Sends every call at the same moment, each over a connection of its own opened
    beforehand (so a gate releases requests, not TCP handshakes); answers in order."""
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(deployment.client(call.target, address=address))
            for call in calls
        ]
        warm = await asyncio.gather(*(client.get("/readyz") for client in clients))
        assert all(r.status_code == 200 for r in warm), [r.status_code for r in warm]
        gate = asyncio.Event()

        async def fire(client: httpx.AsyncClient, call: Call) -> httpx.Response:
            headers = dict(call.headers)
            if call.token:
                headers.update(bearer(call.token))
            await gate.wait()
            return await client.request(
                call.method, f"{API}{call.path}", json=call.json, headers=headers
            )

        tasks = [asyncio.create_task(fire(c, call)) for c, call in zip(clients, calls, strict=True)]
        await asyncio.sleep(0)  # every task now waits at the gate
        gate.set()
        return list(await asyncio.gather(*tasks))
