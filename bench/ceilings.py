"""Ceilings measured in the same run as the load, so results read as ratios that survive
a noisy, shared machine:

- availability: the project's GET /doctors/{id}/availability against ceiling_app.py (the
  same SQL on the raw driver), both closed loop through the same nginx, same concurrency;
- booking: the project's POST /appointments (201 per second) against a raw INSERT of one
  appointment row + COMMIT through asyncmy, in as many processes as there are app workers;
- login: the project's POST /auth/login against what argon2id verification allows on the
  cores the apps have (workers, at most the CPUs).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import time
from datetime import datetime, timedelta

import load
from client import Client
from deploy import DB_NAME, log
from load import API, Workload
from seed import PASSWORD

# Closed-loop concurrency for the HTTP ceilings: enough to keep every app process busy.
CONCURRENCY = 32
# Rows of the raw INSERT ceiling live far in the future, apart from the bench's own.
RAW_FROM = datetime(2100, 1, 1)
TARGETS = {"availability": 0.50, "booking": 0.15, "login": 0.80}


def _argon2_verify_seconds(rounds: int = 20) -> float:
    from argon2 import PasswordHasher

    from ehass.core.passwords import hash_password_sync

    encoded = hash_password_sync(PASSWORD)  # the project's parameters
    hasher = PasswordHasher()
    t = time.perf_counter()
    for _ in range(rounds):
        hasher.verify(encoded, PASSWORD)
    return (time.perf_counter() - t) / rounds


async def _raw_inserts(
    index: int, seconds: float, conns: int, patients: list[int], doctors: list[int]
) -> int:
    import asyncio

    import asyncmy

    rng = random.Random(index)
    done = 0
    counter = 0

    async def worker(k: int) -> None:
        nonlocal done, counter
        conn = await asyncmy.connect(
            host="127.0.0.1", port=3306, user="root", password="", db=DB_NAME, autocommit=False
        )
        try:
            async with conn.cursor() as cur:
                while time.monotonic() < end:
                    counter += 1
                    # Unique per process and row: no collision on the slot unique keys.
                    at = RAW_FROM + timedelta(days=index * 10000, minutes=30 * counter)
                    await cur.execute(
                        "INSERT INTO appointments (patient_id, doctor_id, scheduled_at, ends_at,"
                        " status, created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                        (
                            rng.choice(patients),
                            rng.choice(doctors),
                            at,
                            at + timedelta(minutes=30),
                            "scheduled",
                            at,
                            at,
                        ),
                    )
                    await conn.commit()
                    done += 1
        finally:
            conn.close()

    end = time.monotonic() + seconds
    await asyncio.gather(*(worker(k) for k in range(conns)))
    return done


def _raw_insert_proc(
    index: int, seconds: float, conns: int, patients: list[int], doctors: list[int], q: mp.Queue
) -> None:
    q.put(load.run(_raw_inserts(index, seconds, conns, patients, doctors)))


def raw_insert_rate(procs: int, seconds: float, patients: list[int], doctors: list[int]) -> dict:
    ctx = mp.get_context("fork")
    q: mp.Queue = ctx.Queue()
    conns = max(1, CONCURRENCY // procs)
    workers = [
        ctx.Process(target=_raw_insert_proc, args=(i, seconds, conns, patients, doctors, q))
        for i in range(procs)
    ]
    t = time.monotonic()
    for w in workers:
        w.start()
    total = sum(q.get() for _ in workers)
    for w in workers:
        w.join()
    wall = time.monotonic() - t
    load.run(_delete_raw_rows())
    return {
        "rps": round(total / min(wall, seconds + 1), 1),
        "requests": total,
        "processes": procs,
        "connections_each": conns,
    }


async def _delete_raw_rows() -> None:
    import asyncmy

    conn = await asyncmy.connect(
        host="127.0.0.1", port=3306, user="root", password="", db=DB_NAME, autocommit=True
    )
    try:
        async with conn.cursor() as cur:
            await cur.execute("DELETE FROM appointments WHERE scheduled_at >= %s", (RAW_FROM,))
    finally:
        conn.close()


def _ratio(project: float, ceiling: float, name: str) -> dict:
    return {
        "project": project,
        "ceiling": ceiling,
        "ratio": round(project / ceiling, 3) if ceiling else 0.0,
        "target": TARGETS[name],
    }


def measure(
    *,
    host: str,
    port: int,
    works: list[Workload],
    workers: int,
    seconds: float,
    patient_ids: list[int],
    doctor_ids: list[int],
) -> dict:
    work = works[0]

    def project_availability(client: Client) -> bytes:
        path = f"{API}/doctors/{work.rng.choice(doctor_ids)}/availability?{work.week()}"
        return client.encode("GET", path, token=work.tokens[0])

    def ceiling_availability(client: Client) -> bytes:
        path = f"/ceiling/doctors/{work.rng.choice(doctor_ids)}/availability?{work.week()}"
        return client.encode("GET", path)

    def project_booking(client: Client) -> bytes:
        body = {"doctor_id": work.rng.choice(doctor_ids), "scheduled_at": work.slot()}
        token = work.rng.choice(work.tokens)
        return client.encode("POST", f"{API}/appointments", token=token, body=body)

    def project_login(client: Client) -> bytes:
        body = {"email": work.rng.choice(work.login_emails), "password": PASSWORD}
        return client.encode("POST", f"{API}/auth/login", body=body)

    def closed(make, concurrency: int = CONCURRENCY) -> dict:
        return load.run(load.saturate(host, port, make, concurrency=concurrency, seconds=seconds))

    out: dict = {}
    log(f"ceilings: {seconds:g}s each, closed loop, {CONCURRENCY} in flight")
    out["availability_ceiling"] = closed(ceiling_availability)
    out["availability_project"] = closed(project_availability)
    out["booking_raw_insert"] = raw_insert_rate(workers, seconds, patient_ids, doctor_ids)
    out["booking_project"] = closed(project_booking)
    cores = min(workers, os.cpu_count() or 1)
    verify_s = _argon2_verify_seconds()
    out["login_argon2"] = {
        "verify_ms": round(1000 * verify_s, 1),
        "cores": cores,
        "rps": round(cores / verify_s, 1),
    }
    # Enough in flight to keep every app's hashing threads busy, not more.
    out["login_project"] = closed(project_login, concurrency=4 * workers)
    out["ratios"] = {
        "availability": _ratio(
            out["availability_project"]["ok_rps"],
            out["availability_ceiling"]["ok_rps"],
            "availability",
        ),
        "booking": _ratio(
            out["booking_project"]["ok_rps"], out["booking_raw_insert"]["rps"], "booking"
        ),
        "login": _ratio(out["login_project"]["ok_rps"], out["login_argon2"]["rps"], "login"),
    }
    return out
