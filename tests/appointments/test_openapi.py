"""The published OpenAPI document agrees with the contract for the appointment operations."""

from __future__ import annotations

import pytest

OPERATIONS = {
    ("get", "/api/v1/appointments"): {"200", "401", "422"},
    ("post", "/api/v1/appointments"): {"201", "401", "403", "409", "422"},
    ("get", "/api/v1/appointments/{appointmentId}"): {"200", "401", "404", "422"},
    ("put", "/api/v1/appointments/{appointmentId}"): {"200", "401", "403", "404", "409", "422"},
    ("delete", "/api/v1/appointments/{appointmentId}"): {"200", "401", "404", "409", "422"},
}


@pytest.fixture
async def schema(client):
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize(("method", "path"), sorted(OPERATIONS))
async def test_each_operation_declares_its_status_codes(schema, method, path):
    responses = schema["paths"][path][method]["responses"]
    assert OPERATIONS[method, path] <= set(responses), sorted(responses)
    for status, response in responses.items():
        if status[0] in "45":
            assert set(response["content"]) == {"application/problem+json"}, (status, response)


async def test_booking_declares_location_and_the_idempotency_key(schema):
    operation = schema["paths"]["/api/v1/appointments"]["post"]
    assert "Location" in operation["responses"]["201"]["headers"]
    headers = [p["name"].lower() for p in operation["parameters"] if p["in"] == "header"]
    assert headers == ["idempotency-key"]


async def test_the_list_documents_its_filters_and_pages(schema):
    operation = schema["paths"]["/api/v1/appointments"]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert {"doctor_id", "patient_id", "status", "from", "to", "limit", "cursor"} <= set(params)
    assert params["limit"]["schema"].get("maximum") == 200
    assert params["limit"]["schema"].get("minimum") == 1
    assert params["limit"]["schema"].get("default") == 50
    for name in ("from", "to"):
        assert params[name].get("description"), name
