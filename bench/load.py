"""Load: the clinic-day mix at a constant arrival rate (open model), and a closed loop
(`saturate`) that finds how many requests per second one kind of request can reach.

Open model: request i is planned at t0 + i/rate and its latency runs **from the planned
time**, so a slow server cannot slow the generator down and flatter its own numbers (no
coordinated omission). A request that finds `max_inflight` requests still open is counted
as dropped (an error) instead of queueing without bound.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from urllib.parse import urlencode

import uvloop
from client import Client
from seed import PASSWORD, SPECIALTIES

API = "/api/v1"
# Weighted mix (percent of requests); "login" is the "few logins" on top of the 100 %.
MIX = {
    "list_doctors": 30,
    "availability_week": 35,
    "my_appointments": 15,
    "book": 10,
    "reschedule": 5,
    "cancel": 5,
    "login": 1,
}
# (op, HTTP status or 0 = transport error/timeout or -1 = dropped, planned offset s, latency s)
Result = tuple[str, int, float, float]


def run(coro):
    """uvloop: the generator's own overhead is part of what the machine has to carry."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Workload:
    """What one generator process asks for: its share of the logged-in patients (with
    the appointments they hold), the doctors, and accounts kept for the login mix."""

    tokens: list[str]
    appointments: list[list[int]]
    login_emails: list[str]
    doctor_ids: list[int]
    seed: int
    rng: random.Random = field(init=False)
    today: datetime = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.today = datetime.combine(datetime.now(UTC).date(), dtime(0), tzinfo=UTC)

    def slot(self, base: datetime | None = None) -> str:
        """A slot start 2..40 days after `base` (today: past the cancellation notice, inside
        the booking window)."""
        day = (base or self.today) + timedelta(days=self.rng.randrange(2, 40))
        return _iso(day + timedelta(minutes=30 * self.rng.randrange(47)))

    def week(self) -> str:
        start = self.today + timedelta(days=self.rng.randrange(1, 15))
        return urlencode({"from": _iso(start), "to": _iso(start + timedelta(days=7))})

    def request(self, client: Client, op: str) -> tuple[str, bytes, Callable[[int, bytes], None]]:
        """(op as counted, raw request, what to do with the answer)."""
        rng = self.rng
        p = rng.randrange(len(self.tokens))
        token = self.tokens[p]

        def nothing(status: int, body: bytes) -> None:
            pass

        def keep_booking(status: int, body: bytes) -> None:
            if status == 201:
                self.appointments[p].append(json.loads(body)["id"])

        if op == "list_doctors":
            x = rng.random()
            query = "limit=50"
            if x < 0.25:
                query += "&" + urlencode({"specialty": rng.choice(SPECIALTIES)})
            elif x < 0.5:
                query += f"&q=Doc{rng.randrange(20):02d}"
            return op, client.encode("GET", f"{API}/doctors?{query}", token=token), nothing
        if op == "availability_week":
            path = f"{API}/doctors/{rng.choice(self.doctor_ids)}/availability?{self.week()}"
            return op, client.encode("GET", path, token=token), nothing
        if op == "my_appointments":
            return op, client.encode("GET", f"{API}/appointments?limit=50", token=token), nothing
        if op == "login":
            body = {"email": rng.choice(self.login_emails), "password": PASSWORD}
            return op, client.encode("POST", f"{API}/auth/login", body=body), nothing
        if op in ("reschedule", "cancel"):
            holders = [
                i
                for i in rng.sample(range(len(self.appointments)), min(50, len(self.appointments)))
                if self.appointments[i]
            ]
            if holders:
                return self._move(client, op, holders[0])
            op = "book"  # nobody holds one yet: book instead (counted as a booking)
        body = {"doctor_id": rng.choice(self.doctor_ids), "scheduled_at": self.slot()}
        raw = client.encode("POST", f"{API}/appointments", token=token, body=body)
        return op, raw, keep_booking

    def _move(
        self, client: Client, op: str, p: int
    ) -> tuple[str, bytes, Callable[[int, bytes], None]]:
        """Takes one of p's appointments out while the request is in flight, so no other
        request moves it at the same time; puts it back unless it is gone."""
        held = self.appointments[p]
        appt_id = held.pop(self.rng.randrange(len(held)))
        path = f"{API}/appointments/{appt_id}"
        if op == "reschedule":
            raw = client.encode(
                "PUT", path, token=self.tokens[p], body={"scheduled_at": self.slot()}
            )

            def done(status: int, body: bytes) -> None:
                if status in (200, 409, 0):  # moved, or not: it is still this patient's
                    held.append(appt_id)
        else:
            raw = client.encode("DELETE", path, token=self.tokens[p])

            def done(status: int, body: bytes) -> None:
                if status not in (200, 204, 404):  # not cancelled: it may be tried again
                    held.append(appt_id)

        return op, raw, done


