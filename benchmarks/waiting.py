"""A process with many waiting workflows: start-up time, memory, timer punctuality, and the
plans of the sweep's queries. Prints figures; asserts nothing.

    uv run python -m benchmarks.waiting [--waiting 100000] [--due 200]

It makes one real waiting workflow (a 1-hour Timeout), copies its row and timer --waiting
times, and makes --due of them come due two seconds after start-up. Then it starts a
fresh engine with the APScheduler resumer, as a restarted process would, and reports how
long `start()` took, the process's memory before and after, and how late each due timer
fired. Finally it prints EXPLAIN for the sweep's queries (SQLite and PostgreSQL).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from callbacks import Timeout, default_callbacks
from workflows import Engine, On, S, Step, Wait, Workflow, sqlrows
from workflows.resumer import SchedulerResumer
from workflows.store import SQLStore
from workflows.tables import TM, W
from workflows.testing.postgres import PostgresServer


class Waiting(Workflow):
    fired_at: datetime | None = None

    def definition(self) -> Any:
        return S(
            Wait(
                "pause", On("timeout", Timeout(after=timedelta(hours=1)), Step("fired", self.fired))
            )
        )

    def fired(self) -> None:
        self.fired_at = datetime.now(UTC)


def rss_mb() -> float:
    """Resident memory of this process now (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def populate(url: str, count: int, due: int, due_at: datetime) -> list[str]:
    engine = Engine(url, workflows=[Waiting], callbacks=default_callbacks())
    await engine.start()
    template_id = await engine.new_workflow(Waiting())
    await engine.execute(template_id)
    store = engine.db
    assert isinstance(store, SQLStore)

    def copy(conn: sa.Connection) -> list[str]:
        row = dict(conn.execute(W.select().where(W.c.id == template_id)).one()._mapping)
        timer = dict(conn.execute(TM.select()).one()._mapping)
        ids, rows, timers = [], [], []
        for n in range(count):
            wid = f"w{n:07d}"
            ids.append(wid)
            rows.append({**row, "id": wid})
            request = {**timer["request"], "workflow_id": wid}
            fire_at = due_at if n < due else timer["fire_at"]
            timers.append(
                {
                    **timer,
                    "key": f"{wid}:main:timeout:{request['pc']}",
                    "workflow_id": wid,
                    "request": request,
                    "fire_at": fire_at,
                }
            )
        for start in range(0, count, 5000):
            conn.execute(W.insert(), rows[start : start + 5000])
            conn.execute(TM.insert(), timers[start : start + 5000])
        conn.execute(W.delete().where(W.c.id == template_id))
        conn.execute(TM.delete().where(TM.c.workflow_id == template_id))
        return ids[:due]

    ids = await store._run(copy)
    await engine.close()
    return ids


TYPES = object()  # where a query takes the process's workflow types


async def explain(url: str) -> list[str]:
    """The query plans of the sweep's claim queries, exactly as the store sends them for a
    process that runs the one type, and of its count of the types it does not run."""
    store = SQLStore(url)
    await store.start()
    now = datetime.now(UTC)
    types = [Waiting.workflow_type]
    queries = {
        "claim due workflows": (sqlrows.CLAIMABLE_WORKFLOWS, (TYPES, now, now, 200), True),
        "claim due timers": (sqlrows.CLAIMABLE_TIMERS, (now, now, TYPES, 200), True),
        "count due workflows of unknown types": (
            sqlrows.UNKNOWN_TYPES,
            (now, now, TYPES, 10_000),
            False,
        ),
    }
    lines = []
    rows = store.rows
    for name, (sql, args, claims) in queries.items():
        if isinstance(rows, sqlrows.SQLiteRows):
            ts: list[Any] = []
            for a in args:
                ts.extend(types if a is TYPES else [a])
            ts = [sqlrows.sqlite_ts(a) if isinstance(a, datetime) else a for a in ts]
            query = sqlrows.sqlite_types(sql, len(types))
            found = rows.db.execute(f"EXPLAIN QUERY PLAN {query}", ts).fetchall()
            plan = [" ".join(str(c) for c in r) for r in found]
        else:
            async with rows.pool.acquire() as conn:
                await conn.execute("ANALYZE")
                query = sqlrows.numbered(sql.format(types=sqlrows.PG_TYPES))
                if claims:
                    query += " FOR UPDATE SKIP LOCKED"
                values = [types if a is TYPES else a for a in args]
                found = await conn.fetch(f"EXPLAIN {query}", *values)
            plan = [r[0] for r in found]
        lines.append(f"  {name}:")
        lines.extend(f"    {p}" for p in plan)
    await store.close()
    return lines


async def measure(name: str, url: str, count: int, due: int) -> None:
    started_fill = time.perf_counter()
    ids = await populate(url, count, due, datetime.now(UTC) + timedelta(hours=1))
    fill = time.perf_counter() - started_fill
    # Make the due timers come due two seconds from now.
    deadline = datetime.now(UTC) + timedelta(seconds=2)
    store = SQLStore(url)
    await store.start()
    await store._run(
        lambda conn: conn.execute(
            TM.update().where(TM.c.workflow_id.in_(ids)).values(fire_at=deadline)
        )
    )
    await store.close()

    before = rss_mb()
    engine = Engine(
        url,
        workflows=[Waiting],
        callbacks=default_callbacks(),
        resumer=SchedulerResumer(sweep_interval=1.0),
    )
    started = time.perf_counter()
    await engine.start()
    start_seconds = time.perf_counter() - started
    finish_by = time.monotonic() + 60
    while time.monotonic() < finish_by:
        counts = await engine.db.count_by_status()
        if counts.get("finished", 0) >= due:
            break
        await asyncio.sleep(0.2)
    lateness = []
    for wid in ids:
        fired = [h for h in await engine.history(wid) if h["kind"] == "callback"]
        if fired:
            lateness.append((fired[0]["created_at"] - deadline).total_seconds())
    after = rss_mb()
    await engine.close()
    print(f"{name}: {count} waiting workflows with timers (filled in {fill:.1f}s)")
    print(
        f"  engine.start(): {start_seconds * 1000:.0f} ms; RSS {before:.0f} MB before the "
        f"engine, {after:.0f} MB after it fired the due timers"
    )
    if lateness:
        print(
            f"  {len(lateness)}/{due} due timers fired; lateness after the deadline: "
            f"median {statistics.median(lateness) * 1000:.0f} ms, "
            f"max {max(lateness) * 1000:.0f} ms"
        )
    for line in await explain(url):
        print(line)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--waiting", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        await measure("SQLite", f"sqlite:///{Path(tmp) / 'waiting.db'}", args.waiting, args.due)
    with PostgresServer(durable=True) as pg:
        await measure("PostgreSQL", pg.url, args.waiting, args.due)


if __name__ == "__main__":
    asyncio.run(main())
