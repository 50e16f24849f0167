"""EHASS load benchmark: a real local deployment (MariaDB, Redis, N x `ehass serve`, nginx),
an open-model (constant arrival rate) load generator, a per-endpoint latency report.

    python bench/run.py --rate 400 --duration 60 --workers 2

Everything it starts it stops; it only ever talks to 127.0.0.1. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing as mp
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
EHASS = str(VENV_BIN / "ehass") if (VENV_BIN / "ehass").exists() else "ehass"
DB_NAME = "ehass_bench"
DB_URL = f"mysql+asyncmy://root@127.0.0.1:3306/{DB_NAME}"
PASSWORD = "bench-password-2026-correct-horse"  # noqa: S105 - throwaway local bench accounts
SPECIALTIES = [
    "Cardiology",
    "Neurology",
    "Dermatology",
    "Pediatrics",
    "General Practice",
    "Oncology",
    "Orthopedics",
    "Psychiatry",
    "Radiology",
    "Ophthalmology",
]
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
API = "/api/v1"


# --------------------------------------------------------------------------- helpers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def proc_sample(pid: int) -> dict:
    """CPU ticks (utime+stime) and RSS of pid and its descendants, from /proc."""
    pids = [pid]
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(k) for k in kids]
    except OSError:
        pass
    ticks, rss_kb = 0, 0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss_kb += int(line.split()[1])
        except OSError:
            pass
    return {"ticks": ticks, "rss_kb": rss_kb, "t": time.monotonic()}


def percentile(sorted_vals: list[float], q: float) -> float | None:
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, round(q / 100 * len(sorted_vals) + 0.5) - 1))
    return sorted_vals[k]


# --------------------------------------------------------------------------- database
async def recreate_database() -> None:
    import warnings

    import asyncmy

    conn = await asyncmy.connect(host="127.0.0.1", port=3306, user="root", password="")
    async with conn.cursor() as cur:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "database doesn't exist" note from IF EXISTS
            await cur.execute(f"DROP DATABASE IF EXISTS {DB_NAME}")
        await cur.execute(f"CREATE DATABASE {DB_NAME} CHARACTER SET utf8mb4")
    conn.close()


async def drop_database() -> None:
    import asyncmy

    conn = await asyncmy.connect(host="127.0.0.1", port=3306, user="root", password="")
    async with conn.cursor() as cur:
        await cur.execute(f"DROP DATABASE IF EXISTS {DB_NAME}")
    conn.close()


async def seed(n_patients: int, n_doctors: int, n_with_appts: int) -> dict:
    """Seed straight through the models (one transaction, no HTTP, no per-user argon2)."""
    from ehass.appointments.models import Appointment, Status
    from ehass.availability.models import WeeklyWindow
    from ehass.config import Settings
    from ehass.core import crypto
    from ehass.core.passwords import hash_password_sync
    from ehass.db import Database
    from ehass.doctors.models import Doctor
    from ehass.runtime import build_keyring
    from ehass.users.models import Patient, User

    settings = Settings()
    crypto.configure(build_keyring(settings))
    pw_hash = hash_password_sync(PASSWORD)
    now = datetime.now(UTC).replace(microsecond=0)
    db = Database.from_settings(settings)
    rng = random.Random(42)
    try:
        async with db.transaction() as session:
            doctors = []
            for i in range(n_doctors):
                u = User(
                    email=f"doctor{i}@bench.ehass.org",
                    name=f"Dr Bench Doc{i:04d}",
                    password_hash=pw_hash,
                    role="doctor",
                    is_active=True,
                    created_at=now,
                    updated_at=now,
                    patient=None,
                    doctor=Doctor(
                        specialty=SPECIALTIES[i % len(SPECIALTIES)], timezone="UTC", slot_minutes=30
                    ),
                )
                doctors.append(u)
            patients = []
            for i in range(n_patients):
                u = User(
                    email=f"patient{i}@bench.ehass.org",
                    name=f"Pat Bench{i:05d}",
                    password_hash=pw_hash,
                    role="patient",
                    is_active=True,
                    created_at=now,
                    updated_at=now,
                    doctor=None,
                    patient=Patient(
                        date_of_birth=date(
                            1950 + rng.randrange(60), 1 + rng.randrange(12), 1 + rng.randrange(28)
                        )
                    ),
                )
                patients.append(u)
            session.add_all(doctors + patients)
            await session.flush()
            doctor_ids = [u.doctor.id for u in doctors]
            for did in doctor_ids:
                for wd in range(7):  # Mon-Sun 00:00-23:30 UTC
                    session.add(
                        WeeklyWindow(
                            doctor_id=did,
                            weekday=wd,
                            start_time=dtime(0, 0),
                            end_time=dtime(23, 30),
                        )
                    )
            # Two appointments per token-holding patient, 3+ days out (past the 24 h
            # cancellation notice), so reschedule/cancel have targets from the first second.
            base = datetime.combine(now.date(), dtime(0), tzinfo=UTC)
            appts: dict[int, list[int]] = {}
            pending = []
            for i in range(n_with_appts):
                for k, hour in enumerate((10, 14)):
                    j = 2 * i + k
                    at = base + timedelta(days=3 + j // n_doctors, hours=hour)
                    a = Appointment(
                        patient_id=patients[i].patient.id,
                        doctor_id=doctor_ids[j % n_doctors],
                        scheduled_at=at,
                        ends_at=at + timedelta(minutes=30),
                        status=Status.SCHEDULED,
                        reason="bench seed",
                        created_at=now,
                        updated_at=now,
                    )
                    session.add(a)
                    pending.append((i, a))
            await session.flush()
            for i, a in pending:
                appts.setdefault(i, []).append(a.id)
        return {
            "doctor_ids": doctor_ids,
            "patient_emails": [u.email for u in patients],
            "appointments": appts,
        }
    finally:
        await db.dispose()


# --------------------------------------------------------------------------- deployment
def start_apps(n: int, env: dict, tmp: Path) -> list[tuple[int, subprocess.Popen]]:
    apps = []
    for i in range(n):
        port = free_port()
        out = open(tmp / f"app{i}.log", "wb")  # noqa: SIM115
        p = subprocess.Popen(
            [EHASS, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp,
            start_new_session=True,
        )
        apps.append((port, p))
    return apps


def wait_ready(url: str, procs: list[subprocess.Popen], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"a server process exited early (rc={p.returncode})")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def ensure_nginx() -> str | None:
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if nginx:
        return nginx
    log("nginx missing: apt-get install -y nginx")
    try:
        subprocess.run(
            ["apt-get", "install", "-y", "nginx"],
            check=True,
            capture_output=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            timeout=300,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log(f"nginx could not be installed ({exc}); loading the app ports directly")
        return None
    return "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else shutil.which("nginx")


def start_nginx(nginx: str, app_ports: list[int], tmp: Path) -> tuple[int, subprocess.Popen]:
    port = free_port()
    prefix = tmp / "nginx"
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    upstream = "\n".join(f"        server 127.0.0.1:{p};" for p in app_ports)
    conf = f"""
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream ehass {{
{upstream}
        keepalive 128;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://ehass;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_read_timeout 30s;
        }}
    }}
}}
"""
    conf_file = prefix / "nginx.conf"
    conf_file.write_text(conf)
    out = open(tmp / "nginx.out", "wb")  # noqa: SIM115
    p = subprocess.Popen(
        [nginx, "-p", str(prefix), "-c", str(conf_file)],
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return port, p


def stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


# --------------------------------------------------------------------------- logins
async def login_all(base: str, emails: list[str], concurrency: int) -> list[str]:
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:

        async def one(email: str) -> str:
            async with sem:
                r = await client.post(
                    f"{API}/auth/login", json={"email": email, "password": PASSWORD}
                )
                r.raise_for_status()
                return r.json()["access_token"]

        return await asyncio.gather(*(one(e) for e in emails))


# --------------------------------------------------------------------------- load generator
def slot_time(rng: random.Random, today: datetime) -> str:
    day = today + timedelta(days=rng.randrange(2, 40))
    at = day + timedelta(minutes=30 * rng.randrange(47))  # 00:00 .. 23:00 starts
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


async def generate(cfg: dict, part: dict) -> dict:
    rng = random.Random(cfg["seed"] + part["index"])
    rate, duration = cfg["rate"] / cfg["procs"], cfg["duration"]
    tokens: list[str] = part["tokens"]
    own: list[list[int]] = part["appointments"]  # per token-holding patient, scheduled ids
    login_emails: list[str] = part["login_emails"]
    doctor_ids: list[int] = cfg["doctor_ids"]
    today = datetime.combine(datetime.now(UTC).date(), dtime(0), tzinfo=UTC)
    ops = list(MIX)
    weights = [MIX[o] for o in ops]
    n = int(rate * duration)
    plan = rng.choices(ops, weights=weights, k=n)
    results: list[tuple[str, int, float]] = []  # (op, status, latency from planned time)
    lag_max = 0.0
    dropped = 0
    inflight = 0
    limits = httpx.Limits(
        max_connections=cfg["connections"], max_keepalive_connections=cfg["connections"]
    )
    client = httpx.AsyncClient(base_url=cfg["base"], limits=limits, timeout=cfg["timeout"])

    # httpcore's pool gets slow (CPU) when many requests wait for a connection; queue them on a
    # cheap semaphore instead. The wait still counts: latency runs from the planned time.
    gate = asyncio.Semaphore(cfg["connections"])

    async def request(op: str, planned: float) -> None:
        nonlocal inflight
        inflight += 1
        try:
            async with gate:
                await _request(op, planned)
        finally:
            inflight -= 1

    async def _request(op: str, planned: float) -> None:
        nonlocal inflight
        p = rng.randrange(len(tokens))
        headers = {"Authorization": f"Bearer {tokens[p]}"}
        status = 0
        appt_id, keep = None, False
        try:
            if op == "list_doctors":
                params: dict = {"limit": 50}
                x = rng.random()
                if x < 0.25:
                    params["specialty"] = rng.choice(SPECIALTIES)
                elif x < 0.5:
                    params["q"] = f"Doc{rng.randrange(20):02d}"
                r = await client.get(f"{API}/doctors", params=params, headers=headers)
            elif op == "availability_week":
                start = today + timedelta(days=rng.randrange(1, 15))
                params = {
                    "from": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "to": (start + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
                r = await client.get(
                    f"{API}/doctors/{rng.choice(doctor_ids)}/availability",
                    params=params,
                    headers=headers,
                )
            elif op == "my_appointments":
                r = await client.get(f"{API}/appointments", params={"limit": 50}, headers=headers)
            elif op == "book":
                body = {
                    "doctor_id": rng.choice(doctor_ids),
                    "scheduled_at": slot_time(rng, today),
                    "reason": "bench booking",
                }
                r = await client.post(f"{API}/appointments", json=body, headers=headers)
                if r.status_code == 201:
                    own[p].append(r.json()["id"])
            elif op in ("reschedule", "cancel"):
                # A patient holding appointments; take one out while the request is in flight.
                holders = [i for i in rng.sample(range(len(own)), min(50, len(own))) if own[i]]
                if not holders:
                    op = "book_fallback"
                    body = {
                        "doctor_id": rng.choice(doctor_ids),
                        "scheduled_at": slot_time(rng, today),
                    }
                    r = await client.post(f"{API}/appointments", json=body, headers=headers)
                    if r.status_code == 201:
                        own[p].append(r.json()["id"])
                else:
                    p = holders[0]
                    headers = {"Authorization": f"Bearer {tokens[p]}"}
                    appt_id = own[p].pop(rng.randrange(len(own[p])))
                    if op == "reschedule":
                        r = await client.put(
                            f"{API}/appointments/{appt_id}",
                            headers=headers,
                            json={"scheduled_at": slot_time(rng, today)},
                        )
                        keep = r.status_code in (200, 409)
                    else:
                        r = await client.delete(f"{API}/appointments/{appt_id}", headers=headers)
                        keep = r.status_code not in (200, 404)
            else:  # login
                r = await client.post(
                    f"{API}/auth/login",
                    json={"email": rng.choice(login_emails), "password": PASSWORD},
                )
            status = r.status_code
        except httpx.HTTPError:
            status = 0
        finally:
            if appt_id is not None and keep:
                own[p].append(appt_id)
            results.append((op, status, time.perf_counter() - planned))

    tasks = set()
    cpu0 = time.process_time()
    t0 = time.perf_counter() + 0.2
    for i, op in enumerate(plan):
        planned = t0 + i / rate
        delay = planned - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        lag_max = max(lag_max, time.perf_counter() - planned)
        if inflight >= cfg["max_inflight"]:
            dropped += 1  # bounded load: count it as a failed request instead of queueing more
            results.append((op, -1, time.perf_counter() - planned))
            continue
        t = asyncio.create_task(request(op, planned))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
    send_end = time.perf_counter()
    if tasks:
        await asyncio.wait(tasks, timeout=cfg["timeout"] + 5)
    end = time.perf_counter()
    await client.aclose()
    return {
        "results": results,
        "t_send": send_end - t0,
        "t_total": end - t0,
        "cpu_pct": round(100 * (time.process_time() - cpu0) / (end - t0), 1),
        "lag_max": lag_max,
        "dropped": dropped,
    }


def _generator_proc(cfg: dict, part: dict, q: mp.Queue) -> None:
    q.put(asyncio.run(generate(cfg, part)))


# --------------------------------------------------------------------------- report
def summarize(runs: list[dict], duration: float) -> dict:
    by_op: dict[str, list[tuple[int, float]]] = {}
    for run in runs:
        for op, status, lat in run["results"]:
            by_op.setdefault(op, []).append((status, lat))
    wall = max(r["t_total"] for r in runs)

    def stats(rows: list[tuple[int, float]]) -> dict:
        lats = sorted(lat for _, lat in rows)
        codes: dict[str, int] = {}
        for s, _ in rows:
            codes[str(s)] = codes.get(str(s), 0) + 1
        n = len(rows)
        ok = sum(1 for s, _ in rows if 200 <= s < 300)
        c409 = sum(1 for s, _ in rows if s == 409)
        s5xx = sum(1 for s, _ in rows if s >= 500)
        other = n - ok - c409
        ms = lambda v: None if v is None else round(v * 1000, 1)  # noqa: E731
        return {
            "requests": n,
            "rps_offered": round(n / duration, 1),
            # responses actually received (any HTTP status) per second of wall time incl. drain
            "rps_achieved": round(sum(1 for s, _ in rows if s > 0) / wall, 1),
            "ok": ok,
            "conflict_409": c409,
            "errors_other": other,
            "error_rate": round(other / n, 4) if n else 0.0,
            "status_5xx": s5xx,
            "transport_errors": codes.get("0", 0),
            "dropped": codes.get("-1", 0),
            "p50_ms": ms(percentile(lats, 50)),
            "p95_ms": ms(percentile(lats, 95)),
            "p99_ms": ms(percentile(lats, 99)),
            "max_ms": ms(lats[-1] if lats else None),
            "status_codes": codes,
        }

    out = {op: stats(rows) for op, rows in sorted(by_op.items())}
    out["ALL"] = stats([row for rows in by_op.values() for row in rows])
    out["ALL"]["wall_s"] = round(wall, 2)
    return out


def print_table(summary: dict, procs: dict) -> None:
    cols = [
        "endpoint",
        "req",
        "offer/s",
        "got/s",
        "ok",
        "409",
        "err%",
        "5xx",
        "p50ms",
        "p95ms",
        "p99ms",
        "maxms",
    ]
    print("\n" + "  ".join(f"{c:>10}" if i else f"{c:<18}" for i, c in enumerate(cols)))
    for op, s in summary.items():
        vals = [
            s["requests"],
            s["rps_offered"],
            s["rps_achieved"],
            s["ok"],
            s["conflict_409"],
            round(100 * s["error_rate"], 2),
            s["status_5xx"],
            s["p50_ms"],
            s["p95_ms"],
            s["p99_ms"],
            s["max_ms"],
        ]
        print(f"{op:<18}  " + "  ".join(f"{v!s:>10}" for v in vals))
    print("\nprocesses (CPU % of one core over the load window, RSS before -> after):")
    for name, p in procs.items():
        print(
            f"  {name:<10} cpu {p['cpu_pct']:6.1f} %  "
            f"rss {p['rss_mb_before']:7.1f} -> {p['rss_mb_after']:7.1f} MB"
        )


# --------------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rate", type=float, default=400, help="requests/s offered (open model)")
    ap.add_argument("--duration", type=float, default=60, help="seconds of load")
    ap.add_argument("--workers", type=int, default=2, help="`ehass serve` processes behind nginx")
    ap.add_argument("--patients", type=int, default=2000)
    ap.add_argument("--doctors", type=int, default=200)
    ap.add_argument(
        "--token-patients",
        type=int,
        default=400,
        help="patients logged in before the clock starts (argon2id is slow)",
    )
    ap.add_argument("--loadgen-procs", type=int, default=1, help="load generator processes")
    ap.add_argument(
        "--connections", type=int, default=64, help="max HTTP connections per generator"
    )
    ap.add_argument("--max-inflight", type=int, default=2000, help="per generator; beyond: dropped")
    ap.add_argument("--timeout", type=float, default=10.0, help="per-request timeout (s)")
    ap.add_argument("--no-nginx", action="store_true", help="load the app ports directly")
    ap.add_argument("--keep-db", action="store_true", help="do not drop ehass_bench at the end")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.token_patients > args.patients - 50:
        ap.error("--token-patients must leave at least 50 patients for the login mix")

    env = {
        **os.environ,
        "EHASS_DATABASE_URL": DB_URL,
        "EHASS_REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"),
        "EHASS_REDIS_KEY_PREFIX": f"ehass-bench-{secrets.token_hex(4)}",
        "EHASS_SECRET_KEY": secrets.token_urlsafe(48),
        "EHASS_ENCRYPTION_KEYS": "bench1:" + base64.b64encode(os.urandom(32)).decode(),
        "EHASS_ENV": "production",
        "EHASS_RATE_LIMIT_ENABLED": "false",
        "EHASS_LOG_LEVEL": "WARNING",
        "EHASS_FORWARDED_ALLOW_IPS": "127.0.0.1",
    }
    env.pop("EHASS_CONFIG_FILE", None)
    os.environ.update(env)  # the in-process seeder reads the same settings

    tmp = Path(tempfile.mkdtemp(prefix="ehass-bench-"))
    children: list[subprocess.Popen] = []
    exit_code = 1
    try:
        log(f"recreating database {DB_NAME}")
        asyncio.run(recreate_database())
        up = subprocess.run(
            [EHASS, "db", "upgrade"], env=env, cwd=ROOT, capture_output=True, text=True
        )
        if up.returncode:
            sys.stderr.write(up.stdout + up.stderr)
            raise RuntimeError("ehass db upgrade failed")
        t = time.monotonic()
        data = asyncio.run(seed(args.patients, args.doctors, args.token_patients))
        log(
            f"seeded {args.patients} patients, {args.doctors} doctors, "
            f"{2 * args.token_patients} appointments in {time.monotonic() - t:.1f}s"
        )

        apps = start_apps(args.workers, env, tmp)
        children += [p for _, p in apps]
        for port, _ in apps:
            wait_ready(f"http://127.0.0.1:{port}/readyz", [p for _, p in apps])
        log(f"{args.workers} app processes ready on ports {[port for port, _ in apps]}")
        nginx = None if args.no_nginx else ensure_nginx()
        if nginx:
            lb_port, lb = start_nginx(nginx, [port for port, _ in apps], tmp)
            children.append(lb)
            wait_ready(f"http://127.0.0.1:{lb_port}/readyz", [lb])
            base = f"http://127.0.0.1:{lb_port}"
            log(f"nginx load balancer on {base}")
        else:
            base = f"http://127.0.0.1:{apps[0][0]}"  # single target when no load balancer
            if len(apps) > 1:
                log("WARNING: no nginx; only the first app port is loaded")

        t = time.monotonic()
        emails = data["patient_emails"]
        tokens = asyncio.run(login_all(base, emails[: args.token_patients], 16))
        log(f"logged in {len(tokens)} patients in {time.monotonic() - t:.1f}s")

        cfg = {
            "base": base,
            "rate": args.rate,
            "duration": args.duration,
            "procs": args.loadgen_procs,
            "connections": args.connections,
            "max_inflight": args.max_inflight,
            "timeout": args.timeout,
            "seed": args.seed,
            "doctor_ids": data["doctor_ids"],
        }
        login_pool = emails[args.token_patients :]
        parts = []
        for k in range(args.loadgen_procs):
            idx = list(range(k, len(tokens), args.loadgen_procs))
            parts.append(
                {
                    "index": k,
                    "tokens": [tokens[i] for i in idx],
                    "appointments": [list(data["appointments"].get(i, [])) for i in idx],
                    "login_emails": login_pool[k :: args.loadgen_procs],
                }
            )

        watched = {f"app{i}": p.pid for i, (_, p) in enumerate(apps)}
        if nginx:
            watched["nginx"] = lb.pid
        try:  # the database server listening on 3306, for context
            ss = subprocess.run(["ss", "-Hltnp", "sport = :3306"], capture_output=True, text=True)
            if "pid=" in ss.stdout:
                watched["mariadb"] = int(ss.stdout.split("pid=", 1)[1].split(",", 1)[0])
        except (OSError, ValueError):
            pass
        before = {name: proc_sample(pid) for name, pid in watched.items()}
        log(
            f"load: {args.rate:g} req/s for {args.duration:g}s, open model, "
            f"{args.loadgen_procs} generator process(es), target {base}"
        )
        if args.loadgen_procs == 1:
            runs = [asyncio.run(generate(cfg, parts[0]))]
        else:
            q: mp.Queue = mp.get_context("fork").Queue()
            gens = [
                mp.get_context("fork").Process(target=_generator_proc, args=(cfg, part, q))
                for part in parts
            ]
            for g in gens:
                g.start()
            runs = [q.get() for _ in gens]
            for g in gens:
                g.join()
        after = {name: proc_sample(pid) for name, pid in watched.items()}

        hz = os.sysconf("SC_CLK_TCK")
        procs = {}
        for name in before:
            b, a = before[name], after[name]
            procs[name] = {
                "cpu_seconds": round((a["ticks"] - b["ticks"]) / hz, 2),
                "cpu_pct": round(100 * (a["ticks"] - b["ticks"]) / hz / (a["t"] - b["t"]), 1),
                "rss_mb_before": round(b["rss_kb"] / 1024, 1),
                "rss_mb_after": round(a["rss_kb"] / 1024, 1),
            }
        summary = summarize(runs, args.duration)
        print_table(summary, procs)
        lag = max(r["lag_max"] for r in runs)
        gen_cpu = [r["cpu_pct"] for r in runs]
        print(f"  generator  cpu {sum(gen_cpu):6.1f} %  ({len(runs)} process(es))")
        print(
            f"\noffered {args.rate:g} req/s for {args.duration:g}s; generator max send lag "
            f"{lag * 1000:.1f} ms; wall incl. drain {summary['ALL']['wall_s']} s"
        )
        result = {
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "args": vars(args),
            "target": base,
            "nginx": bool(nginx),
            "cpus": os.cpu_count(),
            "mix_weights": MIX,
            "generator_max_send_lag_ms": round(lag * 1000, 1),
            "generator_cpu_pct": gen_cpu,
            "endpoints": summary,
            "processes": procs,
        }
        out_dir = ROOT / "bench" / "results"
        out_dir.mkdir(parents=True, exist_ok=True)
        out_file = out_dir / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
        out_file.write_text(json.dumps(result, indent=2))
        log(f"wrote {out_file.relative_to(ROOT)}")
        n5xx = summary["ALL"]["status_5xx"]
        if n5xx:
            log(f"FAIL: {n5xx} responses were 5xx (see app logs, kept in {tmp})")
            exit_code = 2
        else:
            exit_code = 0
    finally:
        for p in reversed(children):
            stop(p)
        if not args.keep_db:
            try:
                asyncio.run(drop_database())
            except Exception as exc:
                log(f"could not drop {DB_NAME}: {exc}")
        if exit_code == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"logs kept in {tmp}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
