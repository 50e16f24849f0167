"""The compose stack: what runs, in which order, how it stops, and nginx in front."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from ehass.config import Settings
from tests.deployments.support import (
    COMPOSE_FILE,
    DEPLOYMENTS,
    NGINX_CONFIGS,
    ROOT,
    compose_services,
    duration_seconds,
    nginx_config,
    parse_duration,
    service_command,
    services_running,
    uvicorn_option,
)

NGINX_CONF = DEPLOYMENTS / "nginx" / "ehass.conf"


def only(services: dict) -> tuple[str, dict]:
    assert len(services) == 1, sorted(services)
    return next(iter(services.items()))


def test_three_app_replicas_one_worker_and_a_migration():
    _, app = only(services_running("ehass", "serve"))
    assert app["deploy"]["replicas"] == 3
    only(services_running("ehass", "worker"))
    only(services_running("ehass", "db", "upgrade"))


def test_apps_and_worker_start_after_the_migration_succeeded():
    migrate, migration = only(services_running("ehass", "db", "upgrade"))
    assert migration.get("restart") == "no"
    for name in {*services_running("ehass", "serve"), *services_running("ehass", "worker")}:
        condition = compose_services()[name]["depends_on"][migrate]["condition"]
        assert condition == "service_completed_successfully", name


@pytest.mark.parametrize("name", sorted(compose_services()))
def test_every_long_running_service_has_a_healthcheck_and_restarts(name):
    service = compose_services()[name]
    if service.get("restart") == "no":
        assert service_command(service)[:3] == ["ehass", "db", "upgrade"], "only the one-shot"
        return
    assert service.get("restart") in {"always", "unless-stopped", "on-failure"}, name
    check = service.get("healthcheck", {})
    assert check.get("test") and not check.get("disable"), name


def test_apps_outlast_uvicorns_graceful_shutdown():
    graceful = uvicorn_option("timeout_graceful_shutdown")
    _, app = only(services_running("ehass", "serve"))
    assert parse_duration(app["stop_grace_period"]) > graceful


def test_the_worker_outlasts_one_smtp_exchange():
    smtp = Settings.model_fields["smtp_timeout_seconds"].default
    _, worker = only(services_running("ehass", "worker"))
    assert parse_duration(worker["stop_grace_period"]) > smtp


def _nginx_service() -> tuple[str, dict]:
    return only({n: s for n, s in compose_services().items() if "nginx" in s["image"]})


def _mounts(service: dict) -> dict[str, str]:
    """container path -> host path (relative to deployments/) of the bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        mounts[target] = source
    return mounts


def test_nginx_runs_this_repositorys_config_with_tls_from_mounted_files():
    _, nginx = _nginx_service()
    mounts = _mounts(nginx)
    assert (COMPOSE_FILE.parent / mounts["/etc/nginx/conf.d/default.conf"]).resolve() == NGINX_CONF
    config = nginx_config(NGINX_CONF)
    (tls_server,) = [s for s in config.find("server") if "ssl" in (s.value("listen") or [])]
    for directive in ("ssl_certificate", "ssl_certificate_key"):
        (path,) = tls_server.value(directive)
        assert path in mounts, f"{directive} {path} is not mounted"
        # Key material stays out of the repository.
        assert mounts[path].startswith("./tls/"), mounts[path]
    tls_port = tls_server.value("listen")[0]
    assert any(p.endswith(f":{tls_port}") for p in nginx["ports"]), nginx["ports"]


def test_nginx_balances_over_the_app_service():
    app_name, _ = only(services_running("ehass", "serve"))
    (upstream,) = nginx_config(NGINX_CONF).find("upstream")
    servers = [d.args for d in upstream.children if d.name == "server"]
    # One name for all the replicas, re-resolved as they are recreated.
    assert servers and all(s[0] == f"{app_name}:8000" and "resolve" in s for s in servers)
    assert upstream.value("keepalive")


@pytest.mark.parametrize("path", NGINX_CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_nginx_never_reuses_a_connection_the_app_is_closing(path):
    (upstream,) = nginx_config(path).find("upstream")
    (timeout,) = upstream.value("keepalive_timeout")
    assert duration_seconds(timeout) < uvicorn_option("timeout_keep_alive")


@pytest.mark.parametrize("path", NGINX_CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_nginx_never_replays_a_request_on_another_app(path):
    values = [d.args for d in nginx_config(path).find("proxy_next_upstream")]
    assert values == [["error"]]


def test_the_nginx_healthcheck_asks_nginx_itself():
    _, nginx = _nginx_service()
    (url,) = [word for word in nginx["healthcheck"]["test"] if word.startswith("http")]
    parts = urlsplit(url)
    (server,) = [
        s for s in nginx_config(NGINX_CONF).find("server") if s.value("listen") == [str(parts.port)]
    ]
    (location,) = [loc for loc in server.find("location") if loc.args == ["=", parts.path]]
    assert location.value("return")[0] == "200"
