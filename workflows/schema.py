"""Bringing a database's tables up to date with Alembic, safely from several processes.

The engine runs this at start; `approval-bot migrate` runs it alone. A database whose
schema is newer than this code (written by a later release) is refused: running old code
on it could corrupt what the newer code stored.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, text

from workflows.errors import WorkflowError

MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_KEY = 4_812_001  # pg_advisory_xact_lock key: one migrating process at a time


class SchemaTooNew(WorkflowError):
    """The database schema is newer than this code: upgrade the code, do not run it."""


def config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(config())


def head() -> str:
    revision = scripts().get_current_head()
    assert revision is not None
    return revision


def current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Migrate inside the caller's transaction (serialised across processes)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    check_not_newer(connection)
    command.upgrade(config(connection), revision)


def check_not_newer(connection: Connection) -> None:
    found = current(connection)
    if found is None:
        return
    try:
        scripts().get_revision(found)
    except CommandError:
        raise SchemaTooNew(
            f"the database schema is at revision {found!r}, newer than this code "
            f"(which knows up to {head()!r}): run a newer release"
        ) from None
