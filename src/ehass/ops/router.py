from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from ehass.db import Database
from ehass.shared import SharedState

router = APIRouter(tags=["operations"])
READY_TIMEOUT_SECONDS = 3


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    database: Literal["ok", "unavailable"]
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
    db_ok = await _database_answers(database)
    redis = await shared.ping()
    redis_state = "not_configured" if redis is None else ("ok" if redis else "unavailable")
    ready = db_ok and redis is not False
    body = Readiness(
        status="ready" if ready else "unavailable",
        database="ok" if db_ok else "unavailable",
        redis=redis_state,
    )
    if not ready:
        return JSONResponse(body.model_dump(), status_code=503)
    return body


async def _database_answers(database: Database) -> bool:
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS), database.sessionmaker() as session:
            await session.execute(text("SELECT 1"))
    except Exception:  # whatever the failure, the answer is "not ready"
        return False
    return True