async def open_load(cfg: dict, work: Workload) -> dict:
    """The mix at `cfg["rate"]` (this process's share) for `cfg["duration"]` seconds."""
    rate, duration = cfg["rate"], cfg["duration"]
    client = Client(
        cfg["host"], cfg["port"], connections=cfg["connections"], timeout=cfg["timeout"]
    )
    ops = list(MIX)
    plan = work.rng.choices(ops, weights=[MIX[o] for o in ops], k=int(rate * duration))
    results: list[Result] = []
    inflight = 0
    lag_max = 0.0
    loop = asyncio.get_running_loop()

    async def one(op: str, planned: float) -> None:
        nonlocal inflight
        op, raw, on_answer = work.request(client, op)
        status, body = 0, b""
        try:
            status, body = await client.request(raw)
        except Exception:  # timeouts, resets: counted as status 0
            status = 0
        finally:
            inflight -= 1
            on_answer(status, body)
            results.append((op, status, planned - t0, loop.time() - planned))

    tasks: set[asyncio.Task] = set()
    cpu0 = time.process_time()
    t0 = loop.time() + 0.2
    for i, op in enumerate(plan):
        planned = t0 + i / rate
        delay = planned - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        lag_max = max(lag_max, loop.time() - planned)
        if inflight >= cfg["max_inflight"]:
            results.append((op, -1, planned - t0, loop.time() - planned))
            continue
        inflight += 1
        t = asyncio.create_task(one(op, planned))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=cfg["timeout"] + 5)
    end = loop.time()
    client.close()
    return {
        "results": results,
        "t_total": end - t0,
        "cpu_pct": round(100 * (time.process_time() - cpu0) / (end - t0), 1),
        "lag_max": lag_max,
    }


def _open_load_proc(cfg: dict, work: Workload, q: mp.Queue) -> None:
    q.put(run(open_load(cfg, work)))


def open_load_parallel(cfg: dict, works: list[Workload]) -> list[dict]:
    """One generator per workload, each at rate/len(works); forked when more than one.
    Bookings made in a forked generator stay in it (each owns its patients)."""
    if len(works) == 1:
        return [run(open_load(cfg, works[0]))]
    share = {**cfg, "rate": cfg["rate"] / len(works)}
    ctx = mp.get_context("fork")
    q: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=_open_load_proc, args=(share, w, q)) for w in works]
    for p in procs:
        p.start()
    runs = [q.get() for _ in procs]
    for p in procs:
        p.join()
    return runs


async def saturate(
    host: str,
    port: int,
    make: Callable[[Client], tuple[bytes, Callable[[int, bytes], None] | None]],
    *,
    concurrency: int,
    seconds: float,
    request_timeout: float = 10.0,
) -> dict:
    """Closed loop: `concurrency` requests always in flight for `seconds`. Answers how
    many per second the target sustains (its ceiling), with their latency at that load."""
    client = Client(host, port, connections=concurrency, timeout=request_timeout)
    loop = asyncio.get_running_loop()
    statuses: dict[int, int] = {}
    lats: list[float] = []
    t0 = loop.time()
    end = t0 + seconds

    async def worker() -> None:
        while loop.time() < end:
            raw, on_answer = make(client)
            started = loop.time()
            status, body = 0, b""
            try:
                status, body = await client.request(raw)
            except Exception:  # timeouts, resets: counted as status 0
                status = 0
            lats.append(loop.time() - started)
            if on_answer is not None:
                on_answer(status, body)
            statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = loop.time() - t0
    client.close()
    lats.sort()
    n = len(lats)

    def q(p: float) -> float:
        return round(1000 * lats[min(n - 1, int(p * n))], 1) if n else 0.0

    return {
        "requests": n,
        "rps": round(n / wall, 1),
        "ok_rps": round(sum(c for s, c in statuses.items() if 200 <= s < 300) / wall, 1),
        "status_codes": {str(k): v for k, v in sorted(statuses.items())},
        "p50_ms": q(0.50),
        "p99_ms": q(0.99),
        "concurrency": concurrency,
        "seconds": round(wall, 2),
    }
