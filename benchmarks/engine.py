"""Engine throughput, printed as figures with ratios. Not a test: nothing here asserts.

    uv run python -m benchmarks.engine [--approvals 1000] [--runs 200]

1. The pure engine (in-memory store, nothing persisted) on gorchestrate's own benchmark
   workflow (its TestLoopWorkflow: a 5-step loop, a reset step, then two waits in a loop,
   each answered by a callback and followed by a step), against the Go figure its README
   quotes (35.6 us per workflow, 1.9 us per step).
2. On a fresh SQLite file and on a throwaway PostgreSQL (started and removed here, default
   durability settings): checkpointed steps/s (a workflow of 19 trivial steps, run --runs
   times), approval-shaped workflows/s (start -> wait -> callback -> finish, --approvals of
   them: all started, then all answered), and the raw ceiling of the same driver in the same
   run (a bare read-modify-write transaction of a ~2 KB JSON row), with engine/raw ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import sqlalchemy as sa

from workflows import CallbackRequest, For, On, S, Step, Wait, Workflow
from workflows.store import SQLStore, async_url
from workflows.testing import WorkflowTestKit
from workflows.testing.postgres import PostgresServer

GO_US_PER_WORKFLOW = 35.6  # gorchestrate README, BenchmarkXxx
GO_US_PER_STEP = 1.9


@dataclass
class Event:
    fn: Any = None
    type: ClassVar[str] = "event"

    async def handle(self, request: CallbackRequest, input: Any) -> Any:
        if self.fn is not None:
            self.fn()
        return input


class NoopManager:
    async def setup(self, request: CallbackRequest, handler: Any) -> str:
        return ""

    async def teardown(self, request: CallbackRequest, handler: Any, handled: bool) -> None:
        return None


class LoopWorkflow(Workflow):
    """gorchestrate's TestLoopWorkflow."""

    i: int = 0
    log: str = ""

    def definition(self) -> Any:
        return S(
            For("count", self.i < 5, Step("step1", self.step1)),
            Step("reset i", self.reset),
            For(
                "wait twice",
                self.i < 2,
                Wait(
                    "wait in loop for event",
                    On("event", Event(self.handled), Step("step2", self.step2)),
                ),
            ),
        )

    def step1(self) -> None:
        self.i += 1
        self.log += "l"

    def reset(self) -> None:
        self.i = 0

    def handled(self) -> None:
        self.log += "h"
        self.i += 1

    def step2(self) -> None:
        self.log += "a"


class Steps19(Workflow):
    i: int = 0

    def definition(self) -> Any:
        return For("steps", self.i < 19, Step("step", self.inc))

    def inc(self) -> None:
        self.i += 1


class ApprovalShaped(Workflow):
    approved: bool = False

    def definition(self) -> Any:
        return S(
            Step("record request", lambda: None),
            Wait("decision", On("decide", Event(self.approve))),
            Step("record decision", lambda: None),
        )

    def approve(self) -> None:
        self.approved = True


CALLBACKS = {"event": NoopManager()}
WORKFLOWS = [LoopWorkflow, Steps19, ApprovalShaped]


async def answer_all(kit: WorkflowTestKit, ids: list[str]) -> None:
    for wid in ids:
        record = await kit.engine.db.get(wid)
        for thread in record.state.threads:
            for e in thread.events:
                await kit.engine.on_callback(
                    CallbackRequest(workflow_id=wid, thread_id=thread.id, name=e.name, pc=e.pc),
                    None,
                )


async def pure_engine(runs: int) -> dict[str, float]:
    async with WorkflowTestKit(WORKFLOWS, callbacks=CALLBACKS, database_url="memory://") as kit:
        started = time.perf_counter()
        for _ in range(runs):
            wid = await kit.engine.new_workflow(LoopWorkflow())
            await kit.drain()
            await answer_all(kit, [wid])
            await kit.drain()
            await answer_all(kit, [wid])
            await kit.drain()
        elapsed = time.perf_counter() - started
        info = await kit.engine.get(wid)
        assert info.status == "finished"
        assert info.data.log == "lllllhaha"
    us = elapsed / runs * 1e6
    return {"us_per_workflow": us, "us_per_step": us / 19}


