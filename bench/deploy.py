"""The local deployment under test: database, `ehass serve` processes, nginx in front.

Everything here talks to 127.0.0.1 only, and everything it starts runs in a process group
of its own so `stop()` takes its children down with it.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
EHASS = str(VENV_BIN / "ehass") if (VENV_BIN / "ehass").exists() else "ehass"
DB_NAME = "ehass_bench"
DB_URL = f"mysql+asyncmy://root@127.0.0.1:3306/{DB_NAME}"
# Redis db 7 is the bench's; a per-run key prefix keeps two runs apart as well.
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_env() -> dict[str, str]:
    """Production settings with throwaway secrets; rate limits off (one client address)."""
    env = {
        **os.environ,
        "EHASS_DATABASE_URL": DB_URL,
        "EHASS_REDIS_URL": REDIS_URL,
        "EHASS_REDIS_KEY_PREFIX": f"ehass-bench-{secrets.token_hex(4)}",
        "EHASS_SECRET_KEY": secrets.token_urlsafe(48),
        "EHASS_ENCRYPTION_KEYS": "bench1:" + base64.b64encode(os.urandom(32)).decode(),
        "EHASS_AUDIT_SIGNING_KEY": base64.b64encode(os.urandom(32)).decode(),
        "EHASS_ENV": "production",
        "EHASS_RATE_LIMIT_ENABLED": "false",
        "EHASS_LOG_LEVEL": "WARNING",
        "EHASS_FORWARDED_ALLOW_IPS": "127.0.0.1",
    }
    env.pop("EHASS_CONFIG_FILE", None)
    env.pop("EHASS_OTEL_ENDPOINT", None)
    return env


# --------------------------------------------------------------------------- database
async def _root_execute(*statements: str) -> None:
    import asyncmy

    conn = await asyncmy.connect(host="127.0.0.1", port=3306, user="root", password="")
    try:
        async with conn.cursor() as cur:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the notes IF [NOT] EXISTS raises
                for statement in statements:
                    await cur.execute(statement)
    finally:
        conn.close()


async def recreate_database() -> None:
    await _root_execute(
        f"DROP DATABASE IF EXISTS {DB_NAME}",
        f"CREATE DATABASE {DB_NAME} CHARACTER SET utf8mb4",
    )


async def drop_database() -> None:
    await _root_execute(f"DROP DATABASE IF EXISTS {DB_NAME}")


def upgrade_schema(env: dict[str, str]) -> None:
    up = subprocess.run([EHASS, "db", "upgrade"], env=env, cwd=ROOT, capture_output=True, text=True)
    if up.returncode:
        sys.stderr.write(up.stdout + up.stderr)
        raise RuntimeError("ehass db upgrade failed")


async def clear_redis(prefix: str) -> None:
    """Deletes the run's keys (cached session states expire anyway; this leaves nothing)."""
    import redis.asyncio as redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


# --------------------------------------------------------------------------- processes
def spawn(cmd: list[str], env: dict[str, str], logfile: Path) -> subprocess.Popen:
    out = open(logfile, "wb")  # noqa: SIM115 - the child keeps it; closed with the process
    return subprocess.Popen(
        cmd,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=logfile.parent,
        start_new_session=True,
    )


