"""Shared fixtures: every engine behaviour runs on a real SQLite file and on a real
PostgreSQL server (started once per test session; `TEST_POSTGRES_URL` points at an
existing server instead)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.sandbox.slack import SlackStandin
from callbacks import default_callbacks
from tests.helpers import ManualManager
from tests.slackbot import Bot, running_bot, standin
from workflows import Workflow
from workflows.testing import WorkflowTestKit
from workflows.testing.postgres import PostgresServer, fresh_database


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    if url := os.environ.get("TEST_POSTGRES_URL"):
        yield url
        return
    server = PostgresServer().start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'workflows.db'}"
    else:
        server_url = request.getfixturevalue("postgres_url")
        yield await fresh_database(server_url)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def every_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The shipped in-memory store and a fresh database of each kind: what behaves the
    same on all three is tested on all three."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'workflows.db'}"
    return await fresh_database(request.getfixturevalue("postgres_url"))


KitFactory = Callable[..., Awaitable[WorkflowTestKit]]


@pytest.fixture
def kit_url(database_url: str) -> str:
    """The database `make_kit` uses; modules may widen it (e.g. to the in-memory store)."""
    return database_url


@pytest.fixture
async def make_kit(kit_url: str) -> AsyncIterator[KitFactory]:
    """Build a `WorkflowTestKit` on this test's database (fake clock, drain resumer)."""
    kits: list[WorkflowTestKit] = []

    async def make(*workflows: type[Workflow], **options: Any) -> WorkflowTestKit:
        options.setdefault("callbacks", {**default_callbacks(), "manual": ManualManager()})
        kit = WorkflowTestKit(list(workflows), database_url=kit_url, **options)
        await kit.__aenter__()
        kits.append(kit)
        return kit

    yield make
    for kit in kits:
        await kit.__aexit__(None, None, None)


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandin]:
    async with standin() as s:
        yield s


@pytest.fixture
async def bot(slack: SlackStandin, tmp_path: Path) -> AsyncIterator[Bot]:
    """The real bot on a SQLite file, over HTTP, against the Slack stand-in."""
    async with running_bot(slack, f"sqlite:///{tmp_path / 'bot.db'}") as b:
        yield b


@pytest.fixture
async def bot_on_each_db(slack: SlackStandin, database_url: str) -> AsyncIterator[Bot]:
    """The same, once on SQLite and once on PostgreSQL."""
    async with running_bot(slack, database_url) as b:
        yield b
