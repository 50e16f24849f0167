"""The sealer: committed entries reach the chain, in one unforked chain, whatever crashes;
writers never wait for the chain head; signed checkpoints catch a recomputed chain."""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from ehass.audit import checkpoint, sealer
from ehass.audit import service as audit
from ehass.audit.chain import link_hash
from ehass.audit.models import GENESIS_HASH, AuditEntry
from ehass.config import Settings
from ehass.core.clock import FrozenClock, SystemClock
from ehass.db import Database
from ehass.notifications.delivery import mailer_for
from ehass.notifications.worker import Worker
from ehass.runtime import Runtime, audit_signing_key
from ehass.seed import verify_audit
from ehass.shared import SharedState

COUNTS = "SELECT (SELECT COUNT(*) FROM audit_log), (SELECT COUNT(*) FROM audit_pending)"


async def counts(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as connection:
        sealed, pending = (await connection.execute(text(COUNTS))).one()
    return sealed, pending


async def append_committed(engine: AsyncEngine, clock: FrozenClock, n: int, tag: str) -> None:
    async with async_sessionmaker(engine).begin() as session:
        for i in range(n):
            audit.record(session, at=clock.now(), action=f"test.{tag}", entity="test", entity_id=i)
        await audit.append(session)


async def verified(engine: AsyncEngine) -> audit.Verification:
    async with async_sessionmaker(engine).begin() as session:
        return await audit.verify(session)


class Crash(Exception):
    pass


async def test_a_crash_between_append_and_seal_loses_nothing(scratch_engine, clock):
    await append_committed(scratch_engine, clock, 5, "before-crash")
    assert await counts(scratch_engine) == (0, 5)
    # A sealer that dies after doing all its work but before COMMIT.
    with pytest.raises(Crash):
        async with async_sessionmaker(scratch_engine).begin() as session:
            assert await sealer.seal(session) == 5
            raise Crash
    assert await counts(scratch_engine) == (0, 5)  # still pending, nothing half-sealed
    async with async_sessionmaker(scratch_engine).begin() as session:
        assert await sealer.seal(session) == 5
    assert await counts(scratch_engine) == (5, 0)
    result = await verified(scratch_engine)
    assert result.ok and result.checked == 5


async def test_an_entry_is_sealed_with_the_hash_the_chain_always_used(scratch_engine, clock):
    at = datetime(2026, 12, 4, 19, 0, 5, 123456, tzinfo=UTC)  # the fraction is not kept
    async with async_sessionmaker(scratch_engine).begin() as session:
        audit.record(session, at=at, action="test.one", entity="test", changes={"n": 1})
        await audit.append(session)
    async with async_sessionmaker(scratch_engine).begin() as session:
        await sealer.seal(session)
    async with scratch_engine.connect() as connection:
        row = (await connection.execute(text("SELECT * FROM audit_log"))).mappings().one()
    fields = {
        "id": 1,
        "at": at,
        "actor_id": None,
        "actor_role": None,
        "action": "test.one",
        "entity": "test",
        "entity_id": None,
        "ip": None,
        "user_agent": None,
        "request_id": None,
        "changes": {"n": 1},
    }
    assert row["prev_hash"] == GENESIS_HASH
    assert row["hash"] == link_hash(GENESIS_HASH, fields)


async def test_concurrent_sealers_and_writers_never_fork_the_chain(scratch_engine, clock):
    """Writers append while two sealers, on connections of their own, seal in small
    batches: every entry lands once, ids stay gapless, the chain verifies."""
    writers, rounds, per_round = 4, 10, 5
    done = asyncio.Event()
    sealed_by = [0, 0]

    async def write(tag: int) -> None:
        for r in range(rounds):
            await append_committed(scratch_engine, clock, per_round, f"{tag}.{r}")
            await asyncio.sleep(0)

    async def seal_until_done(index: int) -> None:
        sessions = async_sessionmaker(scratch_engine)
        while True:
            finished = done.is_set()
            async with sessions.begin() as session:
                sealed_by[index] += await sealer.seal(session, limit=7)
            if finished and (await counts(scratch_engine))[1] == 0:
                return
            await asyncio.sleep(0)

    sealers = [asyncio.create_task(seal_until_done(i)) for i in range(2)]
    await asyncio.gather(*(write(w) for w in range(writers)))
    done.set()
    await asyncio.wait_for(asyncio.gather(*sealers), timeout=60)

    total = writers * rounds * per_round
    assert await counts(scratch_engine) == (total, 0)
    assert sum(sealed_by) == total
    result = await verified(scratch_engine)
    assert result.ok and result.checked == total
    async with scratch_engine.connect() as connection:
        ids = (await connection.execute(text("SELECT id FROM audit_log ORDER BY id"))).scalars()
        assert list(ids) == list(range(1, total + 1))
        head = (await connection.execute(text("SELECT last_id FROM audit_chain_head"))).scalar()
    assert head == total


async def test_the_worker_seals_within_a_fraction_of_a_second_and_signs(
    scratch_engine, settings: Settings, clock
):
    database = Database(scratch_engine, async_sessionmaker(scratch_engine, expire_on_commit=False))
    rt = Runtime.create(settings, clock, SharedState(settings))
    worker = Worker(database, rt, mailer_for(settings), embedded=True)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await append_committed(scratch_engine, clock, 3, "worker")
        started = asyncio.get_running_loop().time()
        while (await counts(scratch_engine))[1]:
            assert asyncio.get_running_loop().time() - started < 5, "not sealed within 5 s"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
        await rt.shared.close()
    assert (await counts(scratch_engine))[0] == 3
    async with async_sessionmaker(scratch_engine)() as session:
        latest = await sealer.latest_checkpoint(session)
    key = audit_signing_key(settings)
    assert latest is not None and latest.tree_size == 3
    assert checkpoint.signature_valid(key.public_key(), latest)


async def test_readers_see_entries_committed_a_moment_ago(scratch_engine, clock):
    await append_committed(scratch_engine, clock, 2, "fresh")
    async with async_sessionmaker(scratch_engine, expire_on_commit=False).begin() as session:
        page = await audit.list_entries(
            session,
            actor_id=None,
            entity="test",
            entity_id=None,
            action=None,
            start=None,
            end=None,
            limit=10,
            cursor=None,
        )
    assert [e.id for e in page.items] == [2, 1]  # chain ids, newest first


RESTORE_TRIGGER = {
    "mysql": "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log FOR EACH ROW "
    "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'audit_log is append-only'",
    "sqlite": "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
}


async def edit_entry(engine: AsyncEngine, entry_id: int) -> None:
    """What an intruder with SQL access does: edit an entry behind the trigger's back."""
    async with engine.begin() as connection:
        await connection.execute(text("DROP TRIGGER audit_log_no_update"))
        await connection.execute(
            text("UPDATE audit_log SET actor_id = 999 WHERE id = :id"), {"id": entry_id}
        )
        await connection.execute(text(RESTORE_TRIGGER[connection.dialect.name]))


async def recompute_chain(engine: AsyncEngine) -> None:
    """... and then recomputes every later hash and the head, so the chain verifies."""
    async with engine.begin() as connection:
        await connection.execute(text("DROP TRIGGER audit_log_no_update"))
        log = AuditEntry.__table__
        rows = (await connection.execute(select(log).order_by(log.c.id))).mappings()
        prev = GENESIS_HASH
        for row in list(rows):
            new = link_hash(prev, dict(row))
            await connection.execute(
                text("UPDATE audit_log SET prev_hash = :p, hash = :h WHERE id = :id"),
                {"p": prev, "h": new, "id": row["id"]},
            )
            prev = new
        await connection.execute(text("UPDATE audit_chain_head SET last_hash = :h"), {"h": prev})
        await connection.execute(text(RESTORE_TRIGGER[connection.dialect.name]))


async def seal_and_sign(engine: AsyncEngine, key) -> checkpoint.Checkpoint:
    async with async_sessionmaker(engine).begin() as session:
        await sealer.seal(session)
        signed = await sealer.sign_checkpoint(session, key, now=SystemClock().now())
    assert signed is not None
    return signed


@pytest.fixture
def scratch_settings(settings: Settings, scratch_engine: AsyncEngine) -> Settings:
    url = scratch_engine.url.render_as_string(hide_password=False)
    return settings.model_copy(update={"database_url": url})


async def test_a_checkpoint_exported_before_an_edit_fails_after_it(
    scratch_engine, scratch_settings, clock, tmp_path, capsys
):
    await append_committed(scratch_engine, clock, 6, "signed")
    key = audit_signing_key(scratch_settings)
    signed = await seal_and_sign(scratch_engine, key)
    assert signed.tree_size == 6
    exported = tmp_path / "checkpoint.json"
    exported.write_text(json.dumps(checkpoint.to_json(signed, key.public_key())))
    await append_committed(scratch_engine, clock, 2, "later")  # the chain grows past it

    assert await verify_audit(scratch_settings, checkpoint_file=exported) == 0
    out = capsys.readouterr().out
    assert "8 entries verified" in out and out.count("signature and root hold") == 2

    await edit_entry(scratch_engine, 3)
    assert await verify_audit(scratch_settings, checkpoint_file=exported) == 1
    assert "BROKEN at entry 3" in capsys.readouterr().err

    # The chain alone cannot tell once it is recomputed; the signed roots can.
    await recompute_chain(scratch_engine)
    assert await verify_audit(scratch_settings, checkpoint_file=exported) == 1
    captured = capsys.readouterr()
    assert "8 entries verified" in captured.out
    assert "exported checkpoint at tree size 6 FAILS" in captured.err
    assert "an entry it covers was changed" in captured.err
    assert "latest stored checkpoint at tree size 6 FAILS" in captured.err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not JSON"),
        ("[1, 2]", "a checkpoint is a JSON object"),
        ('{"tree_size": 1}', "missing field(s): root_hash"),
        (
            json.dumps(
                {
                    "tree_size": 1,
                    "root_hash": "zz" * 32,
                    "timestamp": "2026-12-04T19:00:00Z",
                    "key_id": "x",
                    "signature": "x",
                    "public_key": "x",
                }
            ),
            "root_hash must be 64 hex digits",
        ),
    ],
)
async def test_a_bad_checkpoint_file_gets_a_clear_error(
    scratch_settings, tmp_path, capsys, content, message
):
    path = tmp_path / "checkpoint.json"
    path.write_text(content)
    assert await verify_audit(scratch_settings, checkpoint_file=path) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


