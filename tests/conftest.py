"""Shared fixtures: every engine behaviour runs on a real SQLite file and on a real
PostgreSQL server (started once per test session; `TEST_POSTGRES_URL` points at an
existing server instead)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from bot.sandbox.slack import SlackStandin
from callbacks import default_callbacks
from tests.helpers import ManualManager
from tests.slackbot import Bot, running_bot, standin
from workflows import Workflow
from workflows.testing import WorkflowTestKit
from workflows.testing.postgres import PostgresServer


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


async def fresh_postgres_database(server_url: str) -> str:
    """Create an empty database on the server and return its plain URL."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'workflows.db'}"
    else:
        server_url = request.getfixturevalue("postgres_url")
        yield await fresh_postgres_database(server_url)


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
