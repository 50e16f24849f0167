"""The deployment files name settings, commands and paths that the code really has."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest

from ehass.cli import build_parser
from ehass.config import Settings
from ehass.main import create_app
from ehass.routes import _routes_with_templates
from tests.deployments.support import (
    DEPLOYMENTS,
    ROOT,
    compose_services,
    container_argv,
    container_env,
    dockerfile,
    ehass_services,
    final_stage,
    k8s_containers,
    nginx_config,
    service_command,
    setting_names,
)


@pytest.fixture(scope="module")
def app_paths(settings: Settings) -> set[str]:
    """The path templates the app serves (API, operations and web pages), prefixes
    included, however this FastAPI version keeps included routers."""
    app = create_app(settings)
    return {template for _, template in _routes_with_templates(app.routes)}


def deployment_files() -> list:
    return [p for p in sorted(DEPLOYMENTS.rglob("*")) if p.is_file()]


def test_every_ehass_variable_is_a_setting():
    known = setting_names()
    unknown = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in deployment_files()
        for name in re.findall(r"\bEHASS_[A-Z0-9_]+\b", path.read_text())
        if name not in known
    }
    assert not unknown, f"not settings of ehass.config.Settings: {sorted(unknown)}"


def commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of every EHASS command the deployment runs."""
    found = [("Dockerfile CMD", i.exec_form()) for i in final_stage() if i.keyword == "CMD"]
    found += [(f"compose {n}", service_command(s)) for n, s in ehass_services().items()]
    found += [(f"k8s {w['metadata']['name']}", container_argv(c)) for w, c in k8s_containers()]
    return found


def test_every_command_is_one_the_cli_parses():
    parser = build_parser()
    used = set()
    for where, argv in commands():
        assert argv[:1] == ["ehass"], f"{where}: {argv}"
        try:
            args = parser.parse_args(argv[1:])
        except SystemExit:
            pytest.fail(f"{where}: `ehass` does not accept {argv[1:]}")
        used.add(" ".join(filter(None, [args.command, getattr(args, "db_command", None)])))
    assert used == {"serve", "worker", "db upgrade"}


def _environment_of_serve_containers() -> list[tuple[str, dict[str, Any]]]:
    envs = [
        (f"compose {name}", service.get("environment", {}))
        for name, service in ehass_services().items()
        if service_command(service)[:2] == ["ehass", "serve"]
    ]
    envs += [
        (f"k8s {w['metadata']['name']}", container_env(c))
        for w, c in k8s_containers()
        if container_argv(c)[:2] == ["ehass", "serve"]
    ]
    return envs


def test_production_serve_on_all_addresses_names_the_proxy_it_trusts():
    # cli.py refuses plain HTTP on a non-loopback address in production unless the proxy
    # in front is named: without it every app container would exit 2 at start.
    envs = _environment_of_serve_containers()
    assert envs
    for where, env in envs:
        assert "EHASS_FORWARDED_ALLOW_IPS" in env, where


def _url_checks() -> list[tuple[str, str]]:
    """(where, URL) of every healthcheck of an EHASS container that asks over HTTP."""
    found = []
    for instruction in final_stage():
        if instruction.keyword == "HEALTHCHECK":
            found.append(("Dockerfile HEALTHCHECK", " ".join(instruction.exec_form())))
    for name, service in ehass_services().items():
        test = service.get("healthcheck", {}).get("test")
        if test:
            found.append((f"compose {name}", " ".join(test)))
    for workload, container in k8s_containers():
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            if command := container.get(probe, {}).get("exec", {}).get("command"):
                found.append((f"k8s {workload['metadata']['name']} {probe}", " ".join(command)))
    return [
        (where, url)
        for where, text in found
        for url in re.findall(r"https?://127\.0\.0\.1:\d+/[^\s'\"]*", text)
    ]


def _serve_port() -> int:
    (cmd,) = [i.exec_form() for i in final_stage() if i.keyword == "CMD"]
    return int(cmd[cmd.index("--port") + 1])


def test_the_image_exposes_the_port_it_serves_and_checks():
    exposed = {int(i.arguments.split("/")[0]) for i in dockerfile() if i.keyword == "EXPOSE"}
    assert exposed == {_serve_port()}


def test_healthchecks_ask_paths_the_app_serves_or_the_metrics_port(app_paths):
    metrics_ports = {
        str(env["EHASS_METRICS_PORT"])
        for env in [s.get("environment", {}) for s in compose_services().values()]
        if "EHASS_METRICS_PORT" in env
    } | {
        container_env(c)["EHASS_METRICS_PORT"]["value"]
        for _, c in k8s_containers()
        if "EHASS_METRICS_PORT" in container_env(c)
    }
    checks = _url_checks()
    assert len(checks) >= 4, checks  # image, compose app and worker, k8s worker
    for where, url in checks:
        parts = urlsplit(url)
        if parts.port == _serve_port():
            assert parts.path in app_paths, f"{where}: the app has no {parts.path}"
        else:
            # prometheus_client's server on EHASS_METRICS_PORT answers on any path.
            assert str(parts.port) in metrics_ports, f"{where}: nothing listens on {url}"


def test_kubernetes_probes_ask_paths_the_app_serves(app_paths):
    probed = set()
    for workload, container in k8s_containers():
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            if get := container.get(probe, {}).get("httpGet"):
                where = f"{workload['metadata']['name']} {probe}"
                assert get["path"] in app_paths, f"{where}: the app has no {get['path']}"
                assert get["port"] in ports or get["port"] in ports.values(), where
                probed.add(get["path"])
    assert probed == {"/healthz", "/readyz"}


def test_the_live_updates_route_gets_the_unbuffered_location(app_paths):
    (live,) = [p for p in app_paths if re.fullmatch(r"/doctors/\{\w+\}/live", p)]
    example = re.sub(r"\{\w+\}", "42", live)
    for path in (DEPLOYMENTS / "nginx" / "ehass.conf", ROOT / "deploy" / "nginx.conf"):
        locations = [
            loc
            for loc in nginx_config(path).find("location")
            if loc.args[0] == "~" and re.search(loc.args[1], example)
        ]
        assert len(locations) == 1, f"{path.name}: no regex location matches {example}"
        assert locations[0].value("proxy_buffering") == ["off"], path.name
