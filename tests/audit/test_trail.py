"""The audit trail: one entry per change, in the change's transaction, chained and immutable."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from ehass.audit import sealer
from ehass.audit import service as audit
from tests.factories import PASSWORD


async def entries(api, token, **filters):
    response = await api("GET", "/admin/audit-logs", token=token, params=filters)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_login_success_and_failure_are_audited_without_secrets(api, factories, client_ip):
    admin_token = await factories.token(await factories.admin())
    user = await factories.patient()
    await api("POST", "/auth/login", json={"email": user.email, "password": "wrong password!"})
    pair = await factories.login(user)

    failed = await entries(api, admin_token, action="auth.login_failed", entity_id=user.id)
    assert len(failed) == 1
    assert failed[0]["entity"] == "user" and failed[0]["changes"]["reason"] == "wrong_password"
    assert failed[0]["ip"] == client_ip
    logins = await entries(api, admin_token, action="auth.login", actor_id=user.id)
    assert len(logins) == 1 and logins[0]["entity"] == "session"

    everything = str(await entries(api, admin_token, limit=200))
    for secret in ("wrong password!", PASSWORD, pair["access_token"], pair["refresh_token"]):
        assert secret not in everything


async def test_logout_refresh_and_reuse_are_audited(api, factories):
    admin_token = await factories.token(await factories.admin())
    user = await factories.patient()
    pair = await factories.login(user)
    rotated = (
        await api("POST", "/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    ).json()
    await api("POST", "/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    actions = [e["action"] for e in await entries(api, admin_token, actor_id=user.id)]
    assert "auth.refresh" in actions and "auth.refresh_reuse" in actions
    assert rotated["access_token"]


async def test_denied_access_is_audited(api, factories):
    admin_token = await factories.token(await factories.admin())
    patient = await factories.patient()
    other = await factories.patient()
    token = await factories.token(patient)
    assert (await api("GET", f"/users/{other.id}", token=token)).status_code == 404
    assert (await api("GET", "/users", token=token)).status_code == 403
    assert (await api("GET", "/users/1", token="garbage")).status_code == 401
    denied = await entries(api, admin_token, action="access.denied")
    statuses = sorted(e["changes"]["status"] for e in denied)
    assert statuses == [401, 403, 404]
    not_found = next(e for e in denied if e["changes"]["status"] == 404)
    assert not_found["entity"] == "user" and not_found["entity_id"] == other.id
    assert not_found["actor_id"] == patient.id


async def test_entries_are_newest_first_and_paginate(api, factories):
    admin_token = await factories.token(await factories.admin())
    for _ in range(3):
        await factories.login(await factories.patient())
    first = await api("GET", "/admin/audit-logs", token=admin_token, params={"limit": 2})
    body = first.json()
    assert [e["id"] for e in body["items"]] == sorted(
        (e["id"] for e in body["items"]), reverse=True
    )
    second = await api(
        "GET",
        "/admin/audit-logs",
        token=admin_token,
        params={"limit": 2, "cursor": body["next_cursor"]},
    )
    assert second.json()["items"][0]["id"] < body["items"][-1]["id"]


async def test_audit_endpoints_are_for_admins_only(api, factories):
    for user in (await factories.patient(), await factories.doctor()):
        token = await factories.token(user)
        for path in ("/admin/audit-logs", "/admin/audit-logs/verify", "/admin/health"):
            assert (await api("GET", path, token=token)).status_code == 403
    assert (await api("GET", "/admin/audit-logs")).status_code == 401


async def test_chain_verifies(api, factories):
    admin_token = await factories.token(await factories.admin())
    await factories.login(await factories.patient())
    result = (await api("GET", "/admin/audit-logs/verify", token=admin_token)).json()
    assert result["ok"] is True and result["first_bad_id"] is None and result["checked"] >= 2


@pytest.mark.parametrize(
    ("table", "statement"),
    [
        ("audit_log", "UPDATE audit_log SET action = 'x'"),
        ("audit_log", "DELETE FROM audit_log"),
        ("audit_pending", "UPDATE audit_pending SET action = 'x'"),
        ("audit_pending", "DELETE FROM audit_pending"),
    ],
)
async def test_triggers_refuse_update_and_delete(session, table, statement, clock):
    """Sealed entries can never change; pending ones can only leave through the sealer."""
    audit.record(session, at=clock.now(), action="test.entry", entity="test")
    await audit.append(session)
    if table == "audit_log":
        await sealer.seal_committed(session)
    with pytest.raises(DBAPIError, match="append-only"):
        async with session.begin_nested():
            await session.execute(text(statement))
    count = {"audit_log": COUNT_SEALED, "audit_pending": COUNT_PENDING}[table]
    remaining = (await session.execute(text(count))).scalar()
    assert remaining >= 1


COUNT_SEALED = "SELECT COUNT(*) FROM audit_log"
COUNT_PENDING = "SELECT COUNT(*) FROM audit_pending"


async def _entry_count(session) -> int:
    sealed = (await session.execute(text(COUNT_SEALED))).scalar()
    pending = (await session.execute(text(COUNT_PENDING))).scalar()
    return sealed + pending


async def test_a_rolled_back_change_leaves_no_entry(session, clock):
    before = await _entry_count(session)
    nested = await session.begin_nested()
    audit.record(session, at=clock.now(), action="test.entry", entity="test")
    await audit.append(session)
    assert await _entry_count(session) == before + 1
    await nested.rollback()
    assert await _entry_count(session) == before


async def test_verify_names_the_first_altered_entry(scratch_engine, clock):
    from sqlalchemy.ext.asyncio import async_sessionmaker

    sessions = async_sessionmaker(scratch_engine, expire_on_commit=False)
    async with sessions.begin() as session:
        for n in range(5):
            audit.record(session, at=clock.now(), action=f"test.{n}", entity="test", entity_id=n)
        await audit.append(session)
    async with sessions.begin() as session:  # verify seals first: keep what it sealed
        assert (await audit.verify(session)).ok
        third = (
            await session.execute(text("SELECT id FROM audit_log ORDER BY id LIMIT 1 OFFSET 2"))
        ).scalar()
    # Behind the triggers' back: drop them, rewrite a row, put them back.
    async with scratch_engine.begin() as connection:
        await connection.execute(text("DROP TRIGGER audit_log_no_update"))
        await connection.execute(
            text("UPDATE audit_log SET actor_id = 999 WHERE id = :id"), {"id": third}
        )
    async with sessions() as session:
        result = await audit.verify(session)
    assert result.ok is False and result.first_bad_id == third


async def test_every_appointment_change_is_audited_and_a_refused_one_is_not(api, factories):
    from datetime import UTC, datetime

    admin_token = await factories.token(await factories.admin())
    doctor = await factories.doctor()
    patient = await factories.patient()
    token = await factories.token(patient)
    slot = datetime(2026, 12, 2, 9, 0, tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    booked = await api(
        "POST",
        "/appointments",
        token=token,
        json={"doctor_id": doctor.doctor.id, "scheduled_at": slot, "reason": "chest pain"},
    )
    assert booked.status_code == 201
    appointment_id = booked.json()["id"]
    other = await factories.patient()
    refused = await api(
        "POST",
        "/appointments",
        token=await factories.token(other),
        json={"doctor_id": doctor.doctor.id, "scheduled_at": slot},
    )
    assert refused.status_code == 409
    moved = await api(
        "PUT",
        f"/appointments/{appointment_id}",
        token=token,
        json={"scheduled_at": slot.replace("09:00", "10:00")},
    )
    assert moved.status_code == 200
    doctor_token = await factories.token(doctor)
    assert (
        await api("GET", f"/appointments/{appointment_id}", token=doctor_token)
    ).status_code == 200
    assert (await api("DELETE", f"/appointments/{appointment_id}", token=token)).status_code == 200

    trail = await entries(api, admin_token, entity="appointment", entity_id=appointment_id)
    actions = [e["action"] for e in reversed(trail)]
    assert actions == [
        "appointment.create",
        "appointment.update",
        "appointment.read",
        "appointment.cancel",
    ]
    created, updated = trail[-1], trail[-2]
    assert created["actor_id"] == patient.id and created["actor_role"] == "patient"
    assert created["changes"]["reason"] == {"after": "[personal data]"}
    assert updated["changes"]["scheduled_at"]["before"] == slot
    assert "chest pain" not in str(trail)
    # The refused booking by the other patient left no appointment.create entry.
    creates = await entries(api, admin_token, action="appointment.create", actor_id=other.id)
    assert creates == []


async def test_user_changes_and_deactivation_are_audited(api, factories):
    admin = await factories.admin()
    admin_token = await factories.token(admin)
    patient = await factories.patient()
    renamed = await api("PUT", f"/users/{patient.id}", token=admin_token, json={"name": "New Name"})
    assert renamed.status_code == 200
    assert (await api("DELETE", f"/users/{patient.id}", token=admin_token)).status_code == 204
    trail = await entries(api, admin_token, entity="user", entity_id=patient.id)
    by_action = {e["action"]: e for e in trail}
    assert by_action["user.update"]["changes"] == {
        "name": {"before": "[personal data]", "after": "[personal data]"}
    }
    assert by_action["user.deactivate"]["actor_id"] == admin.id
    assert "patient.read" not in by_action  # an admin's PUT is not a read of the record


async def test_a_commit_with_unsealed_entries_fails_instead_of_losing_them(sessionmaker, clock):
    async with sessionmaker() as session:
        audit.record(session, at=clock.now(), action="test.unsealed", entity="test")
        with pytest.raises(audit.UnsealedAuditError):
            await session.commit()
        audit.discard(session)
        await session.rollback()
