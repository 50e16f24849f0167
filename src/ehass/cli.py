"""The `ehass` command."""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import ipaddress
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from ehass.config import get_settings


def _plain_http_refusal(args: argparse.Namespace) -> str | None:
    """Why production must not serve plain HTTP here, or None when it may."""
    settings = get_settings()
    if settings.env != "production" or args.ssl_certfile or settings.forwarded_allow_ips:
        return None
    try:
        if ipaddress.ip_address(args.host).is_loopback:
            return None
    except ValueError:
        if args.host == "localhost":
            return None
    return (
        f"refusing to serve plain HTTP on {args.host} in production: give --ssl-certfile and "
        "--ssl-keyfile, or run behind a TLS proxy and set EHASS_FORWARDED_ALLOW_IPS"
    )


def _prepare_multiprocess_metrics() -> None:
    """Workers share their metrics through files; a fresh directory on every start."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        path = Path(directory)
        for stale in path.glob("*.db"):
            stale.unlink()
    else:
        path = Path(tempfile.mkdtemp(prefix="ehass-metrics-"))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)


# argon2id takes 19 MiB per password hash, in the thread that hashes. glibc gives each
# thread an arena of its own (up to 8 per core) and keeps what a thread's arena once held:
# every thread that ever hashed keeps its 19 MiB (an app process grew from 128 to 435 MB
# RSS over 200 logins). With one arena the freed block returns to the top of the main heap
# and is trimmed (131 MB after the same logins), at no cost to the hash: our threads only
# hash passwords, so they hardly contend for malloc. (A fixed mmap threshold also bounds
# the memory, but page-faults the 19 MiB in on every hash: +60 % CPU per login.)
MALLOC_ARENA_MAX = 1
_M_ARENA_MAX = -8  # mallopt parameter number, glibc <malloc.h>


def _limit_malloc_arenas() -> None:
    """For this process (mallopt) and the worker processes it starts (the variable glibc
    reads at their start). Does nothing on a C library without mallopt."""
    os.environ.setdefault("MALLOC_ARENA_MAX", str(MALLOC_ARENA_MAX))
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_ARENA_MAX, MALLOC_ARENA_MAX)


def _stop_with_success(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _exit_zero_after_sigterm() -> None:
    """uvicorn answers SIGTERM by finishing the requests in flight, then raises SIGTERM
    again once it has restored the handler it found, so a drained, clean stop would end
    "killed by SIGTERM" (status 143), like `ehass worker` never does and a supervisor may
    count as a failure. The handler it finds is this one: exit 0. (Before uvicorn takes
    SIGTERM over, it ends the start-up just as promptly.)"""
    signal.signal(signal.SIGTERM, _stop_with_success)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    if refusal := _plain_http_refusal(args):
        print(f"ehass: {refusal}", file=sys.stderr)
        return 2
    if bool(args.ssl_certfile) != bool(args.ssl_keyfile):
        print("ehass: --ssl-certfile and --ssl-keyfile go together", file=sys.stderr)
        return 2
    settings = get_settings()
    forwarded = settings.forwarded_allow_ips
    if args.workers > 1:
        _prepare_multiprocess_metrics()
    from ehass.metrics import start_metrics_server  # after PROMETHEUS_MULTIPROC_DIR is set

    start_metrics_server(settings)
    _limit_malloc_arenas()
    _exit_zero_after_sigterm()
    uvicorn.run(
        "ehass.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        server_header=False,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
        proxy_headers=forwarded is not None,
        forwarded_allow_ips=forwarded,
        timeout_keep_alive=5,
        # Beyond this many open connections and tasks per process, answer 503 at once
        # rather than queue without bound (slow or idle clients cannot pile up forever).
        limit_concurrency=1000,
        backlog=2048,
        timeout_graceful_shutdown=20,
        log_level="warning",
    )
    return 0


def _worker(args: argparse.Namespace) -> int:
    import uvloop

    from ehass.logging import configure_logging
    from ehass.metrics import start_metrics_server
    from ehass.notifications.worker import run_standalone

    settings = get_settings()
    configure_logging(json=settings.json_logs, level=settings.log_level)
    start_metrics_server(settings)
    return uvloop.run(run_standalone(settings))


def _db_upgrade(args: argparse.Namespace) -> int:
    from ehass.migrate import upgrade

    upgrade(get_settings().database_url)
    print("database is at the latest revision")
    return 0


def _create_admin(args: argparse.Namespace) -> int:
    from ehass.seed import create_admin

    if not args.password_stdin:
        print("give the password on standard input with --password-stdin", file=sys.stderr)
        return 2
    password = sys.stdin.readline().rstrip("\r\n")
    return asyncio.run(create_admin(get_settings(), args.email, args.name, password))


def _seed_demo(args: argparse.Namespace) -> int:
    from ehass.seed import seed_demo

    return asyncio.run(seed_demo(get_settings()))


def _audit_verify(args: argparse.Namespace) -> int:
    from ehass.seed import verify_audit

    return asyncio.run(verify_audit(get_settings(), checkpoint_file=args.checkpoint))


def _audit_checkpoint(args: argparse.Namespace) -> int:
    from ehass.seed import print_checkpoint

    return asyncio.run(print_checkpoint(get_settings()))


def _keys_rotate(args: argparse.Namespace) -> int:
    from ehass.seed import rotate_keys

    return asyncio.run(rotate_keys(get_settings(), batch_size=args.batch_size))


def _backup(args: argparse.Namespace) -> int:
    from ehass.backup import BackupError, backup_sqlite

    try:
        result = backup_sqlite(
            get_settings().database_url, args.dest, progress=True, overwrite=args.overwrite
        )
    except BackupError as exc:
        print(f"ehass: {exc}", file=sys.stderr)
        return 1
    print(result.describe())
    return 0


def _restore(args: argparse.Namespace) -> int:
    from ehass.backup import BackupError, restore_sqlite

    try:
        result = restore_sqlite(
            args.src, get_settings().database_url, overwrite=args.overwrite, progress=True
        )
    except BackupError as exc:
        print(f"ehass: {exc}", file=sys.stderr)
        return 1
    print(result.describe())
    if not result.at_head:
        print("the schema is older than this version: run `ehass db upgrade` next")
    if not result.ok:
        print(
            f"ehass: restored, but the audit trail is BROKEN at entry {result.first_bad_id} "
            f"({result.checked} entries checked)",
            file=sys.stderr,
        )
        return 1
    print(f"audit trail intact: {result.checked} entries verified")
    return 0


def _openapi(args: argparse.Namespace) -> int:
    from ehass.openapi import export_yaml

    sys.stdout.write(export_yaml())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ehass", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--ssl-certfile", type=Path)
    serve.add_argument("--ssl-keyfile", type=Path)
    serve.set_defaults(handler=_serve)

    worker = commands.add_parser(
        "worker", help="deliver notifications and reminders (run as many as you like)"
    )
    worker.set_defaults(handler=_worker)

    db = commands.add_parser("db", help="database schema").add_subparsers(
        dest="db_command", required=True
    )
    db.add_parser("upgrade", help="apply migrations").set_defaults(handler=_db_upgrade)

    admin = commands.add_parser("create-admin", help="create an administrator")
    admin.add_argument("--email", required=True)
    admin.add_argument("--name", required=True)
    admin.add_argument("--password-stdin", action="store_true")
    admin.set_defaults(handler=_create_admin)

    seed = commands.add_parser("seed-demo", help="load demo doctors, patients and availability")
    seed.set_defaults(handler=_seed_demo)
    audit = commands.add_parser("audit", help="the audit trail").add_subparsers(
        dest="audit_command", required=True
    )
    verify = audit.add_parser(
        "verify",
        help="seal what is committed, recompute the hash chain and check the latest signed "
        "checkpoint; exit 1 when anything fails",
    )
    verify.add_argument(
        "--checkpoint",
        type=Path,
        metavar="FILE",
        help="also prove that this exported checkpoint (JSON) still matches the database",
    )
    verify.set_defaults(handler=_audit_verify)
    audit.add_parser(
        "checkpoint",
        help="print the latest signed checkpoint as JSON, for export to a write-once store",
    ).set_defaults(handler=_audit_checkpoint)

    keys = commands.add_parser("keys", help="field-encryption keys").add_subparsers(
        dest="keys_command", required=True
    )
    rotate = keys.add_parser(
        "rotate", help="re-encrypt every encrypted value under the newest EHASS_ENCRYPTION_KEYS key"
    )
    rotate.add_argument("--batch-size", type=int, default=500)
    rotate.set_defaults(handler=_keys_rotate)

    backup = commands.add_parser("backup", help="copy the SQLite database to DEST, consistently")
    backup.add_argument("dest", type=Path, metavar="DEST")
    backup.add_argument("--overwrite", action="store_true", help="replace DEST if it exists")
    backup.set_defaults(handler=_backup)
    restore = commands.add_parser(
        "restore",
        help="replace the SQLite database with the backup SRC, then verify its audit trail",
    )
    restore.add_argument("src", type=Path, metavar="SRC")
    restore.add_argument("--overwrite", action="store_true", help="replace an existing database")
    restore.set_defaults(handler=_restore)

    openapi = commands.add_parser("openapi", help="print the OpenAPI document as YAML")
    openapi.set_defaults(handler=_openapi)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        get_settings()
    except (ValidationError, ValueError) as exc:
        print(f"ehass: invalid settings: {_settings_problem(exc)}", file=sys.stderr)
        return 2
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return 130


def _settings_problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
    return str(exc)


if __name__ == "__main__":
    raise SystemExit(main())
