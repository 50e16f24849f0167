"""`ehass backup` and `ehass restore`, run as real processes against SQLite files.

SQLite-only by nature: whatever EHASS_TEST_DATABASE_URL says, these tests make their own
temporary SQLite files with `ehass db upgrade` and `ehass seed-demo`.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ehass.backup import BackupError, backup_sqlite

SECRET = "backup-test-secret-that-is-long-enough-0123456789"
DEMO_ACCOUNTS = 9  # one administrator, five doctors, three patients
PAYLOAD = b"x" * 2000
# Sealed and not yet sealed: a copy holds both, and verifying it seals the rest.
AUDIT_ENTRIES = "SELECT (SELECT COUNT(*) FROM audit_log) + (SELECT COUNT(*) FROM audit_pending)"


def env_for(database: Path | str) -> dict[str, str]:
    url = database if isinstance(database, str) else f"sqlite+aiosqlite:///{database}"
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("EHASS_")},
        "EHASS_DATABASE_URL": url,
        "EHASS_SECRET_KEY": SECRET,
    }


def ehass(database: Path | str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ehass.cli", *args],
        env=env_for(database),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def refused(result: subprocess.CompletedProcess, *words: str) -> None:
    """Exit 1 with a one-line `ehass: ...` message naming the problem, never a traceback."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    message = [line for line in result.stderr.splitlines() if line.startswith("ehass: ")]
    assert len(message) == 1, result.stderr
    for word in words:
        assert word in message[0], message[0]


def audit_count(output: str) -> int:
    match = re.search(r"(\d+) entries verified", output)
    assert match, output
    return int(match.group(1))


def leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".partial")]


def scalar(database: Path, query: str) -> object:
    with sqlite3.connect(database) as connection:
        return connection.execute(query).fetchone()[0]


@pytest.fixture(scope="module")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("seeded") / "template.db"
    for command in (("db", "upgrade"), ("seed-demo",)):
        result = ehass(path, *command)
        assert result.returncode == 0, result.stderr
    return path


@pytest.fixture
def live(tmp_path: Path, seeded_template: Path) -> Path:
    """A migrated database with the demo data, as a server would leave it."""
    directory = tmp_path / "live"
    directory.mkdir()
    path = directory / "ehass.db"
    for suffix in ("", "-wal"):
        if Path(f"{seeded_template}{suffix}").exists():
            shutil.copyfile(f"{seeded_template}{suffix}", f"{path}{suffix}")
    return path


@pytest.fixture
def backups(tmp_path: Path) -> Path:
    directory = tmp_path / "backups"
    directory.mkdir()
    return directory


class Writer(threading.Thread):
    """Commits one row to each of two tables per transaction until stopped.

    A consistent copy always holds as many rows in one table as in the other, and as many
    as the counter says; a torn copy would not.
    """

    def __init__(self, database: Path, *, preload: int) -> None:
        super().__init__(daemon=True)
        self.database = database
        self.stop = threading.Event()
        self.commits = 0
        self.error: BaseException | None = None
        with self._connect() as connection:
            connection.executescript(
                """
                CREATE TABLE probe_a (id INTEGER PRIMARY KEY, payload BLOB);
                CREATE TABLE probe_b (id INTEGER PRIMARY KEY, payload BLOB);
                CREATE TABLE probe_total (n INTEGER);
                INSERT INTO probe_total VALUES (0);
                """
            )
            connection.execute("BEGIN")
            for table in ("probe_a", "probe_b"):
                connection.executemany(
                    f"INSERT INTO {table} (payload) VALUES (?)",  # noqa: S608
                    [(PAYLOAD,)] * preload,
                )
            connection.execute("UPDATE probe_total SET n = ?", (preload,))
            connection.execute("COMMIT")

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.database, isolation_level=None, timeout=30)
        connection.execute("PRAGMA journal_mode=WAL")
        return connection

    def _commit(self, connection: sqlite3.Connection) -> None:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO probe_a (payload) VALUES (?)", (PAYLOAD,))
        connection.execute("INSERT INTO probe_b (payload) VALUES (?)", (PAYLOAD,))
        connection.execute("UPDATE probe_total SET n = n + 1")
        connection.execute("COMMIT")

    def run(self) -> None:
        try:
            connection = self._connect()
            try:
                while not self.stop.is_set():
                    self._commit(connection)
                    self.commits += 1
            finally:
                connection.close()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def rows(self) -> int:
        return int(scalar(self.database, "SELECT n FROM probe_total"))


@pytest.fixture
def writer(live: Path) -> Iterator[Writer]:
    thread = Writer(live, preload=2000)  # about 8 MB: the copy takes many steps
    thread.start()
    yield thread
    thread.stop.set()
    thread.join(timeout=30)
    assert thread.error is None, thread.error


