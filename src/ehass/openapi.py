"""OpenAPI declarations of the problem+json error bodies every operation may answer."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, Field


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(examples=["/problems/slot-unavailable"])
    title: str = Field(examples=["Slot unavailable"])
    status: int = Field(examples=[409])
    detail: str = Field(examples=["Another appointment holds this time."])


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str | None = None


class ValidationProblem(Problem):
    errors: list[ValidationIssue]


_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "`Bearer`"}},
    429: {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait"}},
}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for these statuses, each an application/problem+json body."""
    responses: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        model = ValidationProblem if code == 422 else Problem
        entry: dict[str, Any] = {
            "description": HTTPStatus(code).phrase,
            "model": model,
            "content": {
                "application/problem+json": {
                    "schema": {"$ref": f"#/components/schemas/{model.__name__}"}
                }
            },
        }
        if code in _HEADERS:
            entry["headers"] = _HEADERS[code]
        responses[code] = entry
    return responses


def export_yaml() -> str:
    """The published OpenAPI document as YAML, as committed in api/openapi.yaml."""
    import yaml

    from ehass.config import Settings
    from ehass.main import create_app

    app = create_app(Settings(env="development", _env_file=None))
    return yaml.safe_dump(app.openapi(), sort_keys=False, allow_unicode=True, width=100)
