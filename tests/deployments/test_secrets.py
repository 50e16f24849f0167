"""No secret is written into the deployment files: compose takes them from its env file
(refusing to start without them), Kubernetes from a Secret that is not shipped."""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from ehass.config import Settings
from tests.conftest import TEST_AUDIT_SIGNING_KEY, TEST_ENCRYPTION_KEYS
from tests.deployments.support import (
    DEPLOYMENTS,
    INTERPOLATION,
    ROOT,
    compose_services,
    container_env,
    k8s_containers,
    k8s_objects,
    secret_setting_names,
)

# Names that say "secret" whatever program reads them (MARIADB_ROOT_PASSWORD, ...).
SECRET_LOOKING_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|(?<!_)KEYS?$|_KEYS?$")
# The password of a URL: a ${...} interpolation, or anything up to the @.
URL_PASSWORD = re.compile(r"://[^/:@\s]+:(\$\{[^}]*\}|[^@\s/]+)@")


def _refused_in_production(monkeypatch, **given) -> str | None:
    """The setting production names when refusing these settings, or None if it starts."""
    for name in os.environ:
        if name.startswith("EHASS_"):
            monkeypatch.delenv(name)
    try:
        Settings(env="production", _env_file=None, **given)
    except ValidationError as exc:
        return re.search(r"EHASS_\w+", str(exc)).group()
    return None


def test_the_settings_production_refuses_to_default_count_as_secrets(monkeypatch):
    secrets = secret_setting_names()
    refused = _refused_in_production(monkeypatch)
    assert refused == "EHASS_SECRET_KEY" and refused in secrets
    refused = _refused_in_production(monkeypatch, secret_key="s" * 48)
    assert refused == "EHASS_ENCRYPTION_KEYS" and refused in secrets
    keys = TEST_ENCRYPTION_KEYS
    refused = _refused_in_production(monkeypatch, secret_key="s" * 48, encryption_keys=keys)
    assert refused == "EHASS_AUDIT_SIGNING_KEY" and refused in secrets
    # A new refusal would stop here: add its setting to the secrets if it is one.
    signing = TEST_AUDIT_SIGNING_KEY
    given = {"secret_key": "s" * 48, "encryption_keys": keys, "audit_signing_key": signing}
    assert _refused_in_production(monkeypatch, **given) is None


def _is_required_interpolation(value: str) -> bool:
    match = INTERPOLATION.fullmatch(value)
    return bool(match) and match.group(2) == ":?"


@pytest.mark.parametrize("name", sorted(compose_services()))
def test_compose_secrets_come_from_the_env_file(name):
    environment = compose_services()[name].get("environment", {})
    assert isinstance(environment, dict), f"{name}: environment as a mapping, please"
    for variable, value in environment.items():
        value = str(value)
        if password := URL_PASSWORD.search(value):
            assert _is_required_interpolation(password.group(1)), f"{name} {variable}"
        elif variable in secret_setting_names() or SECRET_LOOKING_NAME.search(variable):
            assert _is_required_interpolation(value), f"{name} {variable}={value}"


def test_kubernetes_ships_no_secret_object():
    assert not [o for o in k8s_objects() if o["kind"] == "Secret"]


@pytest.mark.parametrize(
    ("workload", "container"),
    k8s_containers(),
    ids=[f"{w['metadata']['name']}/{c['name']}" for w, c in k8s_containers()],
)
def test_kubernetes_secrets_come_from_secret_refs(workload, container):
    for name, entry in container_env(container).items():
        value = str(entry.get("value", ""))
        if name in secret_setting_names() or SECRET_LOOKING_NAME.search(name):
            assert "secretKeyRef" in entry.get("valueFrom", {}), f"{name} is not from a Secret"
        assert not URL_PASSWORD.search(value), f"{name} carries a password"
    for source in container.get("envFrom", []):
        assert set(source) <= {"configMapRef", "secretRef", "prefix"}


def test_configmaps_hold_no_secret_setting():
    for config_map in [o for o in k8s_objects() if o["kind"] == "ConfigMap"]:
        names = set(config_map.get("data", {}))
        assert not names & secret_setting_names()
        assert not [n for n in names if SECRET_LOOKING_NAME.search(n)]


def test_the_env_file_templates_leave_every_value_empty():
    templates = sorted(DEPLOYMENTS.glob("*.example")) + sorted(DEPLOYMENTS.glob(".*.example"))
    assert templates
    for template in templates:
        for line in template.read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                name, _, value = line.partition("=")
                assert not value.strip(), f"{template.name}: {name} has a value"


def _files() -> list[Path]:
    return [p for p in sorted(DEPLOYMENTS.rglob("*")) if p.is_file()] + [ROOT / ".dockerignore"]


def _looks_like_a_key(token: str) -> bool:
    """32 or more random bytes in base64 (an encryption key, a token)."""
    try:
        decoded = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except ValueError:
        return False
    return len(decoded) >= 32 and len(set(token)) > 20


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_key_material_is_committed(path):
    text = path.read_text()
    assert "PRIVATE KEY-----" not in text
    tokens = re.findall(r"[A-Za-z0-9+/_-]{43,}={0,2}", text)
    # (an image digest is hex: too few distinct characters to look random here)
    assert not [t for t in tokens if _looks_like_a_key(t)], path