async def steps_per_second(url: str, runs: int) -> float:
    async with WorkflowTestKit(WORKFLOWS, callbacks=CALLBACKS, database_url=url) as kit:
        started = time.perf_counter()
        for _ in range(runs):
            await kit.engine.new_workflow(Steps19())
            await kit.drain()
        elapsed = time.perf_counter() - started
    return runs * 19 / elapsed


async def approvals_per_second(url: str, count: int) -> float:
    async with WorkflowTestKit(WORKFLOWS, callbacks=CALLBACKS, database_url=url) as kit:
        started = time.perf_counter()
        ids = [await kit.engine.new_workflow(ApprovalShaped()) for _ in range(count)]
        await kit.drain()
        await answer_all(kit, ids)
        await kit.drain()
        elapsed = time.perf_counter() - started
        for wid in ids:
            assert (await kit.engine.db.get(wid)).status == "finished"
    return count / elapsed


async def raw_read_modify_write(url: str, seconds: float = 3.0) -> float:
    """The ceiling: one transaction that reads a ~2 KB JSON row, changes it and writes it
    back, through the store's own path to the database (same driver, same locking; on
    SQLite the same thread hop per transaction)."""
    store = SQLStore(url)
    await store.start()
    table = sa.Table(
        "raw_bench",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("doc", sa.JSON),
    )
    query = table.select().where(table.c.id == 1)
    if not store.is_sqlite:
        query = query.with_for_update()

    def setup(conn: sa.Connection) -> None:
        table.metadata.create_all(conn)
        conn.execute(table.insert().values(id=1, doc={"field": "x" * 2000, "n": 0}))

    def read_modify_write(conn: sa.Connection) -> None:
        row = conn.execute(query).one()
        new = dict(row.doc)
        new["n"] += 1
        conn.execute(table.update().where(table.c.id == 1).values(doc=new))

    await store._run(setup)
    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        await store._run(read_modify_write)
        count += 1
    elapsed = time.perf_counter() - started
    await store.close()
    return count / elapsed


async def database_figures(name: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    raw = await raw_read_modify_write(url)
    steps = await steps_per_second(url, args.runs)
    approvals = await approvals_per_second(url, args.approvals)
    return {
        "database": name,
        "driver": async_url(url).split("://")[0],
        "raw_rmw_per_s": raw,
        "steps_per_s": steps,
        "approvals_per_s": approvals,
        "steps_vs_raw": steps / raw,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--approvals", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()

    pure = await pure_engine(args.runs * 5)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(
            await database_figures(
                "SQLite (WAL, synchronous=NORMAL)", f"sqlite:///{Path(tmp) / 'bench.db'}", args
            )
        )
    with PostgresServer(durable=True) as pg:
        results.append(await database_figures("PostgreSQL (defaults)", pg.url, args))

    if args.json:
        print(json.dumps({"pure": pure, "databases": results}, indent=2))
        return
    print(
        f"machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}"
    )
    print("\nPure engine, gorchestrate's loop workflow (no database):")
    print(
        f"  {pure['us_per_workflow']:8.1f} us/workflow  (Go: {GO_US_PER_WORKFLOW} us, "
        f"ratio {pure['us_per_workflow'] / GO_US_PER_WORKFLOW:.1f}x)"
    )
    print(
        f"  {pure['us_per_step']:8.1f} us/step      (Go: {GO_US_PER_STEP} us, "
        f"ratio {pure['us_per_step'] / GO_US_PER_STEP:.1f}x)"
    )
    print(
        f"\n{'database':34} {'raw RMW/s':>10} {'steps/s':>9} {'steps/raw':>10} {'approvals/s':>12}"
    )
    for r in results:
        print(
            f"{r['database']:34} {r['raw_rmw_per_s']:10.0f} {r['steps_per_s']:9.0f} "
            f"{r['steps_vs_raw']:10.2f} {r['approvals_per_s']:12.1f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
