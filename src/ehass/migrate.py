"""Applying and inspecting migrations from code (the CLI, startup checks, tests).

Alembic (and Mako behind it) weighs about 14 MiB per process; an app process only needs
the head revision for its readiness check, so it reads that from the version files and
imports Alembic only to migrate.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if database_url:
        # ConfigParser treats % as interpolation; URL-encoded passwords contain it.
        config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str | None = None, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)


def _revision_of(path: Path) -> tuple[str, str | None]:
    """The `revision` and `down_revision` a version file assigns, read without running it."""
    values: dict[str, str | None] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            for target in targets:
                if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                    values[target.id] = ast.literal_eval(node.value) if node.value else None
    return values["revision"], values.get("down_revision")  # type: ignore[return-value]


@lru_cache(maxsize=1)
def head_revision() -> str | None:
    """The one revision no other revision builds on (the chain is linear)."""
    revisions = [_revision_of(path) for path in (MIGRATIONS / "versions").glob("*.py")]
    parents = {down for _, down in revisions}
    heads = [revision for revision, _ in revisions if revision not in parents]
    if len(heads) != 1:
        raise RuntimeError(f"the migrations must form one chain; heads: {sorted(heads)}")
    return heads[0]
