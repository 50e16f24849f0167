"""The deployment files pass the linters and schema validators, run as they would be by hand."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import trustme

from tests.deployments.support import (
    COMPOSE_FILE,
    DOCKERFILE,
    NGINX_CONFIGS,
    ROOT,
    VENV_BIN,
    k8s_files,
)


def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def test_hadolint_finds_nothing_in_the_dockerfile():
    # Without a config file, any finding at all (even "info") fails the run.
    result = run(VENV_BIN / "hadolint", "--no-color", DOCKERFILE)
    assert result.returncode == 0 and not result.stdout.strip(), output(result)


def test_every_kubernetes_manifest_passes_strict_validation():
    files = k8s_files()
    assert files, "no manifests in deployments/k8s"
    result = run(VENV_BIN / "kubernetes-validate", "--strict", *files)
    assert result.returncode == 0, output(result)
    assert "WARN" not in result.stdout + result.stderr, output(result)
    # One "passed" line per resource: a file the tool skipped would not count.
    assert result.stdout.count(" passed for resource ") == len(files), output(result)


def test_the_compose_file_matches_the_compose_specification():
    result = run(
        VENV_BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", COMPOSE_FILE
    )
    assert result.returncode == 0, output(result)


def _nginx() -> tuple[str, tuple[int, ...]]:
    # Debian puts it in /usr/sbin, which is not on every user's PATH.
    binary = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if not binary:
        pytest.skip("nginx is not installed (apt-get install nginx) to check its configs")
    banner = run(binary, "-v").stderr
    version = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", banner)
    assert version, banner
    return binary, tuple(int(n) for n in version.groups())


def _for_this_nginx(text: str, version: tuple[int, ...], tls: Path) -> str:
    """The config as `nginx -t` here can read it: certificates from `tls`, the upstream on
    an address that resolves outside Docker, and, for an nginx older than the images',
    the same settings in that version's older spelling."""
    text = re.sub(r"(ssl_certificate(?:_key)?\s+)\S+/(\w+\.pem);", rf"\g<1>{tls}/\2;", text)
    text = re.sub(r"server\s+[a-z][\w.-]*:(\d+)", r"server 127.0.0.1:\1", text)
    if version < (1, 27, 3):  # `resolve` in upstream servers is open source since 1.27.3
        text = re.sub(r"(server\s+\S+)\s+resolve\b", r"\1", text)
    if version < (1, 25, 1):  # `http2 on;` replaced `listen ... http2` in 1.25.1
        text = re.sub(r"^\s*http2 on;\n", "", text, flags=re.MULTILINE)
        text = re.sub(r"(listen\s+[^;]*\bssl)\b", r"\1 http2", text)
    return text


@pytest.mark.parametrize("path", NGINX_CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_nginx_accepts_the_config(path: Path, tmp_path: Path):
    binary, version = _nginx()
    cert = trustme.CA().issue_cert("localhost")
    cert.private_key_pem.write_to_path(str(tmp_path / "privkey.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "fullchain.pem"))
    site = tmp_path / "site.conf"
    site.write_text(_for_this_nginx(path.read_text(), version, tmp_path))
    temp_paths = " ".join(
        f"{kind}_temp_path {tmp_path / kind};" for kind in ("client_body", "proxy", "fastcgi")
    )
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path / 'nginx.pid'};\nerror_log stderr;\nevents {{}}\n"
        f"http {{ {temp_paths} uwsgi_temp_path {tmp_path / 'uwsgi'}; "
        f"scgi_temp_path {tmp_path / 'scgi'}; access_log off; include {site}; }}\n"
    )
    result = run(binary, "-t", "-p", tmp_path, "-c", main)
    assert result.returncode == 0, output(result)
