"""Every container runs as a non-root user, on a read-only root filesystem, without
capabilities; EHASS's own get a writable /tmp and nothing else."""

from __future__ import annotations

import re

import pytest

from tests.deployments.support import (
    CONTAINER_TMP,
    compose_services,
    dockerfile,
    ehass_services,
    final_stage,
    k8s_containers,
    pod_spec,
)


def test_the_image_runs_as_a_numeric_non_root_user():
    users = [i.arguments for i in final_stage() if i.keyword == "USER"]
    assert users, "the runtime stage sets no USER"
    uid = users[-1].split(":")[0]
    # Numeric, so Kubernetes' runAsNonRoot can tell without reading /etc/passwd.
    assert uid.isdigit() and int(uid) != 0, users[-1]


def test_the_image_builds_from_the_lock_without_downloading_a_python():
    runs = [i.arguments for i in dockerfile() if i.keyword == "RUN"]
    envs = " ".join(i.arguments for i in dockerfile() if i.keyword == "ENV")
    syncs = [sync for run in runs for sync in re.findall(r"uv sync[^&;|]*", run)]
    assert syncs and all("--frozen" in s and "--no-dev" in s for s in syncs), syncs
    assert "UV_PYTHON_DOWNLOADS=never" in envs


def test_every_base_image_is_pinned():
    for instruction in dockerfile():
        if instruction.keyword == "FROM":
            image = instruction.arguments.split()[0]
            assert "@sha256:" in image or re.search(r":\d+\.\d+\.\d+", image), image
        if instruction.keyword == "COPY" and "--from=" in instruction.arguments:
            source = re.search(r"--from=(\S+)", instruction.arguments).group(1)
            assert "/" not in source or re.search(r":\d+\.\d+\.\d+", source), source


def test_the_image_stops_on_sigterm_and_has_a_healthcheck():
    keywords = {i.keyword: i.arguments for i in final_stage()}
    assert keywords.get("STOPSIGNAL") == "SIGTERM"
    assert "HEALTHCHECK" in keywords
    assert "curl" not in keywords["HEALTHCHECK"]


def _is_root(user: str) -> bool:
    return user.split(":")[0] in {"", "0", "root"}


@pytest.mark.parametrize("name", sorted(compose_services()))
def test_compose_service_is_unprivileged(name):
    service = compose_services()[name]
    assert not _is_root(str(service.get("user", ""))), f"{name} runs as root"
    assert service.get("read_only") is True, f"{name} has a writable root filesystem"
    assert "ALL" in service.get("cap_drop", []), f"{name} keeps its capabilities"
    assert "no-new-privileges:true" in service.get("security_opt", []), name
    assert not service.get("privileged"), name


@pytest.mark.parametrize("name", sorted(ehass_services()))
def test_compose_ehass_service_has_a_writable_tmp(name):
    tmpfs = ehass_services()[name].get("tmpfs", [])
    assert any(t.split(":")[0] == CONTAINER_TMP for t in tmpfs), name


def _k8s_ids() -> list[str]:
    return [f"{w['metadata']['name']}/{c['name']}" for w, c in k8s_containers()]


@pytest.mark.parametrize(("workload", "container"), k8s_containers(), ids=_k8s_ids())
def test_kubernetes_container_is_unprivileged(workload, container):
    pod = pod_spec(workload)
    context = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    assert context.get("runAsNonRoot") is True
    assert context.get("runAsUser", 1) != 0
    assert context.get("readOnlyRootFilesystem") is True
    assert context.get("allowPrivilegeEscalation") is False
    assert "ALL" in context.get("capabilities", {}).get("drop", [])
    assert not context.get("capabilities", {}).get("add")
    assert context.get("seccompProfile", {}).get("type") == "RuntimeDefault"
    assert not context.get("privileged")
    assert pod.get("automountServiceAccountToken") is False


@pytest.mark.parametrize(("workload", "container"), k8s_containers(), ids=_k8s_ids())
def test_kubernetes_container_has_an_empty_dir_tmp(workload, container):
    volumes = {v["name"]: v for v in pod_spec(workload).get("volumes", [])}
    mounts = [m for m in container.get("volumeMounts", []) if m["mountPath"] == CONTAINER_TMP]
    assert len(mounts) == 1 and not mounts[0].get("readOnly")
    assert "emptyDir" in volumes[mounts[0]["name"]]
