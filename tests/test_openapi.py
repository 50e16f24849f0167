"""The published OpenAPI document: committed, complete, and in step with the code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ehass.openapi import export_yaml

COMMITTED = Path(__file__).parents[1] / "api" / "openapi.yaml"
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def document() -> dict:
    return yaml.safe_load(export_yaml())


def _operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_committed_document_matches_the_live_one(document):
    committed = yaml.safe_load(COMMITTED.read_text())
    # Compared as JSON so key order and YAML styling do not matter.
    assert json.dumps(committed, sort_keys=True) == json.dumps(document, sort_keys=True), (
        "api/openapi.yaml is stale: regenerate it with `uv run ehass openapi > api/openapi.yaml`"
    )


async def test_served_document_is_the_exported_one(client, document):
    served = (await client.get("/openapi.json")).json()
    assert served["paths"].keys() == document["paths"].keys()


def test_every_contract_path_is_published(document):
    expected = {
        ("post", "/api/v1/auth/register"),
        ("post", "/api/v1/auth/login"),
        ("post", "/api/v1/auth/refresh"),
        ("post", "/api/v1/auth/logout"),
        ("get", "/api/v1/auth/session"),
        ("get", "/api/v1/users"),
        ("get", "/api/v1/users/{userId}"),
        ("put", "/api/v1/users/{userId}"),
        ("delete", "/api/v1/users/{userId}"),
        ("get", "/api/v1/doctors"),
        ("get", "/api/v1/doctors/{doctorId}"),
        ("get", "/api/v1/doctors/{doctorId}/availability"),
        ("post", "/api/v1/doctors/{doctorId}/availability"),
        ("get", "/api/v1/appointments"),
        ("post", "/api/v1/appointments"),
        ("get", "/api/v1/appointments/{appointmentId}"),
        ("put", "/api/v1/appointments/{appointmentId}"),
        ("delete", "/api/v1/appointments/{appointmentId}"),
        ("get", "/healthz"),
        ("get", "/readyz"),
    }
    published = {(method, path) for path, method, _ in _operations(document)}
    assert expected <= published


def test_error_responses_are_problem_json(document):
    for path, method, operation in _operations(document):
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")) and path != "/readyz":
                assert list(response.get("content", {})) == [PROBLEM], (method, path, status)


def test_protected_operations_declare_401_and_validated_ones_422(document):
    for path, method, operation in _operations(document):
        if operation.get("security"):
            assert "401" in operation["responses"], (method, path)
        if operation.get("parameters") or operation.get("requestBody"):
            assert "422" in operation["responses"], (method, path)


def test_request_and_response_schemas_have_examples(document):
    schemas = document["components"]["schemas"]
    for name in ("RegisterRequest", "AppointmentCreate", "AvailabilityWrite"):
        assert schemas[name].get("examples"), name


@pytest.mark.parametrize(
    ("page", "asset"), [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")]
)
async def test_docs_are_served_from_installed_files_not_a_cdn(client, page, asset):
    html = await client.get(page)
    assert html.status_code == 200
    assert f"/static-offline-docs/{asset}" in html.text
    assert "cdn." not in html.text
    script = await client.get(f"/static-offline-docs/{asset}")
    assert script.status_code == 200 and len(script.content) > 100_000
