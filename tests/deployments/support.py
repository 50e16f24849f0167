"""Reading the deployment files (deployments/) and what the code says they must agree with."""

from __future__ import annotations

import ast
import inspect
import json
import re
import shlex
import typing
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr

from ehass import cli, config
from ehass.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENTS = ROOT / "deployments"
DOCKERFILE = DEPLOYMENTS / "Dockerfile"
COMPOSE_FILE = DEPLOYMENTS / "docker-compose.yml"
K8S = DEPLOYMENTS / "k8s"
NGINX_CONFIGS = [DEPLOYMENTS / "nginx" / "ehass.conf", ROOT / "deploy" / "nginx.conf"]
EHASS_IMAGE = "ehass:local"  # the image docker-compose.yml builds
# The one writable path of the containers (a tmpfs or an emptyDir); no test writes there.
CONTAINER_TMP = "/tmp"  # noqa: S108
VENV_BIN = ROOT / ".venv" / "bin"

INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


# --- what the code defines -------------------------------------------------------------


def setting_names() -> set[str]:
    """Every environment variable EHASS reads: the Settings fields, and the few names
    config.py reads from the environment itself (EHASS_CONFIG_FILE)."""
    prefix = Settings.model_config["env_prefix"]
    fields = {f"{prefix}{name}".upper() for name in Settings.model_fields}
    direct = set(re.findall(r"environ\.get\(\"(EHASS_\w+)\"", inspect.getsource(config)))
    return fields | direct


def secret_setting_names() -> set[str]:
    """The settings whose values are secrets: every SecretStr field, and the database URL,
    which carries the database password (docs/operations.md, section 2)."""
    prefix = Settings.model_config["env_prefix"]
    secret = {
        f"{prefix}{name}".upper()
        for name, info in Settings.model_fields.items()
        if info.annotation is SecretStr or SecretStr in typing.get_args(info.annotation)
    }
    return secret | {f"{prefix}DATABASE_URL"}


def uvicorn_option(name: str) -> Any:
    """A keyword `ehass serve` passes to uvicorn.run (cli.py), read from the source."""
    tree = ast.parse(inspect.getsource(cli))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "run"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "uvicorn"
        ):
            for keyword in node.keywords:
                if keyword.arg == name:
                    return ast.literal_eval(keyword.value)
    raise LookupError(f"uvicorn.run in cli.py passes no {name}")


def parse_duration(value: str | int) -> float:
    """Compose durations: `30s`, `1m30s`, `1h`, `500ms`."""
    if isinstance(value, int):
        return float(value)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise ValueError(f"not a duration: {value!r}")
    return sum(float(number) * units[unit] for number, unit in parts)


# --- Dockerfile ---------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    arguments: str
    stage: int

    def exec_form(self) -> list[str]:
        """The JSON array of CMD/ENTRYPOINT/HEALTHCHECK ... CMD, refusing the shell form."""
        text = self.arguments
        if self.keyword == "HEALTHCHECK":
            text = text.split(" CMD ", 1)[1]
        return json.loads(text)


def dockerfile() -> list[Instruction]:
    """Instructions with continuation lines joined, comments dropped, numbered by stage."""
    instructions: list[Instruction] = []
    stage = -1
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += " " + stripped.removesuffix("\\").strip()
        if stripped.endswith("\\"):
            continue
        keyword, _, arguments = pending.strip().partition(" ")
        pending = ""
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(keyword.upper(), arguments.strip(), stage))
    return instructions


def final_stage() -> list[Instruction]:
    instructions = dockerfile()
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


# --- docker-compose.yml ---------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    """The compose file with its YAML anchors and merge keys resolved (read once: do not
    change what it returns)."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


def compose_services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def ehass_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose_services().items() if s.get("image") == EHASS_IMAGE}


def service_command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else list(command)


def services_running(*argv: str) -> dict[str, dict[str, Any]]:
    return {
        name: s
        for name, s in ehass_services().items()
        if service_command(s)[: len(argv)] == list(argv)
    }


# --- k8s ----------------------------------------------------------------------------------


def k8s_files() -> list[Path]:
    return sorted(K8S.glob("*.yaml"))


@cache
def k8s_objects() -> list[dict[str, Any]]:
    """Every object of the manifests (read once: do not change what it returns)."""
    return [doc for path in k8s_files() for doc in yaml.safe_load_all(path.read_text()) if doc]


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    found = [o for o in k8s_objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def k8s_workloads() -> list[dict[str, Any]]:
    return [o for o in k8s_objects() if o["kind"] in {"Deployment", "Job"}]


def k8s_containers() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, container) for every container, init containers included."""
    return [
        (workload, container)
        for workload in k8s_workloads()
        for container in [
            *pod_spec(workload).get("initContainers", []),
            *pod_spec(workload)["containers"],
        ]
    ]


def container_argv(container: dict[str, Any]) -> list[str]:
    return [*container.get("command", []), *container.get("args", [])]


def container_env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each variable a container gets, with where it comes from: the container's own
    `env` entries, and the ConfigMaps named in `envFrom` (as {"value": ...})."""
    env: dict[str, dict[str, Any]] = {}
    for source in container.get("envFrom", []):
        if ref := source.get("configMapRef"):
            data = k8s_object("ConfigMap", ref["name"]).get("data", {})
            env.update({name: {"value": value} for name, value in data.items()})
    for entry in container.get("env", []):
        env[entry["name"]] = entry
    return env


# --- nginx ----------------------------------------------------------------------------------


@dataclass
class Directive:
    name: str
    args: list[str]
    children: list[Directive] = field(default_factory=list)

    def find(self, name: str) -> list[Directive]:
        """Every directive of that name below this one, at any depth."""
        found = []
        for child in self.children:
            if child.name == name:
                found.append(child)
            found.extend(child.find(name))
        return found

    def value(self, name: str) -> list[str] | None:
        """The arguments of a direct child directive, or None."""
        for child in self.children:
            if child.name == name:
                return child.args
        return None


def nginx_config(path: Path) -> Directive:
    """A small nginx parser: directives, blocks and quoted strings, enough for our files."""
    text = "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())
    tokens = re.findall(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'|[{};]|[^\s{};]+', text)
    root = Directive("", [])
    stack = [root]
    words: list[str] = []
    for token in tokens:
        if token == ";":
            stack[-1].children.append(Directive(words[0], words[1:]))
            words = []
        elif token == "{":
            block = Directive(words[0], words[1:])
            stack[-1].children.append(block)
            stack.append(block)
            words = []
        elif token == "}":
            stack.pop()
        else:
            words.append(token)
    assert len(stack) == 1 and not words, f"{path}: unbalanced braces or a missing ';'"
    return root


def duration_seconds(nginx_time: str) -> float:
    """nginx times: `4s`, `1h`, `500ms`, or bare seconds."""
    return parse_duration(nginx_time if not nginx_time.isdigit() else f"{nginx_time}s")
