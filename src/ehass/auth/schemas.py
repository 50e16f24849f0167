from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ehass.core.schemas import RequestModel, ResponseModel, UtcDateTime


class LoginRequest(RequestModel):
    email: Annotated[str, Field(min_length=1, max_length=254)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class RefreshRequest(RequestModel):
    refresh_token: Annotated[str, Field(min_length=1, max_length=256)]


class TokenPair(ResponseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - a scheme name
    expires_in: int = Field(description="Seconds until the access token expires.")


class SessionRead(ResponseModel):
    session_id: str
    user_id: int
    role: str
    created_at: UtcDateTime
    expires_at: UtcDateTime
