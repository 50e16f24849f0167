"""The Alembic migrations build exactly the schema the models describe, on this backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from ehass.migrate import head_revision
from ehass.models import Base


async def test_migrations_match_the_models(engine):
    async with engine.connect() as connection:
        diff = await connection.run_sync(
            lambda sync: compare_metadata(
                MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata
            )
        )
    assert diff == []


async def test_database_is_at_the_head_revision(engine):
    async with engine.connect() as connection:
        current = (
            await connection.execute(text("SELECT version_num FROM alembic_version"))
        ).scalar()
    assert current == head_revision()
