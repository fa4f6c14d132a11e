"""The engine against DBOS and against the databases' own ceilings, in one command:

    uv run --group bench python -m benchmarks.engine [--approvals 1000] [--runs 200]

Prints, for a fresh SQLite file and for a throwaway PostgreSQL (started and removed here,
at its default durability), each figure with its ratio to DBOS (run as a subprocess on the
same database, same scenario, `benchmarks.peer_dbos`) and to the raw ceiling measured in
the same run (`benchmarks.ceilings`). Not a test: nothing here asserts a timing.
Two tables per database: our defaults (step checkpoints without an fsync of their own,
every commit a person could see flushed) and equal durability (`fsync_steps`: every
checkpoint flushed, as DBOS commits every step); the disk's fsync time is printed beside
them, since durability-bound figures move with it most.
Steps/s is also set against the synchronous driver's ceiling in alternating rounds (the best
round of each), since this machine's speed drifts by a third between passes.

- pure engine: gorchestrate's own benchmark workflow (its TestLoopWorkflow: a 5-step loop,
  a reset step, then two waits in a loop, each answered by a callback and followed by a
  step), against the Go figure measured on this kind of machine. As in Go, through the
  interpreter's `resume` / `handle_callback` with nothing stored (`--pure` prints only
  this); and through the whole engine on the in-memory store.
- steps/s: a workflow of 19 trivial checkpointed steps, run --runs times one after another
  (after ten unmeasured runs, on both sides).
- approvals/s: --approvals workflows of the approval shape (record step, wait for a
  decision, record step), all started, then, once every one waits, all answered one after
  another; counted from the first start to the last finish. The decision latency runs from
  just before a callback is sent to the final step of its workflow, as for DBOS.
Executions run as in the bot: the APScheduler resumer, in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from benchmarks import ceilings
from workflows import CallbackRequest, Engine, For, On, S, Step, Wait, Workflow
from workflows.interpreter import Ended, Interpreter
from workflows.resumer import SchedulerResumer
from workflows.state import State
from workflows.store import SQLStore
from workflows.testing import WorkflowTestKit
from workflows.testing.postgres import PostgresServer, fresh_database

# gorchestrate's Go benchmark of its loop workflow (nothing persisted), measured on this kind
# of machine (2 cores); the engine's goal is to stay within 10x of it.
GO_US_PER_WORKFLOW = 14.0
STEPS = 19
WARMUP_RUNS = 10  # unmeasured runs of the steps workflow first, here and for DBOS
# Steps against the raw ceiling: alternating rounds of equal length, the best of each.
ROUNDS, ROUND_SECONDS = 5, 0.5


@dataclass
class Event:
    fn: Any = None
    type: ClassVar[str] = "event"

    async def handle(self, request: CallbackRequest, input: Any) -> Any:
        if self.fn is not None:
            self.fn()
        return input


class CountingManager:
    """A wait with no outside world: it counts set-ups so the run knows when all wait."""

    def __init__(self) -> None:
        self.setups = 0
        self.target = 0
        self.all_waiting = asyncio.Event()

    async def setup(self, request: CallbackRequest, handler: Any) -> str:
        self.setups += 1
        if self.target and self.setups >= self.target:
            self.all_waiting.set()
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
        return For("steps", self.i < STEPS, Step("step", self.inc))

    def inc(self) -> None:
        self.i += 1
        if self.i == STEPS:
            FINISHED[self.workflow_id] = time.perf_counter()


class ApprovalShaped(Workflow):
    approved: bool = False

    def definition(self) -> Any:
        return S(
            Step("record request", lambda: None),
            Wait("decision", On("decide", Event(self.approve))),
            Step("record decision", self.record),
        )

    def approve(self) -> None:
        self.approved = True

    def record(self) -> None:
        FINISHED[self.workflow_id] = time.perf_counter()


WORKFLOWS = [LoopWorkflow, Steps19, ApprovalShaped]
# When each workflow's final step ran (as DBOS's figure is taken in its final step).
FINISHED: dict[str, float] = {}


async def _nothing() -> None:
    return None


async def interpreter_loop(runs: int, repeats: int = 15) -> dict[str, float]:
    """What gorchestrate's Go benchmark measures: `Resume` and `HandleCallback` on the
    workflow in memory, with a checkpoint callback that stores nothing. Here that layer is
    `Interpreter` (the engine runs every step through it). Best and median of `repeats`."""
    interpreter = Interpreter({Event.type})
    per_workflow = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(runs):
            wf, state = LoopWorkflow(), State()
            ended = await interpreter.resume(wf, state, _nothing)
            for _ in range(2):
                pc = state.threads[0].events[0].pc
                request = CallbackRequest(workflow_id="loop", thread_id="main", name="event", pc=pc)
                await interpreter.handle_callback(wf, state, request, None)
                ended = await interpreter.resume(wf, state, _nothing)
        per_workflow.append((time.perf_counter() - started) / runs * 1e6)
        assert ended == Ended(), ended
        assert wf.log == "lllllhaha", wf.log
    return {"best_us": min(per_workflow), "median_us": statistics.median(per_workflow)}


async def engine_in_memory(runs: int) -> dict[str, float]:
    """The same workflow through the whole engine (records, leases, setups, teardowns) on
    the in-memory store, which copies every record in and out as a database would."""
    kit = WorkflowTestKit(
        WORKFLOWS, callbacks={"event": CountingManager()}, database_url="memory://"
    )
    async with kit:
        started = time.perf_counter()
        for _ in range(runs):
            wid = await kit.engine.new_workflow(LoopWorkflow())
            await kit.drain()
            for _ in range(2):
                record = await kit.engine.db.get(wid)
                event = record.state.threads[0].events[0]
                await kit.engine.on_callback(
                    CallbackRequest(workflow_id=wid, thread_id="main", name="event", pc=event.pc)
                )
                await kit.drain()
        elapsed = time.perf_counter() - started
        info = await kit.engine.get(wid)
        assert info.status == "finished"
        assert info.data.log == "lllllhaha"  # type: ignore[attr-defined]
    return {"us_per_workflow": elapsed / runs * 1e6}


async def until(event: asyncio.Event, timeout: float, what: str) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        raise RuntimeError(f"{what} within {timeout} s") from None


async def _steps_per_s(
    engine: Engine, resumer: SchedulerResumer, runs: int = 0, seconds: float = 0.0
) -> float:
    """Run the steps workflow `runs` times, or as many times as fit in `seconds`."""
    FINISHED.clear()
    done = 0
    started = time.perf_counter()
    while done < runs or time.perf_counter() - started < seconds:
        await engine.new_workflow(Steps19())
        await resumer.idle()
        done += 1
    elapsed = time.perf_counter() - started
    assert len(FINISHED) == done
    return done * STEPS / elapsed


async def engine_figures(
    url: str, count: int, runs: int, ceiling: Callable[[float], float], fsync_steps: bool = False
) -> dict[str, float]:
    """Our engine on one database, as the bot runs it (APScheduler resumer in-process).

    Besides the scenarios, steps/s against `ceiling` (the fastest raw driver): the two are
    measured in alternating rounds and the best round of each is compared, so a slow spell
    of this machine (figures move by a third between runs) cannot land on one side only.
    """
    manager = CountingManager()
    resumer = SchedulerResumer()
    engine = Engine(
        db=SQLStore(url, fsync_steps=fsync_steps),
        workflows=WORKFLOWS,
        callbacks={"event": manager},
        resumer=resumer,
    )
    await engine.start()
    try:
        await _steps_per_s(engine, resumer, WARMUP_RUNS)
        steps_per_s = await _steps_per_s(engine, resumer, runs)
        rounds = [
            (ceiling(ROUND_SECONDS), await _steps_per_s(engine, resumer, seconds=ROUND_SECONDS))
            for _ in range(ROUNDS)
        ]
        best_raw, best_steps = (max(r[0] for r in rounds), max(r[1] for r in rounds))

        FINISHED.clear()
        manager.target = count
        started = time.perf_counter()
        ids = [await engine.new_workflow(ApprovalShaped()) for _ in range(count)]
        await until(manager.all_waiting, 300, "not every workflow waited")
        sent: dict[str, float] = {}
        for wid in ids:
            sent[wid] = time.perf_counter()
            await engine.on_callback(
                CallbackRequest(workflow_id=wid, thread_id="main", name="decide", pc=1)
            )
        await resumer.idle(300)
        elapsed = max(FINISHED.values()) - started
        counts = await engine.db.count_by_status()  # type: ignore[attr-defined]
        assert set(counts) == {"finished"}, counts
    finally:
        await engine.close()
    latencies = [(FINISHED[wid] - sent[wid]) * 1000 for wid in ids]
    return {
        "steps_per_s": steps_per_s,
        "rounds_steps_per_s": best_steps,
        "rounds_raw_per_s": best_raw,
        "approvals_per_s": count / elapsed,
        "decision_latency_ms_mean": statistics.fmean(latencies),
        "decision_latency_ms_p50": statistics.median(latencies),
        "decision_latency_ms_max": max(latencies),
    }


def dbos_figures(url: str, count: int, runs: int) -> dict[str, Any]:
    """DBOS in a subprocess (it is a process-wide singleton), same scenarios."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.peer_dbos",
            "--database-url",
            url,
            "--approvals",
            str(count),
            "--runs",
            str(runs),
        ],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


