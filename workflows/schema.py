"""Bringing a database's tables up to date with Alembic, safely from several processes.

The engine runs this at start; `approval-bot migrate` runs it alone. A database whose
schema is newer than this code (written by a later release) is refused: running old code
on it could corrupt what the newer code stored.
"""

from __future__ import annotations

import logging
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


class _SetupAtDebug(logging.Filter):
    """Alembic announces its dialect settings ("Context impl ...", "Will assume ...") at
    INFO whenever it looks at a database, at every start; they are DEBUG here, so INFO
    shows only the migrations that actually run ("Running upgrade ...")."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and str(record.msg).startswith(
            ("Context impl", "Will assume")
        ):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


logging.getLogger("alembic.runtime.migration").addFilter(_SetupAtDebug())


class SchemaTooNew(WorkflowError):
    """The database schema is newer than this code: upgrade the code, do not run it."""


class SchemaNotCurrent(WorkflowError):
    """The database has no workflow tables, or an older schema than this code's."""

    def __init__(self, message: str, found: str | None) -> None:
        super().__init__(message)
        self.found = found
        """The database's revision (None: no tables)."""


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


def check_current(connection: Connection) -> None:
    """Refuse a database this code cannot use as it is, changing nothing (for tools that
    must not create or upgrade tables)."""
    check_not_newer(connection)
    found = current(connection)
    if found is None:
        raise SchemaNotCurrent("the database has no workflow tables", found)
    if found != head():
        raise SchemaNotCurrent(
            f"the database schema is at revision {found!r}, older than this code's {head()!r}",
            found,
        )
