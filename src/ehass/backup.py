"""`ehass backup` and `ehass restore`: consistent copies of a SQLite database.

A backup reads one snapshot of the database through SQLite's online backup API while the
servers keep writing (WAL mode lets writers go on while the snapshot is held), writes it
to a temporary file beside the destination, checks it with `PRAGMA integrity_check` and
only then gives it its final name, so a crash never leaves half a backup under that name.

A restore checks the backup (a SQLite database, intact, at a revision of our migrations),
installs it the same way, and then recomputes the audit chain of the restored database.

MariaDB/MySQL databases are backed up with `mariadb-dump` instead (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from tqdm import tqdm

from ehass.audit.service import Verification

SQLITE_MAGIC = b"SQLite format 3\x00"
SIDE_FILES = ("-wal", "-shm", "-journal")
MARIADB_HINTS = {
    "back up": "back it up with mariadb-dump --single-transaction --routines --triggers",
    "restore": "restore a mariadb-dump file with the mariadb client",
}


class BackupError(Exception):
    """A refusal or a failure, with a message meant for the operator."""


@dataclass(frozen=True, slots=True)
class BackupResult:
    destination: Path
    size: int
    pages: int
    revision: str | None
    audit_entries: int | None

    def describe(self) -> str:
        return (
            f"backed up to {self.destination}: {self.size} bytes, {self.pages} pages, "
            f"revision {self.revision or 'unknown'}, "
            f"{self.audit_entries if self.audit_entries is not None else 'no'} audit entries"
        )


@dataclass(frozen=True, slots=True)
class RestoreResult:
    database: Path
    size: int
    pages: int
    revision: str
    at_head: bool
    verification: Verification

    @property
    def ok(self) -> bool:
        return self.verification.ok

    @property
    def checked(self) -> int:
        return self.verification.checked

    @property
    def first_bad_id(self) -> int | None:
        return self.verification.first_bad_id

    def describe(self) -> str:
        return (
            f"restored {self.database}: {self.size} bytes, {self.pages} pages, "
            f"revision {self.revision}"
        )


def sqlite_path(database_url: str, *, action: str) -> Path:
    """The file behind a SQLite URL; a clear refusal for anything else."""
    try:
        url = make_url(database_url)
    except ArgumentError:
        raise BackupError(f"cannot parse the database URL for {action}") from None
    backend = url.get_backend_name()
    if backend in {"mysql", "mariadb"}:
        raise BackupError(
            f"the database is MariaDB/MySQL: {MARIADB_HINTS[action]} instead "
            "(see docs/operations.md)"
        )
    if backend != "sqlite":
        raise BackupError(f"cannot {action} a {backend} database; only SQLite files")
    if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
        raise BackupError(f"cannot {action} {url.database or 'an in-memory database'!r}")
    return Path(url.database)


def backup_sqlite(
    database_url: str,
    destination: Path,
    *,
    progress: bool,
    overwrite: bool = False,
    pages_per_step: int | None = None,
) -> BackupResult:
    """Copies one consistent snapshot of the live database to `destination`."""
    source_path = sqlite_path(database_url, action="back up")
    destination = Path(destination)
    if not source_path.is_file():
        raise BackupError(f"database file {source_path} does not exist")
    _check_destination(destination, overwrite=overwrite)
    if destination.exists() and destination.samefile(source_path):
        raise BackupError("the destination is the database itself")

    source = _connect(source_path)
    try:
        with _temporary_beside(destination) as partial:
            target = sqlite3.connect(partial, isolation_level=None)
            try:
                # One read transaction for the whole copy: every step reads the same
                # snapshot, and in WAL mode writers are not held up by it.
                source.execute("BEGIN")
                source.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
                total = source.execute("PRAGMA page_count").fetchone()[0]
                step = pages_per_step or max(256, total // 200)
                _copy(source, target, total=total, step=step, progress=progress)
                source.execute("COMMIT")
                _finish_copy(target)
                revision = _revision(target)
                audit_entries = _audit_count(target)
            finally:
                target.close()
            _install(partial, destination, overwrite=overwrite)
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"backup of {source_path} failed: {exc}") from None
    finally:
        source.close()
    return BackupResult(
        destination=destination,
        size=destination.stat().st_size,
        pages=total,
        revision=revision,
        audit_entries=audit_entries,
    )


def restore_sqlite(
    source: Path, database_url: str, *, overwrite: bool, progress: bool = False
) -> RestoreResult:
    """Installs a backup as the database, then recomputes its audit chain.

    Runs its own event loop for the verification: call it from synchronous code.
    """
    target_path = sqlite_path(database_url, action="restore")
    source = Path(source)
    if not source.is_file():
        raise BackupError(f"backup file {source} does not exist")
    with source.open("rb") as file:
        if file.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
            raise BackupError(f"{source} is not a SQLite database")
    _check_destination(target_path, overwrite=overwrite)
    if target_path.exists():
        if target_path.samefile(source):
            raise BackupError("the backup file is the database itself")
        _refuse_when_in_use(target_path)

    try:
        reader = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot open {source}: {exc}") from None
    try:
        with _temporary_beside(target_path) as partial:
            target = sqlite3.connect(partial, isolation_level=None)
            try:
                reader.execute("BEGIN")
                total = reader.execute("PRAGMA page_count").fetchone()[0]
                _copy(reader, target, total=total, step=max(256, total // 200), progress=progress)
                reader.execute("COMMIT")
                _finish_copy(target)
                revision = _revision(target)
            finally:
                target.close()
            if revision is None:
                raise BackupError(f"{source} has no alembic_version table: not an EHASS database")
            at_head = _check_revision(revision, source)
            if target_path.exists():  # keep the owner's permissions on the replaced file
                os.chmod(partial, target_path.stat().st_mode & 0o777)
            # A stale write-ahead log would be replayed onto the restored file.
            for suffix in SIDE_FILES:
                Path(f"{target_path}{suffix}").unlink(missing_ok=True)
            _install(partial, target_path, overwrite=overwrite)
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{source} cannot be restored: {exc}") from None
    finally:
        reader.close()
    verification = asyncio.run(_verify_audit(target_path))
    return RestoreResult(
        database=target_path,
        size=target_path.stat().st_size,
        pages=total,
        revision=revision,
        at_head=at_head,
        verification=verification,
    )


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, timeout=30)
    connection.execute("PRAGMA busy_timeout=30000")
    return connection


def _check_destination(path: Path, *, overwrite: bool) -> None:
    if path.is_dir():
        raise BackupError(f"{path} is a directory")
    if not path.parent.is_dir():
        raise BackupError(f"directory {path.parent} does not exist")
    if path.exists() and not overwrite:
        raise BackupError(f"{path} already exists; give --overwrite to replace it")


def _refuse_when_in_use(path: Path) -> None:
    """Every connection to a WAL database holds a shared lock on one byte of its -shm file
    (the "DMS" byte, offset 128 on Unix); if that byte cannot be locked exclusively, some
    process has the database open."""
    try:
        import fcntl
    except ImportError:  # not on Unix: the runbook says to stop the servers first
        return
    shm = Path(f"{path}-shm")
    try:
        file = shm.open("r+b")
    except OSError:
        return  # no shared-memory file: no connection in WAL mode
    with file:
        try:
            fcntl.lockf(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 128)
        except OSError:
            raise BackupError(
                f"{path} is in use; stop every ehass process using it before restoring"
            ) from None
        fcntl.lockf(file.fileno(), fcntl.LOCK_UN, 1, 128)


def _copy(
    source: sqlite3.Connection, target: sqlite3.Connection, *, total: int, step: int, progress: bool
) -> None:
    with tqdm(total=total, unit="page", file=sys.stderr, disable=not progress) as bar:

        def report(_status: int, remaining: int, pages: int) -> None:
            bar.total = pages
            bar.n = pages - remaining
            bar.refresh()

        source.backup(target, pages=step, progress=report)


def _finish_copy(target: sqlite3.Connection) -> None:
    """A single self-contained file, checked page by page."""
    target.execute("PRAGMA journal_mode=DELETE")
    problems = [row[0] for row in target.execute("PRAGMA integrity_check(20)")]
    if problems != ["ok"]:
        raise BackupError("the copy fails integrity_check: " + "; ".join(problems[:5]))


def _revision(connection: sqlite3.Connection) -> str | None:
    try:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:
        return None
    return row[0] if row else None


def _audit_count(connection: sqlite3.Connection) -> int | None:
    """Sealed entries plus those committed but not sealed yet (none before the sealer)."""
    try:
        sealed = connection.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0]
    except sqlite3.OperationalError:
        return None
    try:
        pending = connection.execute("SELECT COUNT(*) FROM audit_pending").fetchone()[0]
    except sqlite3.OperationalError:
        pending = 0
    return sealed + pending


def _check_revision(revision: str, source: Path) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    from ehass.migrate import alembic_config

    scripts = ScriptDirectory.from_config(alembic_config())
    try:
        known = scripts.get_revision(revision) is not None
    except CommandError:
        known = False
    if not known:
        raise BackupError(f"{source} is at revision {revision!r}, which this version does not know")
    return revision == scripts.get_current_head()


@contextlib.contextmanager
def _temporary_beside(destination: Path) -> Iterator[Path]:
    """A private temporary file in the destination's directory, removed unless installed."""
    handle, name = tempfile.mkstemp(
        dir=destination.parent, prefix=f".{destination.name}.", suffix=".partial"
    )
    os.close(handle)
    partial = Path(name)
    try:
        yield partial
    finally:
        for path in (partial, *(Path(f"{partial}{suffix}") for suffix in SIDE_FILES)):
            path.unlink(missing_ok=True)


