"""What importing costs: writing a workflow, or asking the command line for its help, must
not load the database layer (SQLAlchemy, SQLModel and Alembic take seconds to import)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import workflows
from bot.operator import STATUSES
from tests.processes import ROOT
from workflows.state import Status

DATABASE_LAYER = {"sqlalchemy", "alembic", "sqlmodel"}


def imported(*args: str) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """The top-level packages a fresh interpreter imports to run `args`, by its own
    account (`-X importtime`)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    names = {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "workflows" in names or "bot" in names or "click" in names, result.stderr[-2000:]
    return names, result


def test_the_statements_import_without_the_database_layer() -> None:
    names, _ = imported("-c", "import workflows.statements; from workflows import S, Step, Wait")
    assert "workflows" in names
    assert names & DATABASE_LAYER == set()


def test_help_lists_every_command_without_loading_the_bot() -> None:
    names, result = imported("-m", "bot", "--help")
    commands = result.stdout.split("Commands:", 1)[1].split()
    for command in ("manifest", "migrate", "run", "sandbox", "workflows"):
        assert command in commands, result.stdout
    assert names & (DATABASE_LAYER | {"slack_bolt", "slack_sdk", "aiohttp", "apscheduler"}) == set()
    names, result = imported("-m", "bot", "workflows", "--help")
    assert [
        line.split()[0] for line in result.stdout.split("Commands:", 1)[1].splitlines()[1:]
    ] == [
        "cancel",
        "export",
        "goto",
        "list",
        "retry",
        "set",
        "show",
    ]
    assert names & DATABASE_LAYER == set()


def test_every_public_name_still_resolves() -> None:
    from workflows.engine import Engine, WorkflowInfo
    from workflows.workflow import Workflow

    assert (workflows.Engine, workflows.WorkflowInfo) == (Engine, WorkflowInfo)
    assert workflows.Workflow is Workflow
    for name in workflows.__all__:
        assert getattr(workflows, name) is not None
    assert set(workflows.__all__) <= set(dir(workflows))
    with pytest.raises(AttributeError, match="has no attribute 'Engin'"):
        workflows.Engin  # noqa: B018


def test_the_status_choices_of_the_cli_are_the_engines() -> None:
    assert [s.value for s in Status] == STATUSES