async def database(
    name: str, kind: str, url: str, tmp: Path, args: argparse.Namespace
) -> dict[str, Any]:
    print(f"measuring {name} ...", file=sys.stderr, flush=True)
    if kind == "sqlite":
        raw = {
            "sqlite3 (sync)": ceilings.sqlite3_sync(tmp / "ceiling-sync.db"),
            "aiosqlite via SQLAlchemy asyncio": await ceilings.sqlite_sqlalchemy_async(
                tmp / "ceiling-async.db"
            ),
        }
        ours_url, dbos_url = f"sqlite:///{tmp / 'engine.db'}", f"sqlite:///{tmp / 'dbos.db'}"
        ceiling = functools.partial(ceilings.sqlite3_sync, tmp / "ceiling-rounds.db")
        driver = "sqlite3 (sync)"
    else:
        raw = {
            "psycopg 3 (sync)": ceilings.psycopg_sync(url),
            "asyncpg via SQLAlchemy asyncio": await ceilings.asyncpg_sqlalchemy(url),
        }
        ours_url = dbos_url = url
        ceiling = functools.partial(ceilings.psycopg_sync, url)
        driver = "psycopg 3 (sync)"
    ours = await engine_figures(ours_url, args.approvals, args.runs, ceiling)
    if kind == "sqlite":
        durable_url = f"sqlite:///{tmp / 'engine-durable.db'}"
    else:
        durable_url = await fresh_database(url, "engine_durable")
    durable = await engine_figures(durable_url, args.approvals, args.runs, ceiling, True)
    dbos = dbos_figures(dbos_url, args.approvals, args.runs)
    return {
        "database": name,
        "raw_rmw_per_s": raw,
        "rounds_driver": driver,
        "engine": ours,
        "engine_durable": durable,
        "dbos": dbos,
    }