def start_apps(n: int, env: dict[str, str], tmp: Path) -> list[tuple[int, subprocess.Popen]]:
    apps = []
    for i in range(n):
        port = free_port()
        cmd = [EHASS, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        apps.append((port, spawn(cmd, env, tmp / f"app{i}.log")))
    return apps


def start_worker(env: dict[str, str], tmp: Path) -> subprocess.Popen:
    """One `ehass worker`, as a deployment runs: it delivers the outbox (to its log, with no
    SMTP) and seals the audit entries the requests append, so its CPU is in the bill."""
    return spawn([EHASS, "worker"], env, tmp / "worker.log")


def start_ceiling_apps(n: int, tmp: Path) -> list[tuple[int, subprocess.Popen]]:
    script = str(Path(__file__).with_name("ceiling_app.py"))
    apps = []
    for i in range(n):
        port = free_port()
        cmd = [sys.executable, script, "--port", str(port), "--database", DB_NAME]
        apps.append((port, spawn(cmd, dict(os.environ), tmp / f"ceiling{i}.log")))
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


def stop(p: subprocess.Popen) -> None:
    if p.poll() is not None:
        return
    try:
        os.killpg(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


# --------------------------------------------------------------------------- nginx
def ensure_nginx() -> str:
    """The nginx binary, installed from Debian when missing; raises when that fails."""
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found:
        return found
    log("nginx missing: apt-get install -y nginx")
    try:
        subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", "nginx"],
            check=True,
            capture_output=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            timeout=600,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise RuntimeError(
            f"nginx is needed as the load balancer and could not be installed ({exc}); "
            "install it (`apt-get install -y nginx`) or pass --no-nginx"
        ) from exc
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(found).exists():
        raise RuntimeError("apt-get installed nginx but no nginx binary was found")
    return found


def _upstream(name: str, ports: list[int]) -> str:
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=0;" for p in ports)
    # Idle keep-alive connections to the apps: enough for the generator's connections, so a
    # request never pays for a new upstream connection.
    return f"""    upstream {name} {{
{servers}
        keepalive 256;
        keepalive_requests 100000;
        # Shorter than the app's own keep-alive (uvicorn closes idle connections after
        # 5 s): nginx must never send a request on a connection the app is closing, since a
        # POST that fails that way is answered 502, not retried.
        keepalive_timeout 4s;
    }}"""


def nginx_conf(prefix: Path, port: int, app_ports: list[int], ceiling_ports: list[int]) -> str:
    """One worker (the machine has 2 cores to share with the apps, MariaDB and the generator).

    Timeouts are those of a production front: a client that stalls while sending its
    body or reading the answer is dropped after 10 s, an idle keep-alive client after 30 s;
    an app that does not answer within 30 s gets a 504 (the bench counts it as a 5xx).
    """
    ceiling = ""
    if ceiling_ports:
        ceiling = _upstream("ceiling", ceiling_ports)
    ceiling_location = (
        """        location /ceiling/ {
            proxy_pass http://ceiling;
        }
"""
        if ceiling_ports
        else ""
    )
    return f"""
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
worker_rlimit_nofile 16384;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    server_tokens off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;

    client_header_timeout 10s;
    client_body_timeout 10s;
    send_timeout 10s;
    client_max_body_size 1m;
    keepalive_timeout 30s;
    keepalive_requests 100000;

    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $remote_addr;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_connect_timeout 2s;
    proxy_send_timeout 10s;
    proxy_read_timeout 30s;
    # A request the app has not answered is not retried on the other app: a booking must
    # not be sent twice. Only a refused connection moves on.
    proxy_next_upstream error;
    proxy_buffering on;
    proxy_buffers 16 16k;
    proxy_buffer_size 16k;

{_upstream("ehass", app_ports)}
{ceiling}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://ehass;
        }}
{ceiling_location}    }}
}}
"""


def start_nginx(
    nginx: str, app_ports: list[int], ceiling_ports: list[int], tmp: Path
) -> tuple[int, subprocess.Popen]:
    port = free_port()
    prefix = tmp / "nginx"
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    conf_file = prefix / "nginx.conf"
    conf_file.write_text(nginx_conf(prefix, port, app_ports, ceiling_ports))
    check = subprocess.run(
        [nginx, "-t", "-p", str(prefix), "-c", str(conf_file)], capture_output=True, text=True
    )
    if check.returncode:
        raise RuntimeError(f"nginx refused its config: {check.stderr.strip()}")
    p = spawn([nginx, "-p", str(prefix), "-c", str(conf_file)], dict(os.environ), tmp / "nginx.out")
    return port, p


def mariadb_pid() -> int | None:
    """The database server listening on 3306, watched for context."""
    try:
        ss = subprocess.run(["ss", "-Hltnp", "sport = :3306"], capture_output=True, text=True)
        if "pid=" in ss.stdout:
            return int(ss.stdout.split("pid=", 1)[1].split(",", 1)[0])
    except (OSError, ValueError):
        pass
    return None
