"""The `ehass` command."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from ehass.config import get_settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

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
        timeout_keep_alive=5,
        timeout_graceful_shutdown=20,
        log_level="warning",
    )
    return 0


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
