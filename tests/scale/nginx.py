"""nginx in front of local app processes, configured from the production example itself.

deploy/nginx.conf is what operators copy; the scale tests run that very file, not a copy of
its directives, so a change there is tested here. Three things differ, rewritten below:
the upstream servers (the local app ports, with the example's own parameters), the listen
address (plain HTTP on a free loopback port: TLS is the front's business, not the apps'),
and the port-80 server that only redirects to HTTPS (dropped). A rewrite that no longer
finds what it expects fails loudly rather than testing something else.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from pathlib import Path

PRODUCTION_CONF = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf"

_UPSTREAM_SERVER = re.compile(r"(?P<indent>[ \t]*)server\s+\S+(?P<params>[^;]*);")
_LISTEN = re.compile(r"^(\s*)listen\s[^;]*;", re.MULTILINE)
# Only TLS concerns of the front: certificates and protocols, and HTTP/2 (offered by ALPN).
_TLS_ONLY = re.compile(r"^\s*(ssl_\w+|http2)\s[^;]*;[^\n]*\n", re.MULTILINE)


class NginxConfigError(ValueError):
    """deploy/nginx.conf no longer has the shape these rewrites expect."""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if Path(p).is_file()), None
    )


def fail_timeout_seconds() -> float:
    """How long nginx leaves an upstream server alone after `max_fails` failures before it
    tries it again (`fail_timeout`, whole seconds here; nginx's default is 10 s)."""
    found = re.search(r"\bfail_timeout=(\d+)s?\b", PRODUCTION_CONF.read_text())
    return float(found[1]) if found else 10.0


def _top_level_blocks(text: str) -> list[str]:
    """The file's top-level statements and `name { ... }` blocks, comments kept with the
    block they precede. Braces in comments are ignored; the example has no quoted braces."""
    blocks: list[str] = []
    current: list[str] = []
    depth = 0
    for line in text.splitlines(keepends=True):
        code = line.split("#", 1)[0]
        current.append(line)
        depth += code.count("{") - code.count("}")
        if depth < 0:
            raise NginxConfigError(f"{PRODUCTION_CONF}: unbalanced braces")
        if depth == 0 and code.strip().endswith(("}", ";")):
            blocks.append("".join(current))
            current = []
    if depth:
        raise NginxConfigError(f"{PRODUCTION_CONF}: unbalanced braces")
    return blocks


def _header(block: str) -> str:
    """The block's first line of code: `upstream ehass {`, `server {`."""
    for line in block.splitlines():
        code = line.split("#", 1)[0].strip()
        if code:
            return code
    return ""


def _local_upstream(block: str, app_ports: Sequence[int]) -> str:
    """The upstream with the local apps in place of the listed servers, each with the
    parameters the example gives its first server (max_fails, fail_timeout...)."""
    lines: list[str] = []
    replaced = False
    for line in block.splitlines(keepends=True):
        server = _UPSTREAM_SERVER.match(line)
        if server is None:
            lines.append(line)
        elif not replaced:
            lines.extend(
                f"{server['indent']}server 127.0.0.1:{port}{server['params']};\n"
                for port in app_ports
            )
            replaced = True
    if not replaced:
        raise NginxConfigError(f"{PRODUCTION_CONF}: the upstream lists no server")
    return "".join(lines)


def _local_server(block: str, port: int) -> str:
    if len(_LISTEN.findall(block)) != 1:
        raise NginxConfigError(f"{PRODUCTION_CONF}: expected one `listen` in the TLS server")
    block = _LISTEN.sub(lambda m: f"{m[1]}listen 127.0.0.1:{port};", block)
    return _TLS_ONLY.sub("", block)


def site_conf(port: int, app_ports: Sequence[int]) -> str:
    """deploy/nginx.conf for these local ports: what goes inside `http {}`."""
    kept: list[str] = []
    upstreams = servers = 0
    for block in _top_level_blocks(PRODUCTION_CONF.read_text()):
        header = _header(block)
        if header.startswith("upstream"):
            kept.append(_local_upstream(block, app_ports))
            upstreams += 1
        elif header.startswith("server"):
            if re.search(r"^\s*return\s+30[18]\s", block, re.MULTILINE):
                continue  # the redirect to HTTPS
            if not re.search(r"^\s*listen\s[^;]*\bssl\b", block, re.MULTILINE):
                raise NginxConfigError(f"{PRODUCTION_CONF}: a server that is neither TLS nor 301")
            kept.append(_local_server(block, port))
            servers += 1
        else:
            kept.append(block)
    if (upstreams, servers) != (1, 1):
        raise NginxConfigError(
            f"{PRODUCTION_CONF}: expected one upstream and one TLS server, "
            f"found {upstreams} and {servers}"
        )
    return "".join(kept)


def main_conf(prefix: Path) -> str:
    """The frame around the site config, as a distribution's /etc/nginx/nginx.conf would
    be, but in `prefix`, in the foreground, with an access log that names the upstream."""
    return f"""daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log notice;
events {{ worker_connections 1024; }}
http {{
    log_format upstream '$remote_addr "$request" $status $request_time '
                        'upstream=$upstream_addr $upstream_status $upstream_response_time';
    access_log {prefix}/access.log upstream;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/ehass.conf;
}}
"""


def write_conf(prefix: Path, port: int, app_ports: Sequence[int]) -> Path:
    """Writes nginx.conf and the ehass.conf it includes into `prefix`; returns nginx.conf."""
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "ehass.conf").write_text(site_conf(port, app_ports))
    conf = prefix / "nginx.conf"
    conf.write_text(main_conf(prefix))
    return conf
