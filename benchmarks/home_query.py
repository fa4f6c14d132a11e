"""The App Home's queries with 100,000 workflows in the database: their plans and timings.
Prints figures; asserts nothing.

    uv run python -m benchmarks.home_query [--workflows 100000] [--people 1000] [--runs 300]

It fills a real SQLite file and a real PostgreSQL database directly (bulk inserts, as a
year of requests would leave them): --workflows approval workflows, each with a requester
and two approvers drawn from --people people (a fifth of the workflows still waiting),
plus one approver with 150 requests waiting on them and 500 decided. Then it prints the
plan of each query a Home runs (EXPLAIN QUERY PLAN on SQLite, EXPLAIN on PostgreSQL, for
that busy approver) and the time each takes, and a whole Home's (what `Home.inbox` asks:
two counts, two pages, the latest decided), as p50 and p99 over --runs.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from workflows.store import SQLStore, count_parties_query, parties_query
from workflows.tables import P, W

BUSY = "U0BUSY"
BATCH = 5000


def fill(conn: sa.Connection, workflows: int, people: int) -> None:
    rng = random.Random(7)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    users = [f"U{n:07d}" for n in range(people)]
    rows: list[dict[str, Any]] = []
    parties: list[dict[str, Any]] = []

    def flush() -> None:
        if rows:
            conn.execute(W.insert(), rows)
            conn.execute(P.insert(), parties)
        rows.clear()
        parties.clear()

    def workflow(n: int, requester: str, approvers: list[str], open: bool) -> None:
        wid = f"w{n:07d}"
        at = start + timedelta(minutes=n)
        rows.append(
            {
                "id": wid,
                "type": "approval",
                "status": "waiting" if open else "finished",
                "data": {},
                "state": {},
                "output": None,
                "error": None,
                "version": 3,
                "attempts": 0,
                "due_at": None,
                "lease_owner": None,
                "lease_expires_at": None,
                "created_at": at,
                "updated_at": at,
            }
        )
        common = {"workflow_id": wid, "part": "", "title": f"Request {n}", "since": at}
        stand = "0 of 1 approved" if open else "Approved by <@U0000001>"
        decided = at + timedelta(minutes=5)
        parties.append(
            {
                **common,
                "person": requester,
                "role": "requester",
                "stand": stand,
                "open": open,
                "updated_at": at if open else decided,
            }
        )
        for user in approvers:
            parties.append(
                {
                    **common,
                    "person": user,
                    "role": "approver",
                    "open": open,
                    "stand": "waiting" if open else "You approved",
                    "updated_at": at if open else decided,
                }
            )
        if len(rows) >= BATCH:
            flush()

    busy = 150 + 500
    for n in range(workflows - busy):
        requester, *approvers = rng.sample(users, 3)
        workflow(n, requester, approvers, rng.random() < 0.2)
    for n in range(workflows - busy, workflows):
        requester = rng.choice(users)
        workflow(n, requester, [BUSY], open=n >= workflows - 150)
    flush()


def queries() -> dict[str, Any]:
    """Each query a Home runs, for the busy approver (as `Home.inbox` asks them)."""
    return {
        "count waiting on them": count_parties_query(BUSY, open=True, role="approver"),
        "page of waiting (oldest first)": parties_query(
            BUSY, open=True, role="approver", limit=20, offset=0
        ),
        "count their open requests": count_parties_query(BUSY, open=True, role="requester"),
        "page of their requests": parties_query(BUSY, open=True, role="requester", limit=10),
        "recently decided (latest first)": parties_query(BUSY, open=False, limit=20),
    }


async def plans(store: SQLStore) -> list[str]:
    lines: list[str] = []

    def explain(conn: sa.Connection) -> None:
        sqlite = conn.dialect.name == "sqlite"
        if not sqlite:
            conn.exec_driver_sql("ANALYZE")
        for name, query in queries().items():
            sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
            prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
            found = conn.exec_driver_sql(prefix + sql).fetchall()
            lines.append(f"  {name}:")
            lines.extend(f"    {row[-1] if sqlite else row[0]}" for row in found)

    if store.is_sqlite:
        await store._run(explain)
    else:
        async with store.engine.begin() as conn:
            await conn.run_sync(explain)
    return lines


async def timed(call: Callable[[], Awaitable[Any]], runs: int) -> tuple[float, float]:
    for _ in range(10):  # warm the caches and the connection
        await call()
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        seconds.append(time.perf_counter() - started)
    seconds.sort()
    p99 = seconds[min(len(seconds) - 1, int(len(seconds) * 0.99))]
    return statistics.median(seconds) * 1000, p99 * 1000


async def measure(name: str, url: str, workflows: int, people: int, runs: int) -> None:
    store = SQLStore(url)
    await store.start()
    started = time.perf_counter()
    await store._run(lambda conn: fill(conn, workflows, people))
    filled = time.perf_counter() - started
    counted = await store._run(
        lambda conn: conn.execute(sa.select(sa.func.count()).select_from(P)).scalar()
    )
    print(f"{name}: {workflows:,} workflows, {counted:,} party rows (filled in {filled:.1f}s)")
    print(
        f"  {BUSY}: {await store.count_parties(BUSY, open=True, role='approver')} waiting on them"
    )
    for line in await plans(store):
        print(line)

    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "count waiting": lambda: store.count_parties(BUSY, open=True, role="approver"),
        "page of waiting": lambda: store.parties(BUSY, open=True, role="approver", limit=20),
        "count requests": lambda: store.count_parties(BUSY, open=True, role="requester"),
        "page of requests": lambda: store.parties(BUSY, open=True, role="requester", limit=10),
        "recently decided": lambda: store.parties(BUSY, open=False, limit=20),
    }

    async def whole_home() -> None:
        for call in calls.values():
            await call()

    for what, call in {**calls, "a whole Home (all five)": whole_home}.items():
        p50, p99 = await timed(call, runs)
        print(f"  {what}: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    await store.close()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workflows", type=int, default=100_000)
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'home.db'}"
        await measure("SQLite", url, args.workflows, args.people, args.runs)
    if not args.no_postgres:
        from workflows.testing.postgres import PostgresServer

        with PostgresServer() as pg:
            await measure("PostgreSQL", pg.url, args.workflows, args.people, args.runs)


if __name__ == "__main__":
    asyncio.run(main())
