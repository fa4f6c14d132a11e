"""Schema migrations (Alembic) on SQLite and PostgreSQL: the models and the migrations
agree, waiting workflows survive an upgrade, a newer schema is refused."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from tests.conftest import KitFactory
from tests.helpers import waiting_request
from tests.test_engine import Approval
from workflows import schema
from workflows.schema import SchemaTooNew
from workflows.store import SQLStore


def differences(connection: sa.Connection) -> list[Any]:
    return compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)


async def test_models_and_migrations_agree(database_url: str) -> None:
    store = SQLStore(database_url)
    await store.start()
    try:
        async with store.engine.connect() as conn:
            assert await conn.run_sync(differences) == []
            assert await conn.run_sync(schema.current) == schema.head()
    finally:
        await store.close()


async def test_waiting_workflows_survive_an_upgrade(
    make_kit: KitFactory, database_url: str
) -> None:
    old = await make_kit(Approval)
    wid = await old.engine.new_workflow(Approval())
    await old.drain()
    request = await waiting_request(old.engine, wid, "answer")
    store = old.engine.db
    assert isinstance(store, SQLStore)
    # Leave the database as the previous release did: at the first revision.
    async with store.engine.begin() as conn:
        await conn.run_sync(lambda c: command.downgrade(schema.config(c), "0001"))
        assert await conn.run_sync(schema.current) == "0001"
    await old.engine.close()

    new = await make_kit(Approval)  # starting upgrades to head
    async with new.engine.db.engine.connect() as conn:  # type: ignore[attr-defined]
        assert await conn.run_sync(schema.current) == schema.head()
    await new.engine.on_callback(request, "yes")
    await new.drain()
    info = await new.engine.get(wid)
    assert (info.status, info.output) == ("finished", "yes")
    # And the timer set up before the upgrade is still there and still fires elsewhere.
    other = await new.engine.new_workflow(Approval())
    await new.drain()
    await new.advance(timedelta(days=1))
    assert (await new.engine.get(other)).status == "failed"


async def test_a_newer_schema_is_refused(database_url: str) -> None:
    store = SQLStore(database_url)
    await store.start()
    async with store.engine.begin() as conn:
        await conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    await store.close()
    again = SQLStore(database_url)
    with pytest.raises(SchemaTooNew, match="revision '9999', newer than this code"):
        await again.start()
    await again.close()


async def test_processes_starting_together_migrate_once(postgres_url: str) -> None:
    from workflows.testing.postgres import fresh_database

    url = await fresh_database(postgres_url)
    stores = [SQLStore(url) for _ in range(4)]
    await asyncio.gather(*(s.start() for s in stores))
    async with stores[0].engine.connect() as conn:
        assert await conn.run_sync(schema.current) == schema.head()
    for s in stores:
        await s.close()
