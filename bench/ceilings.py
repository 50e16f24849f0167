"""Ceilings measured in the same run as the load, so results read as ratios that survive
a noisy, shared machine:

- availability: the project's GET /doctors/{id}/availability against ceiling_app.py (the
  same SQL on the raw driver), both closed loop through the same nginx, same concurrency;
- booking, two ceilings: the project's POST /appointments (201 per second) against
  * the same transaction (ceiling_booking.py: both account locks, both overlap checks,
    the appointment, its outbox and audit rows, the schedule version, one COMMIT) behind a
    bare Starlette endpoint (ceiling_app.py), closed loop through the same nginx, and
  * a raw INSERT of one appointment row + COMMIT through asyncmy, in as many processes as
    there are app workers;
- login: the project's POST /auth/login against what argon2id verification allows on the
  cores the apps have (workers, at most the CPUs).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import load
import pyspy
from client import Client
from deploy import DB_NAME, log
from load import API, Workload
from seed import PASSWORD

# Closed-loop concurrency for the HTTP ceilings: enough to keep every app process busy.
CONCURRENCY = 32
# Rows of the raw INSERT ceiling live far in the future, apart from the bench's own.
RAW_FROM = datetime(2100, 1, 1)
# The same-transaction ceiling books 2..40 days after this, as the mix does after today:
# as sparse a calendar, and none of its rows in the project's way. Past every raw row.
CEILING_BOOKINGS_FROM = datetime(2200, 1, 1, tzinfo=UTC)
# What `around` averages over a ceiling's two halves, and to how many decimals.
MEANS = {"rps": 1, "ok_rps": 1, "app_cpu_ms_per_request": 2, "db_cpu_ms_per_request": 2}
# Issue 19's targets: project over ceiling.
TARGETS = {
    "availability": 0.60,
    "booking_same_transaction": 0.50,
    "booking_raw_insert": 0.06,
    "login": 0.80,
}


def _argon2_verifies(seconds: float, q: mp.Queue) -> None:
    from argon2 import PasswordHasher

    from ehass.core.passwords import hash_password_sync

    encoded = hash_password_sync(PASSWORD)  # the project's parameters
    hasher = PasswordHasher()
    done, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        hasher.verify(encoded, PASSWORD)
        done += 1
    q.put(done)


def argon2_rate(cores: int, seconds: float) -> dict:
    """Verifications per second with one process per core given to the apps: the most
    logins those cores could answer if they did nothing else."""
    ctx = mp.get_context("fork")
    q: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=_argon2_verifies, args=(seconds, q)) for _ in range(cores)]
    for p in procs:
        p.start()
    total = sum(q.get() for _ in procs)
    for p in procs:
        p.join()
    return {
        "rps": round(total / seconds, 1),
        "verify_ms": round(1000 * seconds * cores / max(total, 1), 1),
        "cores": cores,
    }


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
    load.run(delete_ceiling_rows())
    return {
        "rps": round(total / min(wall, seconds + 1), 1),
        "requests": total,
        "processes": procs,
        "connections_each": conns,
    }


async def delete_ceiling_rows() -> None:
    """Both booking ceilings' appointments, and the outbox rows of the same-transaction one
    (their foreign key comes first). Its audit rows stay: the trail refuses DELETE, and the
    database is dropped at the end."""
    import asyncmy

    conn = await asyncmy.connect(
        host="127.0.0.1", port=3306, user="root", password="", db=DB_NAME, autocommit=True
    )
    try:
        async with conn.cursor() as cur:
            await cur.execute(
                "DELETE notifications FROM notifications JOIN appointments"
                " ON notifications.appointment_id = appointments.id"
                " WHERE appointments.scheduled_at >= %s",
                (RAW_FROM,),
            )
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


def _cpu_seconds(pids: list[int]) -> float:
    from report import proc_sample

    return sum(proc_sample(p)["ticks"] for p in pids) / os.sysconf("SC_CLK_TCK")


def endpoint_costs(
    *,
    host: str,
    port: int,
    work: Workload,
    app_pids: list[int],
    db_pid: int | None,
    seconds: float,
    py_spy: str | None = None,
    profile_prefix: Path | None = None,
) -> dict:
    """Each kind of request of the mix alone, closed loop: how many per second, and the CPU
    each costs in the apps and in MariaDB. On a machine whose cores are all busy, the mix's
    rate cannot exceed the cores over the weighted CPU per request."""
    out = {}
    for op in load.MIX:
        if op == "login":
            continue  # measured against argon2id in measure()

        def make(client: Client, op: str = op) -> tuple[bytes, Callable]:
            _, raw, on_answer = work.request(client, op)
            return raw, on_answer

        app0 = _cpu_seconds(app_pids)
        db0 = _cpu_seconds([db_pid]) if db_pid else 0.0
        spy = None
        if py_spy and profile_prefix is not None:
            raw_file = profile_prefix.with_name(f"{profile_prefix.name}-profile-{op}.txt")
            spy = pyspy.start(py_spy, app_pids[0], seconds, raw_file)
        res = load.run(load.saturate(host, port, make, concurrency=CONCURRENCY, seconds=seconds))
        if spy is not None:
            spy.wait(timeout=30)
        app_cpu = _cpu_seconds(app_pids) - app0
        db_cpu = (_cpu_seconds([db_pid]) - db0) if db_pid else 0.0
        n = max(res["requests"], 1)
        out[op] = {
            "rps": res["rps"],
            "ok_rps": res["ok_rps"],
            "p50_ms": res["p50_ms"],
            "p99_ms": res["p99_ms"],
            "app_cpu_ms_per_request": round(1000 * app_cpu / n, 2),
            "db_cpu_ms_per_request": round(1000 * db_cpu / n, 2),
            "status_codes": res["status_codes"],
        }
        if spy is not None:
            out[op]["profile"] = pyspy.summarize(raw_file)
    weights = {op: w for op, w in load.MIX.items() if op in out}
    total = sum(weights.values())
    mix_app_ms = sum(w * out[op]["app_cpu_ms_per_request"] for op, w in weights.items()) / total
    mix_db_ms = sum(w * out[op]["db_cpu_ms_per_request"] for op, w in weights.items()) / total
    out["mix"] = {
        "app_cpu_ms_per_request": round(mix_app_ms, 2),
        "db_cpu_ms_per_request": round(mix_db_ms, 2),
        # Every core busy with the apps and MariaDB alone (no generator, nginx, neighbours).
        "max_rps_on_all_cores": round(1000 * (os.cpu_count() or 1) / (mix_app_ms + mix_db_ms), 1),
    }
    return out


def measure(
    *,
    host: str,
    port: int,
    works: list[Workload],
    workers: int,
    seconds: float,
    patient_ids: list[int],
    doctor_ids: list[int],
    app_pids: list[int] | None = None,
    ceiling_pids: list[int] | None = None,
    db_pid: int | None = None,
) -> dict:
    work = works[0]
    # The patients the project's bookings come from (the token holders, in seed order).
    bookers = patient_ids[: sum(len(w.tokens) for w in works)]

    def project_availability(client: Client) -> tuple[bytes, None]:
        path = f"{API}/doctors/{work.rng.choice(doctor_ids)}/availability?{work.week()}"
        return client.encode("GET", path, token=work.tokens[0]), None

    def ceiling_availability(client: Client) -> tuple[bytes, None]:
        path = f"/ceiling/doctors/{work.rng.choice(doctor_ids)}/availability?{work.week()}"
        return client.encode("GET", path), None

    def project_booking(client: Client) -> tuple[bytes, None]:
        body = {"doctor_id": work.rng.choice(doctor_ids), "scheduled_at": work.slot()}
        token = work.rng.choice(work.tokens)
        return client.encode("POST", f"{API}/appointments", token=token, body=body), None

    def ceiling_booking(client: Client) -> tuple[bytes, None]:
        # The project's spread: any doctor, any token holder, a slot 2..40 days out.
        body = {
            "doctor_id": work.rng.choice(doctor_ids),
            "patient_id": work.rng.choice(bookers),
            "scheduled_at": work.slot(CEILING_BOOKINGS_FROM),
        }
        return client.encode("POST", "/ceiling/appointments", body=body), None

    def project_login(client: Client) -> tuple[bytes, None]:
        body = {"email": work.rng.choice(work.login_emails), "password": PASSWORD}
        return client.encode("POST", f"{API}/auth/login", body=body), None

    def closed(make: Callable, concurrency: int = CONCURRENCY, part: float = 1.0) -> dict:
        return load.run(
            load.saturate(host, port, make, concurrency=concurrency, seconds=seconds * part)
        )

    def costed(run: Callable[[], dict], pids: list[int] | None) -> Callable[[], dict]:
        """`run`, with the CPU per answer it cost `pids` and MariaDB."""
        if not pids:
            return run

        def go() -> dict:
            app0 = _cpu_seconds(pids)
            db0 = _cpu_seconds([db_pid]) if db_pid else 0.0
            res = run()
            n = max(res["requests"], 1)
            res["app_cpu_ms_per_request"] = round(1000 * (_cpu_seconds(pids) - app0) / n, 2)
            if db_pid:
                res["db_cpu_ms_per_request"] = round(1000 * (_cpu_seconds([db_pid]) - db0) / n, 2)
            return res

        return go

    def around(
        ceilings: list[Callable[[], dict]], project: Callable[[], dict]
    ) -> tuple[list[dict], dict]:
        """Each ceiling half before and half after the project's run (in mirror order),
        averaged, so ceiling and project face the same neighbours on the machine."""
        firsts = [ceiling() for ceiling in ceilings]
        measured = project()
        afters = [ceiling() for ceiling in reversed(ceilings)][::-1]
        out = []
        for first, second in zip(firsts, afters, strict=True):
            both = {**second}
            for key, digits in MEANS.items():
                if key in first and key in second:
                    both[key] = round((first[key] + second[key]) / 2, digits)
            if "status_codes" in first:
                codes = dict(first["status_codes"])
                for code, n in second["status_codes"].items():
                    codes[code] = codes.get(code, 0) + n
                both["status_codes"] = codes
            both["rps_before_after"] = [
                first.get("ok_rps", first["rps"]),
                second.get("ok_rps", second["rps"]),
            ]
            out.append(both)
        return out, measured

    def same_transaction() -> dict:
        res = costed(lambda: closed(ceiling_booking, part=0.5), ceiling_pids)()
        load.run(delete_ceiling_rows())  # each half starts from the same empty calendar
        return res

    out: dict = {}
    log(f"ceilings: {seconds:g}s each, closed loop, {CONCURRENCY} in flight")
    (out["availability_ceiling"],), out["availability_project"] = around(
        [lambda: closed(ceiling_availability, part=0.5)], lambda: closed(project_availability)
    )
    (out["booking_same_transaction"], out["booking_raw_insert"]), out["booking_project"] = around(
        [same_transaction, lambda: raw_insert_rate(workers, seconds / 2, patient_ids, doctor_ids)],
        costed(lambda: closed(project_booking), app_pids),
    )
    cores = min(workers, os.cpu_count() or 1)
    # Half before and half after the project's logins: the mean faces the same neighbours.
    first = argon2_rate(cores, seconds / 2)
    # Enough in flight to keep every app's hashing threads busy, not more.
    out["login_project"] = closed(project_login, concurrency=4 * workers)
    second = argon2_rate(cores, seconds / 2)
    out["login_argon2"] = {
        "rps": round((first["rps"] + second["rps"]) / 2, 1),
        "rps_before_after": [first["rps"], second["rps"]],
        "verify_ms": round((first["verify_ms"] + second["verify_ms"]) / 2, 1),
        "cores": cores,
    }
    booked = out["booking_project"]["ok_rps"]
    out["ratios"] = {
        "availability": _ratio(
            out["availability_project"]["ok_rps"],
            out["availability_ceiling"]["ok_rps"],
            "availability",
        ),
        "booking_same_transaction": _ratio(
            booked, out["booking_same_transaction"]["ok_rps"], "booking_same_transaction"
        ),
        "booking_raw_insert": _ratio(
            booked, out["booking_raw_insert"]["rps"], "booking_raw_insert"
        ),
        "login": _ratio(out["login_project"]["ok_rps"], out["login_argon2"]["rps"], "login"),
    }
    return out
