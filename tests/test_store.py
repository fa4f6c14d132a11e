"""The store's durability levels on PostgreSQL: step checkpoints commit without waiting for
the WAL flush; the commits whose loss could be seen wait as the server is configured to;
`fsync_steps` makes everything wait."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.sandbox.slack import SlackStandin
from bot.service import build
from tests.slackbot import settings_for
from workflows.sqlrows import PostgresRows
from workflows.state import State
from workflows.store import SQLStore
from workflows.testing.postgres import fresh_database
from workflows.types import AuditEntry, Record


async def levels(store: SQLStore) -> tuple[str, str]:
    rows = store.rows
    assert isinstance(rows, PostgresRows)
    async with rows.pool.acquire() as conn:
        step = await conn.fetchval("SHOW synchronous_commit")
    async with rows.transaction() as conn:
        durable = await conn.fetchval("SHOW synchronous_commit")
    return step, durable


@pytest.mark.parametrize(
    ("fsync_steps", "expected"), [(False, ("off", "on")), (True, ("on", "on"))]
)
async def test_commit_levels(
    postgres_url: str, fsync_steps: bool, expected: tuple[str, str]
) -> None:
    store = SQLStore(await fresh_database(postgres_url), fsync_steps=fsync_steps)
    await store.start()
    try:
        assert await levels(store) == expected
    finally:
        await store.close()


async def test_the_bot_setting_reaches_the_store(slack: SlackStandin, postgres_url: str) -> None:
    url = await fresh_database(postgres_url)
    service = build(settings_for(slack, url, fsync_steps=True))
    assert isinstance(service.engine.db, SQLStore)
    await service.engine.db.start()
    try:
        assert await levels(service.engine.db) == ("on", "on")
    finally:
        await service.engine.db.close()


async def test_a_stale_save_writes_none_of_its_audit_entries(database_url: str) -> None:
    """On PostgreSQL a record's audit entries go in the statement that writes it: a save
    that finds the row moved on must take them back with it, as SQLite's does."""
    store = SQLStore(database_url)
    await store.start()
    try:
        now = datetime.now(UTC)
        new = Record(
            id="w1",
            type="t",
            status="running",
            data={},
            state=State(),
            created_at=now,
            updated_at=now,
            audit=[AuditEntry("created")],
        )
        await store.create(new)
        first, second = await store.get("w1"), await store.get("w1")
        first.audit.append(AuditEntry("data_set", input={"a": 1}, actor="op"))
        assert await store.save(first)
        second.audit.append(AuditEntry("data_set", input={"a": 2}, actor="late"))
        assert not await store.save(second)
        history = await store.history("w1")
        assert [(h["kind"], h["actor"], h["input"]) for h in history] == [
            ("created", "", None),
            ("data_set", "op", {"a": 1}),
        ]
        assert (await store.get("w1")).version == 1
    finally:
        await store.close()
