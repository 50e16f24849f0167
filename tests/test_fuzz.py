"""Property-based fuzzing of the published API with schemathesis, as each role.

A real server over a database of its own; for each role, schemathesis generates requests
from /openapi.json (valid and invalid) and checks that none answers a 5xx, every answer
is declared and matches its schema, and nothing the schema forbids is accepted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from ehass.config import Settings
from ehass.core.clock import SystemClock
from tests.factories import PASSWORD, Factories
from tests.servers import database_of_its_own, running_servers, server_env, wait_ready

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
    ]
)
# Operations that would end the very session the run uses; they have tests of their own.
SESSION_ENDING = r"^/api/v1/auth/(logout|sessions/)|^/api/v1/users/\{userId\}$"
MAX_EXAMPLES = os.environ.get("EHASS_FUZZ_EXAMPLES", "12")
SEED = os.environ.get("EHASS_FUZZ_SEED", "20261201")


@pytest.fixture(scope="module")
async def fuzz_server(settings: Settings, tmp_path_factory: pytest.TempPathFactory):
    tmp_dir = tmp_path_factory.mktemp("fuzz")
    async with database_of_its_own(settings, tmp_dir, "fuzz") as (url, engine):
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            factories = Factories(session=session, client=None, clock=SystemClock())  # type: ignore[arg-type]
            doctor = await factories.doctor()
            patient = await factories.patient()
            admin = await factories.admin()
            soon = datetime.now(UTC).replace(hour=10, minute=0, second=0) + timedelta(days=7)
            while soon.weekday() >= 5:
                soon += timedelta(days=1)
            await factories.appointment(patient=patient, doctor=doctor, at=soon)
            await session.commit()
        env = server_env(
            {
                "EHASS_DATABASE_URL": url,
                "EHASS_SECRET_KEY": "fuzz-secret-key-that-is-long-enough-0123456789",
                "EHASS_RATE_LIMIT_ENABLED": "false",
                "EHASS_REDIS_KEY_PREFIX": f"ehass-fuzz-{uuid.uuid4().hex[:8]}",
                "EHASS_ENV": "test",
                "EHASS_LOG_LEVEL": "WARNING",
            }
        )
        with running_servers(1, env=env, log_dir=tmp_dir) as (server,):
            await wait_ready(server)
            tokens = {}
            async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
                for role, user in (("patient", patient), ("doctor", doctor), ("admin", admin)):
                    response = await client.post(
                        "/api/v1/auth/login", json={"email": user.email, "password": PASSWORD}
                    )
                    assert response.status_code == 200, response.text
                    tokens[role] = response.json()["access_token"]
            yield server, tokens, tmp_dir


@pytest.mark.parametrize("role", ["anonymous", "patient", "doctor", "admin"])
def test_schemathesis_finds_nothing(fuzz_server, role):
    server, tokens, tmp_dir = fuzz_server
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{server.base_url}/openapi.json",
        "--checks",
        CHECKS,
        "--max-examples",
        MAX_EXAMPLES,
        "--seed",
        SEED,
        "--workers",
        "1",
        "--exclude-path-regex",
        SESSION_ENDING,
        "--generation-database",
        "none",
        "--no-color",
        "--request-timeout",
        "20",
    ]
    if role != "anonymous":
        command += ["--header", f"Authorization: Bearer {tokens[role]}"]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=600, cwd=tmp_dir, check=False
    )
    report = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, f"schemathesis as {role}:\n{report}\n{server.log_tail(2000)}"
    assert " passed" in result.stdout or "No issues found" in result.stdout, report
