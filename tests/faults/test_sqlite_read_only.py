"""A SQLite database the app may only read: writes answer 503 problem+json, reads work.

The tests run as root, whom file permissions do not stop, so the file is opened read-only
the way SQLite offers: a `file:` URI with `mode=ro` in EHASS_DATABASE_URL. A session is
logged in while the file is still writable; the read-only server then accepts its token.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ehass.config import Settings
from ehass.db import create_engine
from tests.conftest import reset_schema
from tests.factories import PASSWORD
from tests.faults.support import (
    app_env,
    app_servers,
    assert_problem,
    booking,
    call,
    log_in,
    seed,
    slots,
)


async def test_read_only_sqlite_refuses_writes_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "ehass.db"
    writable = f"sqlite+aiosqlite:///{path}"
    engine = create_engine(Settings(database_url=writable, _env_file=None))
    try:
        await reset_schema(engine, writable)
    finally:
        await engine.dispose()
    people = await seed(writable, patients=1)
    [first, second] = slots(2)

    async with app_servers(1, app_env(writable, EHASS_RATE_LIMIT_ENABLED="false"), tmp_path) as [
        server
    ]:
        token = await log_in(server, people.patients[0])
        booked = await call(
            server, "POST", "/api/v1/appointments", token=token, json=booking(people, first)
        )
        assert booked.status == 201, booked.describe()
    size_before = path.stat().st_size

    read_only = f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true"
    env = app_env(read_only, EHASS_RATE_LIMIT_ENABLED="false")
    async with app_servers(1, env, tmp_path) as [server]:
        listed = await call(server, "GET", "/api/v1/appointments", token=token)
        assert listed.status == 200, listed.describe()
        assert [a["id"] for a in listed.response.json()["items"]] == [booked.response.json()["id"]]
        one = await call(
            server, "GET", f"/api/v1/appointments/{booked.response.json()['id']}", token=token
        )
        assert one.status == 200, one.describe()
        doctors = await call(server, "GET", "/api/v1/doctors")
        assert doctors.status == 200, doctors.describe()

        refused = await call(
            server, "POST", "/api/v1/appointments", token=token, json=booking(people, second)
        )
        assert_problem(refused, 503, "database-unavailable")
        assert refused.response.headers["retry-after"]
        login = await call(
            server,
            "POST",
            "/api/v1/auth/login",
            json={"email": people.patients[0].email, "password": PASSWORD},
        )
        assert_problem(login, 503, "database-unavailable")
        # Refusals leave nothing behind: reads still work afterwards.
        again = await call(server, "GET", "/api/v1/appointments", token=token)
        assert again.status == 200, again.describe()

    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert connection.execute("SELECT count(*) FROM appointments").fetchone() == (1,)
    assert path.stat().st_size == size_before
