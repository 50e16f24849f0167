"""The Kubernetes manifests: probes, shutdown, scaling and the objects naming each other."""

from __future__ import annotations

import re

import pytest

from ehass.config import Settings
from tests.deployments.support import (
    container_argv,
    k8s_containers,
    k8s_object,
    k8s_objects,
    pod_spec,
    uvicorn_option,
)

# RSS of one `ehass serve` process after a load run (bench/README.md: ~150 MiB).
MEASURED_APP_MIB = 150


def _workload_running(*argv: str) -> tuple[dict, dict]:
    found = [(w, c) for w, c in k8s_containers() if container_argv(c)[: len(argv)] == list(argv)]
    assert len(found) == 1, [w["metadata"]["name"] for w, _ in found]
    return found[0]


def _mebibytes(quantity: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()
    return int(number) * (1024 if unit == "Gi" else 1)


def test_manifests_name_no_namespace():
    # `kubectl apply -n NAMESPACE -f deployments/k8s/` puts them wherever asked.
    assert not [o["metadata"]["name"] for o in k8s_objects() if "namespace" in o["metadata"]]


def test_every_container_runs_the_same_image_with_requests_and_limits():
    images = {c["image"] for _, c in k8s_containers()}
    assert len(images) == 1, images
    for workload, container in k8s_containers():
        resources = container.get("resources", {})
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(kind, {})), workload["metadata"]["name"]


def test_the_api_has_room_for_its_measured_memory():
    _, api = _workload_running("ehass", "serve")
    assert _mebibytes(api["resources"]["requests"]["memory"]) > MEASURED_APP_MIB
    assert _mebibytes(api["resources"]["limits"]["memory"]) >= 2 * MEASURED_APP_MIB


def test_the_api_is_ready_on_readyz_alive_on_healthz_and_started_patiently():
    _, api = _workload_running("ehass", "serve")
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    startup = api["startupProbe"]
    # Start-up may wait EHASS_STARTUP_TIMEOUT_SECONDS for the database before it listens.
    waited = Settings.model_fields["startup_timeout_seconds"].default
    assert startup["periodSeconds"] * startup["failureThreshold"] > waited
    # /readyz gives the database 3 s before it answers 503.
    assert api["readinessProbe"]["timeoutSeconds"] > 3


def test_the_api_stops_taking_traffic_before_it_stops():
    workload, api = _workload_running("ehass", "serve")
    sleep = api["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert sleep > 0
    grace = pod_spec(workload)["terminationGracePeriodSeconds"]
    assert grace > sleep + uvicorn_option("timeout_graceful_shutdown")


def test_the_worker_outlasts_one_smtp_exchange():
    workload, _ = _workload_running("ehass", "worker")
    smtp = Settings.model_fields["smtp_timeout_seconds"].default
    assert pod_spec(workload)["terminationGracePeriodSeconds"] > smtp


def test_the_migration_job_runs_once_without_restarting_in_place():
    workload, _ = _workload_running("ehass", "db", "upgrade")
    assert workload["kind"] == "Job"
    assert pod_spec(workload)["restartPolicy"] == "Never"


def _api_pod_labels() -> dict[str, str]:
    workload, _ = _workload_running("ehass", "serve")
    labels = workload["spec"]["template"]["metadata"]["labels"]
    assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()
    return labels


def test_the_service_sends_to_the_api_pods_on_their_port():
    _, api = _workload_running("ehass", "serve")
    services = [o for o in k8s_objects() if o["kind"] == "Service"]
    assert len(services) == 1
    assert services[0]["spec"]["selector"].items() <= _api_pod_labels().items()
    ports = {p["name"]: p["containerPort"] for p in api["ports"]}
    for port in services[0]["spec"]["ports"]:
        assert port["targetPort"] in ports or port["targetPort"] in ports.values()


def test_the_autoscaler_scales_the_api_on_cpu_from_three():
    workload, _ = _workload_running("ehass", "serve")
    hpas = [o for o in k8s_objects() if o["kind"] == "HorizontalPodAutoscaler"]
    assert len(hpas) == 1 and hpas[0]["apiVersion"] == "autoscaling/v2"
    spec = hpas[0]["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": workload["metadata"]["name"],
    }
    assert spec["minReplicas"] >= 3
    assert [m["resource"]["name"] for m in spec["metrics"]] == ["cpu"]
    # The autoscaler owns the count: a fixed one would be reset by every apply.
    assert "replicas" not in workload["spec"]


def test_the_disruption_budget_covers_the_api_pods():
    budgets = [o for o in k8s_objects() if o["kind"] == "PodDisruptionBudget"]
    assert len(budgets) == 1
    assert budgets[0]["spec"]["selector"]["matchLabels"].items() <= _api_pod_labels().items()


@pytest.mark.parametrize(
    ("workload", "container"),
    k8s_containers(),
    ids=[f"{w['metadata']['name']}/{c['name']}" for w, c in k8s_containers()],
)
def test_config_maps_and_secrets_named_are_the_shipped_or_documented_ones(workload, container):
    config_maps = {o["metadata"]["name"] for o in k8s_objects() if o["kind"] == "ConfigMap"}
    for source in container.get("envFrom", []):
        if ref := source.get("configMapRef"):
            assert ref["name"] in config_maps
    for entry in container.get("env", []):
        if ref := entry.get("valueFrom", {}).get("secretKeyRef"):
            # The one Secret deployments/README.md tells how to create.
            assert ref["name"] == "ehass-secrets", entry["name"]


def test_the_ingress_sends_to_the_service():
    ingress = k8s_object("Ingress", "ehass")
    service = next(o for o in k8s_objects() if o["kind"] == "Service")
    port_names = {p["name"] for p in service["spec"]["ports"]}
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == service["metadata"]["name"]
            assert backend["port"].get("name") in port_names
    assert ingress["spec"]["tls"]