def _install(partial: Path, destination: Path, *, overwrite: bool) -> None:
    """Durably renames the finished copy to its final name."""
    with partial.open("rb+") as file:
        os.fsync(file.fileno())
    if overwrite:
        os.replace(partial, destination)
    else:
        try:
            os.link(partial, destination)  # fails if the name appeared meanwhile
        except FileExistsError:
            raise BackupError(
                f"{destination} already exists; give --overwrite to replace it"
            ) from None
        except OSError:  # a file system without hard links
            if destination.exists():
                raise BackupError(
                    f"{destination} already exists; give --overwrite to replace it"
                ) from None
            os.replace(partial, destination)
        else:
            partial.unlink()
    with contextlib.suppress(OSError):  # not every platform can fsync a directory
        directory = os.open(destination.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


async def _verify_audit(path: Path) -> Verification:
    from sqlalchemy import inspect
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from ehass.audit.service import verify

    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with async_sessionmaker(engine).begin() as session:
            # Entries committed before the backup but not sealed yet are sealed now, as the
            # worker would; a backup older than the sealer has no pending table to seal.
            connection = await session.connection()
            pending = await connection.run_sync(
                lambda sync: inspect(sync).has_table("audit_pending")
            )
            return await verify(session, seal_first=pending)
    finally:
        await engine.dispose()
