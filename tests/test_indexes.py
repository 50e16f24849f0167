"""Every statement the hot paths run can use an index for its conditions: the database's
own plan (EXPLAIN) for each statement a request ran, with the request's parameters.

A table read in full is accepted only when the statement puts no condition on it (a page
of doctors in id order, say); a condition with no index to serve it fails the test, on
MariaDB (`EXPLAIN FORMAT=JSON`: access type ALL with no possible key) and on SQLite
(`EXPLAIN QUERY PLAN`: a bare `SCAN table`, which SQLite reports only when no index or
rowid order serves the query).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tests.test_query_counts import populated  # noqa: F401 - the fixture

Statement = tuple[str, Any]
_EXPLAINABLE = re.compile(r"^\s*(SELECT|UPDATE|DELETE)\b", re.IGNORECASE)


@contextmanager
def captured(engine: AsyncEngine) -> Iterator[list[Statement]]:
    statements: list[Statement] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if _EXPLAINABLE.match(statement):
            statements.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)


def _mysql_full_scans(plan: Any) -> list[str]:
    """Tables the plan reads in full although the statement filters them, no index able."""
    found = []
    if isinstance(plan, dict):
        table = plan.get("table_name")
        if (
            table
            and plan.get("access_type") == "ALL"
            and plan.get("attached_condition")
            and not plan.get("possible_keys")
        ):
            found.append(f"{table}: {plan['attached_condition']}")
        for value in plan.values():
            found += _mysql_full_scans(value)
    elif isinstance(plan, list):
        for value in plan:
            found += _mysql_full_scans(value)
    return found


async def _full_scans(connection: AsyncConnection, statement: str, parameters: Any) -> list[str]:
    if connection.dialect.name == "mysql":
        result = await connection.exec_driver_sql(f"EXPLAIN FORMAT=JSON {statement}", parameters)
        return _mysql_full_scans(json.loads(result.scalar_one()))
    result = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
    return [row.detail for row in result if re.fullmatch(r"SCAN \w+", row.detail)]


def _filters(statement: str) -> bool:
    return " WHERE " in statement.upper()


@pytest.mark.parametrize(
    ("method", "path", "who"),
    [
        ("GET", "/doctors", None),
        ("GET", "/doctors?specialty=cardiology", None),
        ("GET", "/doctors?q=number", None),
        ("GET", "/doctors/{doctor_id}", None),
        ("GET", "/doctors/{doctor_id}/availability?from=2026-12-01T00:00:00Z", None),
        ("GET", "/appointments", "patient"),
        ("GET", "/appointments", "doctor"),
        ("GET", "/appointments", "admin"),
        ("GET", "/users", "admin"),
        ("GET", "/admin/audit-logs", "admin"),
        ("GET", "/admin/notifications", "admin"),
        ("GET", "/admin/health", "admin"),
        ("GET", "/waitlist", "patient"),
        ("GET", "/auth/sessions", "patient"),
        ("POST", "/appointments", "patient"),
    ],
)
async def test_every_statement_of_a_hot_path_can_use_an_index(
    api: Any,
    engine: AsyncEngine,
    connection: AsyncConnection,
    populated: dict[str, Any],  # noqa: F811 - the fixture imported above
    method: str,
    path: str,
    who: str | None,
) -> None:
    path = path.format(doctor_id=populated["doctor_id"])
    body = (
        {
            "doctor_id": populated["doctor_id"],
            "scheduled_at": "2026-12-04T15:00:00Z",
            "reason": "check-up",
        }
        if method == "POST"
        else None
    )
    with captured(engine) as statements:
        response = await api(method, path, token=populated[who] if who else None, json=body)
    assert response.status_code in (200, 201), response.text
    assert statements, "the request ran no statement"

    problems = []
    for statement, parameters in statements:
        scans = await _full_scans(connection, statement, parameters)
        if scans and _filters(statement):
            problems.append(f"{' '.join(statement.split())[:300]}\n    -> {scans}")
    assert not problems, "\n".join(problems)


async def test_the_check_sees_a_condition_no_index_serves(connection: AsyncConnection) -> None:
    """The detector itself: `users.name` has no index, so filtering on it reads the table."""

    def driver_form(statement: str) -> str:  # the drivers' own placeholder
        return statement.replace("?", "%s") if connection.dialect.name == "mysql" else statement

    unindexed = driver_form("SELECT id FROM users WHERE name = ?")
    assert await _full_scans(connection, unindexed, ("Nobody",))
    indexed = driver_form("SELECT id FROM users WHERE email = ?")
    assert not await _full_scans(connection, indexed, ("nobody@example.org",))