async def test_a_missing_checkpoint_file_gets_a_clear_error(scratch_settings, tmp_path, capsys):
    assert await verify_audit(scratch_settings, checkpoint_file=tmp_path / "none.json") == 1
    assert "cannot read checkpoint" in capsys.readouterr().err


async def test_a_forged_signature_is_refused(
    scratch_engine, scratch_settings, clock, tmp_path, capsys
):
    await append_committed(scratch_engine, clock, 2, "forged")
    key = audit_signing_key(scratch_settings)
    signed = await seal_and_sign(scratch_engine, key)
    data = checkpoint.to_json(signed, key.public_key())
    data["tree_size"] = 1  # a claim the key never signed
    path = tmp_path / "checkpoint.json"
    path.write_text(json.dumps(data))
    assert await verify_audit(scratch_settings, checkpoint_file=path) == 1
    assert "the signature is not valid" in capsys.readouterr().err


async def test_writes_and_denials_never_touch_the_chain_head(api, factories, engine):
    """A booking and a denial commit while another connection holds the head row locked
    (MariaDB; SQLite has one writer at a time), and none of their statements names it."""
    doctor = await factories.doctor()
    token = await factories.token(await factories.patient())
    statements: list[str] = []

    def capture(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    async with AsyncExitStack() as stack:
        if engine.dialect.name == "mysql":  # SQLite: the suite's one connection is the test's
            holder = await stack.enter_async_context(engine.connect())
            await holder.begin()
            await holder.execute(text("SELECT * FROM audit_chain_head WHERE id = 1 FOR UPDATE"))
        event.listen(engine.sync_engine, "before_cursor_execute", capture)
        try:
            booked = await asyncio.wait_for(
                api(
                    "POST",
                    "/appointments",
                    token=token,
                    json={"doctor_id": doctor.doctor.id, "scheduled_at": "2026-12-02T09:00:00Z"},
                ),
                timeout=10,
            )
            denied = await asyncio.wait_for(api("GET", "/users", token="garbage"), timeout=10)
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", capture)
    assert booked.status_code == 201, booked.text
    assert denied.status_code == 401
    assert any("INSERT INTO audit_pending" in s for s in statements)
    assert not [s for s in statements if "audit_chain_head" in s]


async def test_upgrading_builds_the_tree_of_the_chain_already_there(settings, tmp_path, clock):
    """A chain older than the sealer gets its Merkle tree from the migration, so the first
    checkpoint covers every entry from the first one."""
    import anyio.to_thread

    from ehass.audit.merkle import tree_hash
    from ehass.migrate import upgrade
    from ehass.models import Base
    from tests.servers import database_of_its_own

    async with database_of_its_own(settings, tmp_path, "pre_sealer") as (url, engine):
        async with engine.begin() as connection:
            for table in ("audit_pending", "audit_checkpoints", "audit_log", "audit_chain_head"):
                await connection.execute(text(f"DROP TABLE IF EXISTS {table}"))
            await connection.run_sync(Base.metadata.drop_all)
            await connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
        await anyio.to_thread.run_sync(upgrade, url, "8e5a2f71c4d9")
        prev, hashes = GENESIS_HASH, []
        async with engine.begin() as connection:
            for entry_id in range(1, 6):
                fields = {"id": entry_id, "at": clock.now(), "action": "old", "entity": "test"}
                entry_hash = link_hash(prev, fields)
                await connection.execute(
                    AuditEntry.__table__.insert().values(**fields, prev_hash=prev, hash=entry_hash)
                )
                prev, hashes = entry_hash, [*hashes, bytes.fromhex(entry_hash)]
            await connection.execute(
                text("UPDATE audit_chain_head SET last_id = 5, last_hash = :h"), {"h": prev}
            )
        await anyio.to_thread.run_sync(upgrade, url)
        key = audit_signing_key(settings)
        await append_committed(engine, clock, 1, "after-upgrade")
        signed = await seal_and_sign(engine, key)
        async with async_sessionmaker(engine).begin() as session:
            result = await audit.verify(session, roots_at={6})
            sixth = await session.scalar(text("SELECT hash FROM audit_log WHERE id = 6"))
    assert result.ok and result.checked == 6
    assert signed.tree_size == 6 and result.roots[6] == signed.root_hash
    assert signed.root_hash == tree_hash([*hashes, bytes.fromhex(sixth)]).hex()


async def test_after_a_key_change_the_next_pass_signs_with_the_new_key(
    scratch_engine, scratch_settings, clock, capsys
):
    import base64

    from pydantic import SecretStr

    await append_committed(scratch_engine, clock, 3, "rotation")
    await seal_and_sign(scratch_engine, audit_signing_key(scratch_settings))
    new_key = base64.b64encode(b"n" * 32).decode()
    rotated = scratch_settings.model_copy(update={"audit_signing_key": SecretStr(new_key)})
    assert await verify_audit(rotated) == 1
    assert "another key signed it" in capsys.readouterr().err
    signed = await seal_and_sign(scratch_engine, audit_signing_key(rotated))
    assert signed.tree_size == 3  # the same tree, now under the new key
    assert await verify_audit(rotated) == 0
    assert new_key not in capsys.readouterr().out
