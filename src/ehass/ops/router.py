from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from ehass.db import Database
from ehass.migrate import head_revision
from ehass.shared import SharedState

router = APIRouter(tags=["operations"])
READY_TIMEOUT_SECONDS = 3


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    database: Literal["ok", "unavailable", "migrations_pending"]
    redis: Literal["ok", "unavailable", "not_configured"]


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health()


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A dependency does not answer"}},
)
async def readyz(request: Request) -> Readiness | JSONResponse:
    database: Database = request.app.state.database
    shared: SharedState = request.app.state.runtime.shared
    db_state = await _database_state(database)
    redis = await shared.ping()
    redis_state = "not_configured" if redis is None else ("ok" if redis else "unavailable")
    ready = db_state == "ok" and redis is not False
    body = Readiness(
        status="ready" if ready else "unavailable", database=db_state, redis=redis_state
    )
    if not ready:
        return JSONResponse(body.model_dump(), status_code=503)
    return body


async def _database_state(database: Database) -> Literal["ok", "unavailable", "migrations_pending"]:
    """`ok` when the database answers and is at the revision this code expects."""
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS), database.sessionmaker() as session:
            revision = await session.scalar(text("SELECT version_num FROM alembic_version"))
    except Exception:  # whatever the failure, the answer is "not ready"
        return "unavailable"
    return "ok" if revision == head_revision() else "migrations_pending"
