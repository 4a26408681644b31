"""Apply the Alembic migrations in `migrations/` to a database."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from adapters.database import sqlalchemy_url

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def migrate(database_url: str, revision: str = "head") -> None:
    """Bring the database schema up to a revision, the newest unless told."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    command.upgrade(config, revision)


def head_revision() -> str:
    """The newest migration's revision: where `migrate` brings a database."""
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations in {MIGRATIONS}")
    return head


def known_revisions() -> set[str]:
    """Every migration's revision."""
    return {script.revision for script in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}