def fsync_ms(directory: Path, times: int = 200) -> dict[str, float]:
    """What one fsync of a small write costs on this disk: durability-bound figures move
    with it more than with anything else."""
    path = directory / "fsync-probe"
    samples = []
    with open(path, "wb") as f:
        for _ in range(times):
            f.write(b"x" * 4096)
            f.flush()
            started = time.perf_counter()
            os.fsync(f.fileno())
            samples.append((time.perf_counter() - started) * 1000)
    path.unlink()
    return {"median": statistics.median(samples), "max": max(samples)}


def comparison(ours: dict[str, float], dbos: dict[str, float]) -> None:
    print(f"  {'':44} {'engine':>9} {'DBOS':>9} {'vs DBOS':>8}")
    rows = [
        ("approval workflows/s", "approvals_per_s", "{:9.1f}"),
        ("steps/s", "steps_per_s", "{:9.0f}"),
        ("decision -> finish, mean ms", "decision_latency_ms_mean", "{:9.1f}"),
        ("decision -> finish, median ms", "decision_latency_ms_p50", "{:9.1f}"),
        ("decision -> finish, max ms", "decision_latency_ms_max", "{:9.1f}"),
    ]
    for label, key, fmt in rows:
        a, b = ours[key], dbos[key]
        ratio = b / a if "latency" in key else a / b
        print(f"  {label:44} {fmt.format(a)} {fmt.format(b)} {ratio:7.1f}x")


