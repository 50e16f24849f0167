"""Every client mistake is a problem+json answer; nothing leaks a stack trace."""

from __future__ import annotations

import pytest
from fastapi import APIRouter

from tests.problems import assert_problem


async def test_unknown_route_is_404_problem(client):
    assert_problem(await client.get("/api/v1/nothing-here"), 404)


async def test_wrong_method_is_405_problem(client):
    assert_problem(await client.patch("/api/v1/doctors"), 405)


async def test_malformed_json_is_422_problem(client):
    response = await client.post(
        "/api/v1/auth/register", content=b'{"email": ', headers={"content-type": "application/json"}
    )
    body = assert_problem(response, 422)
    assert body["errors"] and body["errors"][0]["loc"][0] == "body"


async def test_body_over_one_mebibyte_is_413_problem(client):
    response = await client.post(
        "/api/v1/auth/register",
        content=b"{" + b" " * (1024 * 1024 + 10) + b"}",
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 413)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/doctors?limit=0",
        "/api/v1/doctors?limit=201",
        "/api/v1/doctors?limit=abc",
        "/api/v1/doctors?cursor=%%%",
        "/api/v1/doctors?cursor=bm90LWpzb24",
        "/api/v1/doctors/not-a-number",
        "/api/v1/doctors/1/availability?from=2026-12-01T10:00:00",
    ],
)
async def test_bad_query_and_path_values_are_422_problems(client, path):
    body = assert_problem(await client.get(path), 422)
    assert body["errors"]


async def test_unexpected_error_is_a_500_problem_with_request_id_and_no_internals(app, client):
    router = APIRouter()

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail: SELECT * FROM users")

    app.include_router(router)
    response = await client.get("/boom")
    body = assert_problem(response, 500)
    assert body["request_id"] == response.headers["x-request-id"]
    assert "secret internal detail" not in response.text
    assert "SELECT" not in response.text


async def test_request_id_is_echoed_or_generated(client):
    echoed = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    generated = await client.get("/healthz")
    assert len(generated.headers["x-request-id"]) >= 16
    unsafe = await client.get("/healthz", headers={"X-Request-ID": "bad\tvalue" + "x" * 200})
    assert unsafe.headers["x-request-id"] != "bad\tvalue" + "x" * 200


async def test_request_id_is_on_error_responses_too(client):
    response = await client.get("/api/v1/users/1")
    assert response.status_code == 401
    assert response.headers["x-request-id"]


async def test_an_unreachable_database_is_a_503_problem_not_a_500(unreachable_database_client):
    response = await unreachable_database_client.get("/api/v1/doctors")
    body = assert_problem(response, 503)
    assert body["type"] == "/problems/database-unavailable"
    assert response.headers["retry-after"] == "1"


async def test_a_commit_whose_answer_is_lost_is_an_outcome_unknown_503(api, factories):
    """The COMMIT went out but no answer came back (the server went away): the client is
    told the change may or may not have been made, never that nothing changed."""
    from sqlalchemy import event
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.orm import Session

    doctor = await factories.doctor()
    token = await factories.token(await factories.patient())

    def connection_lost(session):
        raise OperationalError("COMMIT", {}, ConnectionResetError("server went away"))

    event.listen(Session, "before_commit", connection_lost)
    try:
        response = await api(
            "POST",
            "/appointments",
            token=token,
            json={"doctor_id": doctor.doctor.id, "scheduled_at": "2026-12-03T10:00:00Z"},
        )
    finally:
        event.remove(Session, "before_commit", connection_lost)

    body = assert_problem(response, 503)
    assert body["type"] == "/problems/commit-outcome-unknown"
    assert response.headers["retry-after"] == "1"
    assert "may or may not" in body["detail"]
