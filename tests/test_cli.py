"""The `ehass` command, run as a real process against a fresh SQLite file."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

SECRET = "cli-test-secret-that-is-long-enough-0123456789"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("EHASS_")},
        "EHASS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
        "EHASS_SECRET_KEY": SECRET,
    }


def ehass(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ehass.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_upgrade_create_admin_and_seed_demo(env):
    upgraded = ehass(env, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr

    created = ehass(
        env,
        "create-admin",
        "--email",
        "Root@Example.org",
        "--name",
        "Root",
        "--password-stdin",
        stdin="a long admin passphrase\n",
    )
    assert created.returncode == 0, created.stderr
    assert "root@example.org" in created.stdout
    assert "a long admin passphrase" not in created.stdout + created.stderr

    again = ehass(
        env,
        "create-admin",
        "--email",
        "root@example.org",
        "--name",
        "Root",
        "--password-stdin",
        stdin="a long admin passphrase\n",
    )
    assert again.returncode == 1 and "already exists" in again.stderr

    weak = ehass(
        env,
        "create-admin",
        "--email",
        "b@example.org",
        "--name",
        "B",
        "--password-stdin",
        stdin="password\n",
    )
    assert weak.returncode == 1 and "at least 10" in weak.stderr

    first = ehass(env, "seed-demo")
    assert first.returncode == 0, first.stderr
    assert "accounts created" in first.stdout
    # Demo accounts and administrators are verified and sent no verification mail, so the
    # demo books even with EHASS_REQUIRE_VERIFIED_EMAIL on.
    with closing(sqlite3.connect(env["EHASS_DATABASE_URL"].split("///", 1)[1])) as db:
        assert db.execute("SELECT count(*) FROM users WHERE email_verified = 0").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM notifications").fetchone() == (0,)
    second = ehass(env, "seed-demo")
    assert second.returncode == 0, second.stderr
    assert "already present" in second.stdout


def test_production_refuses_to_start_with_the_default_secret(env):
    env = {**env, "EHASS_ENV": "production"}
    env.pop("EHASS_SECRET_KEY")
    result = ehass(env, "serve", "--port", "1")
    assert result.returncode == 2
    assert "EHASS_SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_openapi_command_prints_the_document(env):
    result = ehass(env, "openapi")
    assert result.returncode == 0
    assert result.stdout.startswith("openapi: 3.")


def test_audit_verify_reports_an_intact_chain(env):
    assert ehass(env, "db", "upgrade").returncode == 0
    result = ehass(env, "audit", "verify")
    assert result.returncode == 0, result.stderr
    assert "intact" in result.stdout


def test_audit_checkpoint_exports_what_verify_later_proves(env, tmp_path):
    import json

    assert ehass(env, "db", "upgrade").returncode == 0
    empty = ehass(env, "audit", "checkpoint")
    assert empty.returncode == 1 and "nothing to sign" in empty.stderr
    assert ehass(env, "seed-demo").returncode == 0  # audited: accounts and hours
    exported = ehass(env, "audit", "checkpoint")
    assert exported.returncode == 0, exported.stderr
    signed = json.loads(exported.stdout)
    assert set(signed) == {
        "tree_size",
        "root_hash",
        "timestamp",
        "key_id",
        "signature",
        "public_key",
    }
    assert signed["tree_size"] > 0
    assert SECRET not in exported.stdout + exported.stderr
    path = tmp_path / "checkpoint.json"
    path.write_text(exported.stdout)
    proved = ehass(env, "audit", "verify", "--checkpoint", str(path))
    assert proved.returncode == 0, proved.stderr
    assert f"exported checkpoint at tree size {signed['tree_size']}" in proved.stdout

    path.write_text("{not json")
    bad = ehass(env, "audit", "verify", "--checkpoint", str(path))
    assert bad.returncode == 1 and "is not JSON" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_keys_rotate_reencrypts_with_a_progress_bar(env):
    import base64

    def key(kid: str) -> str:
        return f"{kid}:" + base64.urlsafe_b64encode(kid.encode() * (32 // len(kid))).decode()

    env = {**env, "EHASS_ENCRYPTION_KEYS": key("aa")}
    assert ehass(env, "db", "upgrade").returncode == 0
    assert ehass(env, "seed-demo").returncode == 0
    rotated = ehass({**env, "EHASS_ENCRYPTION_KEYS": f"{key('bb')},{key('aa')}"}, "keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    assert "3 values re-encrypted under key 'bb'" in rotated.stdout
    assert "patients.date_of_birth" in rotated.stderr and "100%" in rotated.stderr
    again = ehass({**env, "EHASS_ENCRYPTION_KEYS": key("bb")}, "keys", "rotate")
    assert again.returncode == 0 and "0 values re-encrypted" in again.stdout


def test_serve_gives_its_worker_processes_one_malloc_arena(monkeypatch):
    # argon2id's 19 MiB per hash would otherwise stay in every hashing thread's arena.
    from ehass import cli

    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    cli._limit_malloc_arenas()
    assert os.environ["MALLOC_ARENA_MAX"] == "1"


def test_importing_the_app_leaves_the_tracing_sdk_unloaded(env):
    # Tracing is off unless configured; its SDK and instrumentations cost every process.
    # (redis-py loads OpenTelemetry's metrics SDK by itself; that is not ours to avoid.)
    probe = (
        "import sys, ehass.main; "
        "print(sorted(m for m in sys.modules if m.startswith(("
        "'opentelemetry.sdk.trace', 'opentelemetry.instrumentation'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


async def test_serve_exits_0_after_a_graceful_stop_on_sigterm(env, tmp_path):
    """uvicorn would end a drained stop "killed by SIGTERM" (143); a supervisor must see a
    clean exit. (tests/scale checks that requests in flight are answered first.)"""
    from tests.servers import running_servers, wait_ready

    assert ehass(env, "db", "upgrade").returncode == 0
    with running_servers(1, env=env, log_dir=tmp_path) as (server,):
        await wait_ready(server)
        server.process.terminate()
        assert server.process.wait(timeout=30) == 0, server.log_tail()