def report(
    pure: dict[str, dict[str, float]],
    results: list[dict[str, Any]],
    fsync: dict[str, float] | None = None,
) -> None:
    print(
        f"machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, {len(os.sched_getaffinity(0))} cores"
    )
    best, median = pure["interpreter"]["best_us"], pure["interpreter"]["median_us"]
    whole = pure["engine_in_memory"]["us_per_workflow"]
    print(
        "\npure engine, gorchestrate's loop workflow, nothing persisted "
        f"(Go {GO_US_PER_WORKFLOW:.0f} us/workflow):\n"
        f"  interpreter (Resume/HandleCallback)      best {best:6.0f} us "
        f"({best / GO_US_PER_WORKFLOW:4.1f}x Go), median {median:.0f} us "
        f"({median / GO_US_PER_WORKFLOW:.1f}x)\n"
        f"  whole engine on the in-memory store            {whole:6.0f} us "
        f"({whole / GO_US_PER_WORKFLOW:4.1f}x Go)"
    )
    if fsync:
        print(
            f"\nfsync of a 4 KB write on this disk: median {fsync['median']:.3f} ms, "
            f"max {fsync['max']:.3f} ms (durability-bound figures move with it)"
        )
    for r in results:
        ours, dbos, raw = r["engine"], r["dbos"], r["raw_rmw_per_s"]
        driver = r["rounds_driver"]
        print(f"\n{r['database']}")
        for name, value in raw.items():
            print(f"  raw read-modify-write ceiling, {name:34} {value:9.0f}/s")
        print("  defaults: step checkpoints without an fsync each, what a person sees flushed")
        comparison(ours, dbos)
        print("  equal durability: every checkpoint flushed on both sides (FSYNC_STEPS=true)")
        comparison(r["engine_durable"], dbos)
        print(
            f"  steps/s vs the fastest raw ceiling ({driver}), best of {ROUNDS} "
            f"alternating rounds each: {ours['rounds_steps_per_s']:.0f} / "
            f"{ours['rounds_raw_per_s']:.0f} = "
            f"{ours['rounds_steps_per_s'] / ours['rounds_raw_per_s']:.2f}"
            f"  (single passes above: {ours['steps_per_s'] / raw[driver]:.2f})"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--approvals", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--pure", action="store_true", help="only the pure engine figures")
    args = parser.parse_args()

    pure = {
        "interpreter": await interpreter_loop(args.runs * 5),
        "engine_in_memory": await engine_in_memory(args.runs * 5),
    }
    results: list[dict[str, Any]] = []
    if args.pure:
        report(pure, results)
        return
    with tempfile.TemporaryDirectory() as tmp:
        fsync = fsync_ms(Path(tmp))
        results.append(await database("SQLite (WAL)", "sqlite", "", Path(tmp), args))
    with PostgresServer(durable=True) as pg, tempfile.TemporaryDirectory() as tmp:
        results.append(
            await database("PostgreSQL (defaults)", "postgresql", pg.url, Path(tmp), args)
        )
    if args.json:
        print(json.dumps({"pure": pure, "fsync_ms": fsync, "databases": results}, indent=2))
    else:
        report(pure, results, fsync)


if __name__ == "__main__":
    asyncio.run(main())
