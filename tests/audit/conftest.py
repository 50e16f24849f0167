from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from ehass.config import Settings
from tests.servers import database_of_its_own


@pytest.fixture
async def scratch_engine(settings: Settings, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A database of its own: the tamper test drops a trigger, which would commit (MariaDB)
    the shared test transaction."""
    async with database_of_its_own(settings, tmp_path, "audit") as (_, engine):
        yield engine
