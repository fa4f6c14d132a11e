"""The store's durability levels on PostgreSQL: step checkpoints commit without waiting for
the WAL flush; the commits whose loss could be seen wait as the server is configured to;
`fsync_steps` makes everything wait."""

from __future__ import annotations

import pytest

from bot.sandbox.slack import SlackStandin
from bot.service import build
from tests.slackbot import settings_for
from workflows.sqlrows import PostgresRows
from workflows.store import SQLStore
from workflows.testing.postgres import fresh_database


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