def assert_consistent(copy: Path, *, at_least: int, at_most: int) -> None:
    with sqlite3.connect(copy) as connection:
        a = connection.execute("SELECT COUNT(*), MAX(id) FROM probe_a").fetchone()
        b = connection.execute("SELECT COUNT(*), MAX(id) FROM probe_b").fetchone()
        (total,) = connection.execute("SELECT n FROM probe_total").fetchone()
        (integrity,) = connection.execute("PRAGMA integrity_check").fetchone()
    assert integrity == "ok"
    assert a == b == (total, total)
    assert at_least <= total <= at_most


def test_backup_while_a_writer_commits_restores_a_consistent_copy(live, writer, backups, tmp_path):
    before = writer.rows()
    commits_before = writer.commits
    backed_up = ehass(live, "backup", str(backups / "nightly.db"))
    commits_during = writer.commits - commits_before
    after = writer.rows()
    assert backed_up.returncode == 0, backed_up.stderr
    assert commits_during > 0  # the server kept writing all along
    assert re.search(r"backed up to .*nightly\.db: \d+ bytes, \d+ pages", backed_up.stdout)
    assert "100%" in backed_up.stderr and "page" in backed_up.stderr
    assert leftovers(backups) == []

    restored_db = tmp_path / "restored" / "ehass.db"
    restored_db.parent.mkdir()
    restored = ehass(restored_db, "restore", str(backups / "nightly.db"))
    assert restored.returncode == 0, restored.stderr
    assert_consistent(restored_db, at_least=before, at_most=after)
    assert scalar(restored_db, "SELECT COUNT(*) FROM users") == DEMO_ACCOUNTS
    assert scalar(restored_db, "SELECT COUNT(*) FROM doctors") == 5

    verified = ehass(restored_db, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert audit_count(verified.stdout) == audit_count(restored.stdout)
    # Verify seals what the copy holds unsealed, so it counts the live trail's pending too.
    assert audit_count(verified.stdout) == scalar(live, AUDIT_ENTRIES)


def test_every_step_reads_the_same_snapshot(live, writer, backups):
    """One page per step, commits landing between the steps: still one consistent state."""
    destination = backups / "slow.db"
    before, commits_before = writer.rows(), writer.commits
    result = backup_sqlite(
        f"sqlite+aiosqlite:///{live}", destination, progress=False, pages_per_step=1
    )
    assert writer.commits > commits_before
    assert_consistent(destination, at_least=before, at_most=writer.rows())
    assert result.destination == destination
    assert result.size == destination.stat().st_size
    assert result.pages == scalar(destination, "PRAGMA page_count")
    assert result.revision == scalar(destination, "SELECT version_num FROM alembic_version")
    assert result.audit_entries == scalar(destination, AUDIT_ENTRIES)
    assert scalar(destination, "PRAGMA journal_mode") == "delete"  # one self-contained file
    assert destination.stat().st_mode & 0o077 == 0  # health data: readable by the owner only
    assert leftovers(backups) == []


def test_backup_then_restore_verifies_the_same_number_of_audit_entries(live, backups, tmp_path):
    original = ehass(live, "audit", "verify")
    assert original.returncode == 0, original.stderr
    assert ehass(live, "backup", str(backups / "b.db")).returncode == 0

    fresh = tmp_path / "fresh.db"
    restored = ehass(fresh, "restore", str(backups / "b.db"))
    assert restored.returncode == 0, restored.stderr
    assert "revision" in restored.stdout and "bytes" in restored.stdout
    verified = ehass(fresh, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert audit_count(original.stdout) == audit_count(restored.stdout)
    assert audit_count(original.stdout) == audit_count(verified.stdout) > 0


def test_backup_refuses_to_overwrite_unless_told(live, backups):
    destination = backups / "b.db"
    destination.write_text("an older backup\n")
    result = ehass(live, "backup", str(destination))
    refused(result, "already exists", "--overwrite")
    assert destination.read_text() == "an older backup\n"

    replaced = ehass(live, "backup", str(destination), "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert scalar(destination, "SELECT COUNT(*) FROM users") == DEMO_ACCOUNTS
    assert leftovers(backups) == []


def test_backup_of_a_damaged_database_fails_and_leaves_nothing(live, backups):
    corrupt(live)
    result = ehass(live, "backup", str(backups / "b.db"))
    refused(result, "backup")
    assert list(backups.iterdir()) == []


def test_restore_refuses_to_replace_a_database_unless_told(live, backups):
    assert ehass(live, "backup", str(backups / "b.db")).returncode == 0
    leave_a_write_ahead_log(live)

    result = ehass(live, "restore", str(backups / "b.db"))
    refused(result, "already exists", "--overwrite")
    assert scalar(live, "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'written_after%'")

    # Side files left by a crash must not be replayed onto the restored database.
    leave_a_write_ahead_log(live)
    assert Path(f"{live}-wal").stat().st_size > 0
    replaced = ehass(live, "restore", str(backups / "b.db"), "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert "audit trail intact" in replaced.stdout
    assert not scalar(live, "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'written_after%'")
    assert ehass(live, "audit", "verify").returncode == 0
    assert leftovers(live.parent) == []


def test_restore_refuses_a_database_in_use(live, backups):
    assert ehass(live, "backup", str(backups / "b.db")).returncode == 0
    server = sqlite3.connect(live, isolation_level=None)
    try:
        server.execute("PRAGMA journal_mode=WAL")
        server.execute("SELECT COUNT(*) FROM users").fetchone()
        refused(ehass(live, "restore", str(backups / "b.db"), "--overwrite"), "in use")
    finally:
        server.close()


def test_restore_refuses_what_is_not_a_sqlite_database(tmp_path):
    target = tmp_path / "target.db"
    text = tmp_path / "notes.txt"
    text.write_text("not a database at all, but long enough to have a header\n")
    refused(ehass(target, "restore", str(text)), "not a SQLite database")
    refused(ehass(target, "restore", str(tmp_path / "missing.db")), "does not exist")
    assert not target.exists()


def test_restore_refuses_a_damaged_backup(live, backups, tmp_path):
    assert ehass(live, "backup", str(backups / "b.db")).returncode == 0
    corrupt(backups / "b.db")
    target_dir = tmp_path / "target"
    target_dir.mkdir()
    refused(ehass(target_dir / "ehass.db", "restore", str(backups / "b.db")), "b.db")
    assert list(target_dir.iterdir()) == []


def test_restore_refuses_a_database_of_unknown_origin(tmp_path):
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as connection:
        connection.execute("CREATE TABLE things (x)")
    connection.close()
    target = tmp_path / "target.db"
    refused(ehass(target, "restore", str(foreign)), "alembic_version")

    with sqlite3.connect(foreign) as connection:
        connection.execute("CREATE TABLE alembic_version (version_num VARCHAR(32))")
        connection.execute("INSERT INTO alembic_version VALUES ('ffffffffffff')")
    connection.close()
    refused(ehass(target, "restore", str(foreign)), "ffffffffffff")
    assert not target.exists()


def test_restore_reports_a_broken_audit_chain(live, backups, tmp_path):
    # Seal what seed-demo appended (the worker would have): tamper with chained entries.
    assert ehass(live, "audit", "verify").returncode == 0
    backup = backups / "b.db"
    assert ehass(live, "backup", str(backup)).returncode == 0
    with sqlite3.connect(backup) as connection:
        triggers = connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_log'"
        ).fetchall()
        assert triggers  # the append-only guards travel with the backup
        for (name,) in triggers:
            connection.execute(f'DROP TRIGGER "{name}"')
        connection.execute("UPDATE audit_log SET action = 'tampered' WHERE id = 3")
    connection.close()

    target = tmp_path / "target.db"
    result = ehass(target, "restore", str(backup))
    refused(result, "BROKEN at entry 3")
    assert target.exists()  # restored all the same: the operator decides what to do next


@pytest.mark.parametrize("command", ["backup", "restore"])
def test_a_mariadb_url_points_to_mariadb_dump(command, tmp_path):
    file = tmp_path / "b.db"
    file.write_bytes(b"")
    result = ehass("mysql+asyncmy://ehass:secret@127.0.0.1:3306/ehass", command, str(file))
    refused(result, "MariaDB", "docs/operations.md")
    assert "mariadb-dump" in result.stderr or "mariadb client" in result.stderr


def test_the_library_raises_a_clear_error_for_other_databases(tmp_path):
    with pytest.raises(BackupError, match="mariadb-dump"):
        backup_sqlite("mariadb+asyncmy://u:p@db/ehass", tmp_path / "b.db", progress=False)
    with pytest.raises(BackupError, match="in-memory"):
        backup_sqlite("sqlite+aiosqlite://", tmp_path / "b.db", progress=False)


def corrupt(database: Path) -> None:
    """Overwrites a run of pages after the schema page with garbage."""
    page_size = int(scalar(database, "PRAGMA page_size"))
    with database.open("r+b") as file:
        file.seek(page_size * 2)
        file.write(b"\xa5" * page_size * 6)


def leave_a_write_ahead_log(database: Path) -> None:
    """A committed table that is still only in the -wal file, as a killed server leaves it."""
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA wal_autocheckpoint=0")
    connection.execute("CREATE TABLE IF NOT EXISTS written_after_the_backup (x)")
    saved = {suffix: Path(f"{database}{suffix}").read_bytes() for suffix in ("-wal", "-shm")}
    connection.close()  # checkpoints and removes the log; put it back as a crash leaves it
    for suffix, content in saved.items():
        Path(f"{database}{suffix}").write_bytes(content)
