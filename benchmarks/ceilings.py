"""Raw database ceilings: what a driver alone does for one single-writer checkpoint.

    uv run --group bench python -m benchmarks.ceilings [--seconds 3] [--sqlite-path FILE] \\
        [--postgresql-url postgresql://postgres@127.0.0.1:PORT/postgres]

A checkpoint is a read-modify-write of one ~2 KB JSON document: one transaction reads the
row (FOR UPDATE on PostgreSQL, BEGIN IMMEDIATE on SQLite), changes a field and writes it
back. Each function loops on it for `seconds` and returns transactions/s, which bounds what
any engine on that driver can checkpoint. Every call uses a table of its own and drops it,
so calls never collide. The CLI prints one JSON object; without --sqlite-path the SQLite
figures use a fresh temporary file, and PostgreSQL is measured only with --postgresql-url.
psycopg belongs to the bench dependency group, so it is imported only where it is used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def _document() -> dict[str, Any]:
    """The checkpointed document: a counter beside ~2 KB of payload."""
    return {"n": 0, "payload": "x" * 2000}


def _table_name() -> str:
    return f"ceiling_{uuid.uuid4().hex[:12]}"


def _table(name: str) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("doc", sa.JSON, nullable=False),
    )


def sqlite3_sync(path: str | Path, seconds: float = 3.0) -> float:
    """stdlib sqlite3, WAL, synchronous=NORMAL, one BEGIN IMMEDIATE transaction each."""
    name = _table_name()
    conn = sqlite3.connect(path, isolation_level=None)  # we issue BEGIN/COMMIT ourselves
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, doc TEXT NOT NULL)")
        conn.execute(f"INSERT INTO {name} (id, doc) VALUES (1, ?)", (json.dumps(_document()),))
        select = f"SELECT doc FROM {name} WHERE id = 1"
        update = f"UPDATE {name} SET doc = ? WHERE id = 1"
        count = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            conn.execute("BEGIN IMMEDIATE")
            doc = json.loads(conn.execute(select).fetchone()[0])
            doc["n"] += 1
            conn.execute(update, (json.dumps(doc),))
            conn.execute("COMMIT")
            count += 1
        elapsed = time.perf_counter() - started
        conn.execute(f"DROP TABLE {name}")
    finally:
        conn.close()
    return count / elapsed


def _sqlite_pragmas(engine: AsyncEngine) -> None:
    """The same settings as sqlite3_sync, with the driver's own transaction handling off."""

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


async def _sqlalchemy_loop(engine: AsyncEngine, seconds: float, for_update: bool) -> float:
    """The read-modify-write loop on SQLAlchemy Core over an async engine."""
    table = _table(_table_name())
    select = table.select().where(table.c.id == 1)
    if for_update:
        select = select.with_for_update()
    try:
        async with engine.begin() as conn:
            await conn.run_sync(table.metadata.create_all)
            await conn.execute(table.insert().values(id=1, doc=_document()))
        count = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            async with engine.begin() as conn:
                doc = dict((await conn.execute(select)).one().doc)
                doc["n"] += 1
                await conn.execute(table.update().where(table.c.id == 1).values(doc=doc))
            count += 1
        elapsed = time.perf_counter() - started
        async with engine.begin() as conn:
            await conn.run_sync(table.metadata.drop_all)
    finally:
        await engine.dispose()
    return count / elapsed


async def sqlite_sqlalchemy_async(path: str | Path, seconds: float = 3.0) -> float:
    """SQLAlchemy asyncio over aiosqlite, with sqlite3_sync's pragmas and BEGIN IMMEDIATE."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    _sqlite_pragmas(engine)
    return await _sqlalchemy_loop(engine, seconds, for_update=False)


def psycopg_sync(url: str, seconds: float = 3.0) -> float:
    """psycopg 3, synchronous: SELECT ... FOR UPDATE, UPDATE, COMMIT."""
    import psycopg
    from psycopg.types.json import Json

    name = _table_name()
    with psycopg.connect(url) as conn:
        conn.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, doc JSON NOT NULL)")
        conn.execute(f"INSERT INTO {name} (id, doc) VALUES (1, %s)", (Json(_document()),))
        conn.commit()
        select = f"SELECT doc FROM {name} WHERE id = 1 FOR UPDATE"
        update = f"UPDATE {name} SET doc = %s WHERE id = 1"
        count = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            row = conn.execute(select).fetchone()
            assert row is not None
            doc = row[0]  # psycopg loads json columns into Python objects
            doc["n"] += 1
            conn.execute(update, (Json(doc),))
            conn.commit()
            count += 1
        elapsed = time.perf_counter() - started
        conn.execute(f"DROP TABLE {name}")
        conn.commit()
    return count / elapsed


async def asyncpg_sqlalchemy(url: str, seconds: float = 3.0) -> float:
    """SQLAlchemy asyncio over asyncpg: SELECT ... FOR UPDATE, UPDATE, COMMIT."""
    engine = create_async_engine(sa.make_url(url).set(drivername="postgresql+asyncpg"))
    return await _sqlalchemy_loop(engine, seconds, for_update=True)


def measure(sqlite_path: Path, postgresql_url: str | None, seconds: float) -> dict[str, float]:
    """Every ceiling in turn, one driver at a time so they never compete for the machine."""
    results = {
        "sqlite3_sync": sqlite3_sync(sqlite_path, seconds),
        "sqlite_sqlalchemy_async": asyncio.run(sqlite_sqlalchemy_async(sqlite_path, seconds)),
    }
    if postgresql_url is not None:
        results["psycopg_sync"] = psycopg_sync(postgresql_url, seconds)
        results["asyncpg_sqlalchemy"] = asyncio.run(asyncpg_sqlalchemy(postgresql_url, seconds))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--sqlite-path", type=Path, help="default: a fresh temporary file")
    parser.add_argument("--postgresql-url", help="plain postgresql:// URL; omit to skip")
    args = parser.parse_args()
    if args.sqlite_path is not None:
        results = measure(args.sqlite_path, args.postgresql_url, args.seconds)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            results = measure(Path(tmp) / "ceiling.db", args.postgresql_url, args.seconds)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
