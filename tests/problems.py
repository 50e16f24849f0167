"""The one check every error answer must pass: RFC 9457 problem+json, and nothing internal."""

from __future__ import annotations

from typing import Any

import httpx

PROBLEM_JSON = "application/problem+json"


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem with the given status; a 422 also lists errors with loc and msg."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    problem = response.json()
    assert {"type", "title", "status", "detail"} <= problem.keys(), problem
    assert problem["status"] == status
    assert isinstance(problem["title"], str) and problem["title"]
    assert isinstance(problem["detail"], str) and problem["detail"]
    if status == 422:
        assert problem["errors"], problem
        for error in problem["errors"]:
            assert isinstance(error["loc"], list) and isinstance(error["msg"], str), error
    lowered = response.text.lower()
    assert "traceback" not in lowered and "select " not in lowered and "sqlalchemy" not in lowered
    return problem
