"""EHASS load benchmark: a real local deployment (MariaDB, Redis, N x `ehass serve`, nginx),
the clinic-day mix at a constant arrival rate in consecutive phases, ceilings measured in
the same run, and a report (table, JSON, PNG) under bench/results/.

    python bench/run.py --rate 400 --duration 60 --workers 2

Everything it starts it stops; it only ever talks to 127.0.0.1. See bench/README.md.
Exit status: 0 done, no 5xx; 2 some response was a 5xx; 1 setup failed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import ceilings
import deploy
import load
import pyspy
import report
from deploy import log
from seed import PASSWORD, seed

RESULTS = deploy.ROOT / "bench" / "results"


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rate", type=float, default=400, help="requests/s offered (open model)")
    ap.add_argument("--duration", type=float, default=30, help="seconds of load per phase")
    ap.add_argument(
        "--phases", type=int, default=2, help="consecutive load phases (RSS growth is checked)"
    )
    ap.add_argument("--workers", type=int, default=2, help="`ehass serve` processes behind nginx")
    ap.add_argument("--patients", type=int, default=2000)
    ap.add_argument("--doctors", type=int, default=200)
    ap.add_argument(
        "--token-patients",
        type=int,
        default=400,
        help="patients logged in before the clock starts (argon2id is slow)",
    )
    ap.add_argument(
        "--no-worker",
        action="store_true",
        help="run no `ehass worker` (the outbox and audit_pending then only grow)",
    )
    ap.add_argument("--loadgen-procs", type=int, default=1, help="load generator processes")
    ap.add_argument("--connections", type=int, default=64, help="HTTP connections per generator")
    ap.add_argument("--max-inflight", type=int, default=2000, help="per generator; beyond: dropped")
    ap.add_argument("--timeout", type=float, default=10.0, help="per-request timeout (s)")
    ap.add_argument(
        "--ceiling-seconds", type=float, default=6, help="seconds per ceiling measurement (0: skip)"
    )
    ap.add_argument(
        "--cost-seconds",
        type=float,
        default=4,
        help="seconds per endpoint alone, closed loop, for its CPU cost (0: skip)",
    )
    ap.add_argument(
        "--py-spy",
        metavar="PATH",
        help="py-spy binary: profile app0 while each endpoint runs alone",
    )
    ap.add_argument("--no-nginx", action="store_true", help="load the first app port directly")
    ap.add_argument("--keep-db", action="store_true", help="do not drop ehass_bench at the end")
    ap.add_argument(
        "--reference",
        action="store_true",
        help="also write bench/results/reference.{json,png} (the committed result)",
    )
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.py_spy and not (shutil.which(args.py_spy) or os.access(args.py_spy, os.X_OK)):
        ap.error(f"--py-spy {args.py_spy}: no such program (see bench/pyspy.py to install it)")
    if args.token_patients > args.patients - 50:
        ap.error("--token-patients must leave at least 50 patients for the login mix")
    return args


def login_all(host: str, port: int, emails: list[str]) -> list[str]:
    """Logs the token holders in, 16 at a time (argon2id: slow on purpose)."""
    import json

    from client import Client

    async def go() -> list[str]:
        client = Client(host, port, connections=16, timeout=60)
        sem = asyncio.Semaphore(16)

        async def one(email: str) -> str:
            async with sem:
                raw = client.encode(
                    "POST", f"{load.API}/auth/login", body={"email": email, "password": PASSWORD}
                )
                status, body = await client.request(raw)
                if status != 200:
                    raise RuntimeError(f"login of {email} answered {status}: {body[:200]!r}")
                return json.loads(body)["access_token"]

        try:
            return list(await asyncio.gather(*(one(e) for e in emails)))
        finally:
            client.close()

    return load.run(go())


def main() -> int:
    args = parse_args()
    env = deploy.app_env()
    os.environ.update(env)  # the in-process seeder reads the same settings
    tmp = Path(tempfile.mkdtemp(prefix="ehass-bench-"))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    children: list[subprocess.Popen] = []
    exit_code = 1
    try:
        log(f"recreating database {deploy.DB_NAME}")
        asyncio.run(deploy.recreate_database())
        deploy.upgrade_schema(env)
        t = time.monotonic()
        data = asyncio.run(seed(args.patients, args.doctors, args.token_patients))
        log(
            f"seeded {args.patients} patients, {args.doctors} doctors, "
            f"{2 * args.token_patients} appointments in {time.monotonic() - t:.1f}s"
        )

        apps = deploy.start_apps(args.workers, env, tmp)
        children += [p for _, p in apps]
        worker = None if args.no_worker else deploy.start_worker(env, tmp)
        if worker is not None:
            children.append(worker)
        ceiling_apps = deploy.start_ceiling_apps(args.workers, tmp) if args.ceiling_seconds else []
        children += [p for _, p in ceiling_apps]
        for port, _ in apps + ceiling_apps:
            deploy.wait_ready(
                f"http://127.0.0.1:{port}/readyz", [p for _, p in apps + ceiling_apps]
            )
        log(f"{args.workers} app processes ready on ports {[port for port, _ in apps]}")
        lb = None
        if args.no_nginx:
            port = apps[0][0]
            log("--no-nginx: loading the first app port directly")
        else:
            nginx = deploy.ensure_nginx()
            port, lb = deploy.start_nginx(
                nginx, [p for p, _ in apps], [p for p, _ in ceiling_apps], tmp
            )
            children.append(lb)
            deploy.wait_ready(f"http://127.0.0.1:{port}/readyz", [lb])
            log(f"nginx load balancer on 127.0.0.1:{port}")

        t = time.monotonic()
        emails = data.patient_emails
        tokens = login_all("127.0.0.1", port, emails[: args.token_patients])
        log(f"logged in {len(tokens)} patients in {time.monotonic() - t:.1f}s")

        cfg = {
            "host": "127.0.0.1",
            "port": port,
            "rate": args.rate,
            "duration": args.duration,
            "connections": args.connections,
            "max_inflight": args.max_inflight,
            "timeout": args.timeout,
        }
        k = args.loadgen_procs
        login_pool = emails[args.token_patients :]
        works = [
            load.Workload(
                tokens=tokens[i::k],
                appointments=[list(data.appointments.get(j, [])) for j in range(i, len(tokens), k)],
                login_emails=login_pool[i::k],
                doctor_ids=data.doctor_ids,
                seed=args.seed * 1000 + i,
            )
            for i in range(k)
        ]

        watched = {f"app{i}": p.pid for i, (_, p) in enumerate(apps)}
        if worker is not None:
            watched["worker"] = worker.pid
        if lb is not None:
            watched["nginx"] = lb.pid
        if (db_pid := deploy.mariadb_pid()) is not None:
            watched["mariadb"] = db_pid
        app_names = [n for n in watched if n.startswith("app")]
        phases = []
        heaps: dict[str, list] = {name: [] for name in app_names}
        for n in range(args.phases):
            log(
                f"phase {n + 1}/{args.phases}: {args.rate:g} req/s for {args.duration:g}s, "
                f"open model, {k} generator process(es)"
            )
            machine0 = report.machine_sample()
            before = {name: report.proc_sample(pid) for name, pid in watched.items()}
            runs = load.open_load_parallel(cfg, works)
            after = {name: report.proc_sample(pid) for name, pid in watched.items()}
            machine1 = report.machine_sample()
            procs = report.proc_usage(before, after)
            summary = report.summarize(runs, args.duration)
            report.print_table(summary, procs)
            gen_cpu = [r["cpu_pct"] for r in runs]
            lag = max(r["lag_max"] for r in runs)
            print(
                f"  generator  cpu {sum(gen_cpu):6.1f} %  ({len(runs)} process(es)); "
                f"max send lag {lag * 1000:.1f} ms; wall incl. drain {summary['ALL']['wall_s']} s"
            )
            for name in app_names:
                heaps[name].append(report.heap_rss_mb(watched[name]))
            machine = report.machine_usage(machine0, machine1, procs, sum(gen_cpu))
            print(
                f"  machine    cpu {machine['busy_pct']:6.1f} % of {machine['cores']} cores' "
                f"{100 * machine['cores']} %, of which others' work {machine['others_pct']} %"
            )
            phases.append(
                {
                    "duration": args.duration,
                    "runs": runs,
                    "endpoints": summary,
                    "processes": procs,
                    "generator_cpu_pct": gen_cpu,
                    "machine": machine,
                    "generator_max_send_lag_ms": round(lag * 1000, 1),
                }
            )
        memory = report.memory_check([p["processes"] for p in phases], app_names, heaps)

        costs = {}
        if args.cost_seconds:
            log(f"endpoint costs: each alone, closed loop, {args.cost_seconds:g}s")
            costs = ceilings.endpoint_costs(
                host="127.0.0.1",
                port=port,
                work=works[0],
                app_pids=[p.pid for _, p in apps],
                db_pid=watched.get("mariadb"),
                seconds=args.cost_seconds,
                py_spy=args.py_spy,
                profile_prefix=RESULTS / stamp,
            )
            report.print_costs(costs)
            for op, c in costs.items():
                if "profile" in c:
                    pyspy.print_summary(op, c["profile"])

        ceiling = {}
        if args.ceiling_seconds:
            ceiling = ceilings.measure(
                host="127.0.0.1",
                port=port,
                works=works,
                workers=args.workers,
                seconds=args.ceiling_seconds,
                patient_ids=data.patient_ids,
                doctor_ids=data.doctor_ids,
                app_pids=[p.pid for _, p in apps],
                ceiling_pids=[p.pid for _, p in ceiling_apps],
                db_pid=watched.get("mariadb"),
            )
            report.print_ceilings(ceiling)

        last = phases[-1]["endpoints"]
        print("\nmemory (RSS per app process after each phase):")
        for name, m in memory.items():
            flags = (" GROWING" if m["grew"] else "") + (
                f" over {report.RSS_TARGET_MB:g} MiB" if m["over_target"] else ""
            )
            print(
                f"  {name:<6} {m['rss_mb_after_each_phase']} MiB, growth {m['growth_mb']} MiB"
                f"{flags}; of which malloc heap {m['malloc_heap_mb_after_each_phase']} MiB"
            )
        misses = report.slo_misses(last)

        result = {
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": "python bench/run.py " + " ".join(sys.argv[1:]),
            "args": vars(args),
            "nginx": lb is not None,
            "cpus": os.cpu_count(),
            "mix_weights": load.MIX,
            "endpoints": last,
            "phases": [{k: v for k, v in p.items() if k != "runs"} for p in phases],
            "memory": memory,
            "ceilings": ceiling,
            "endpoint_costs": costs,
            "slo_misses": misses,
        }
        result["targets"] = report.target_checks(result)
        report.print_targets(result["targets"])
        json_file = report.write_json(result, RESULTS, stamp)
        png_file = json_file.with_suffix(".png")
        title = (
            f"EHASS bench {result['timestamp']}: {args.rate:g} req/s x {args.phases} x "
            f"{args.duration:g}s, {args.workers} workers, {os.cpu_count()} CPUs"
        )
        report.plot(phases, last, png_file, title)
        if args.reference:
            shutil.copy(json_file, RESULTS / "reference.json")
            shutil.copy(png_file, RESULTS / "reference.png")
        log(f"wrote {json_file.relative_to(deploy.ROOT)} and {png_file.name}")
        n5xx = sum(p["endpoints"]["ALL"]["status_5xx"] for p in phases)
        if n5xx:
            log(f"FAIL: {n5xx} responses were 5xx (app logs kept in {tmp})")
            exit_code = 2
        else:
            exit_code = 0
    except RuntimeError as exc:
        log(f"setup failed: {exc}")
    finally:
        for p in reversed(children):
            deploy.stop(p)
        if not args.keep_db:
            try:
                asyncio.run(deploy.drop_database())
            except Exception as exc:
                log(f"could not drop {deploy.DB_NAME}: {exc}")
        try:
            asyncio.run(deploy.clear_redis(env["EHASS_REDIS_KEY_PREFIX"]))
        except Exception as exc:
            log(f"could not clear the run's Redis keys: {exc}")
        if exit_code == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"logs kept in {tmp}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
