"""Rolling deploys: a process claims only the workflow types it knows. A workflow of a type
no running process knows waits as it is (never failed for it), counted and logged, and a
process that knows the type finishes it once it starts. Two real processes on one
PostgreSQL, two engines in one process on SQLite, and every other way in (a callback, an
execution, a timer) on each store."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from callbacks import Timeout, TimeoutManager
from tests.helpers import Manual, ManualManager
from tests.processes import Worker, counts, poll
from tests.worker import TimerFlow, make_engine
from workflows import (
    DB,
    CallbackRequest,
    Engine,
    On,
    S,
    Step,
    UnknownWorkflowType,
    Wait,
    Workflow,
)
from workflows.resumer import SchedulerResumer
from workflows.store import SQLStore
from workflows.tables import TM
from workflows.testing import DrainResumer, FakeClock
from workflows.testing.memory import MemoryStore
from workflows.testing.postgres import fresh_database
from workflows.types import Record

REPORTED = "due workflows wait for a process that runs their type"
REFUSED = "which this process does not run"


def unchanged(record: Record) -> tuple[Any, ...]:
    """What a process that does not know the type must leave as it is."""
    return (
        record.status,
        record.attempts,
        record.error,
        record.version,
        record.lease_owner,
        record.data,
    )


async def timer_leases(store: SQLStore) -> list[str | None]:
    async with store.engine.connect() as conn:
        return list((await conn.execute(sa.select(TM.c.lease_owner))).scalars())


async def all_finished(engine: Engine, ids: list[str]) -> bool:
    return all([(await engine.db.get(i)).status == "finished" for i in ids])


async def test_two_processes_on_postgres_a_new_type_waits_for_the_new_release(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tests.worker.DIR", tmp_path)
    url = await fresh_database(postgres_url)
    old = await Worker("run", url, tmp_path, types=["CrashFlow"]).ready()
    new: Worker | None = None
    # Stored by a process that runs nothing itself, knowing the new type.
    front = make_engine(url)
    await front.start()
    try:
        fresh = [await front.new_workflow(TimerFlow(key=f"fresh{i}")) for i in range(3)]
        timed = await front.new_workflow(TimerFlow(key="timed", after_ms=100))
        await front.execute(timed)  # it now waits for its timer
        (timer,) = await front.db.due_timers(datetime.now(UTC) + timedelta(days=1), 10)
        before = {wid: unchanged(await front.db.get(wid)) for wid in [*fresh, timed]}
        await poll(lambda: datetime.now(UTC) > timer.fire_at, 5, "the timer did not come due")
        # Two sweeps of the old process since: both passed over the due workflows and the
        # due timer, and counted the workflows.
        seen = old.log().count(REPORTED)
        await poll(lambda: old.log().count(REPORTED) >= seen + 2, 20, "no report of the old")
        assert f"{REPORTED} (this one does not): 3 of 'TimerFlow'" in old.log()
        assert {wid: unchanged(await front.db.get(wid)) for wid in before} == before
        assert await front.db.count_unknown_types(datetime.now(UTC), ["CrashFlow"]) == {
            "TimerFlow": 3
        }
        assert isinstance(front.db, SQLStore)
        assert await timer_leases(front.db) == [None]  # never claimed

        new = await Worker("run", url, tmp_path).ready()
        ids = [*fresh, timed]
        await poll(lambda: all_finished(front, ids), 30, "the new process did not finish them")
        for wid in ids:
            record = await front.db.get(wid)
            assert (record.attempts, record.error) == (0, None)
        steps = counts(tmp_path, "steps")
        keys = [f"fresh{i}" for i in range(3)] + ["timed"]
        assert steps == {f"{k} {s}": 1 for k in keys for s in ("before", "after")}
        assert REFUSED not in old.log()  # the old process never even tried to run one
        assert "Traceback" not in old.log() + new.log()
    finally:
        await front.close()
        await old.stop()
        if new is not None:
            await new.stop()


async def test_two_engines_on_sqlite_a_new_type_waits_for_the_one_that_knows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("tests.worker.DIR", tmp_path)
    url = f"sqlite:///{tmp_path / 'workflows.db'}"
    old = make_engine(url, SchedulerResumer(sweep_interval=0.05), types=["CrashFlow"])
    await old.start()
    front = make_engine(url)
    await front.start()
    new = make_engine(url, SchedulerResumer(sweep_interval=0.05))
    try:
        fresh = await front.new_workflow(TimerFlow(key="fresh"))
        timed = await front.new_workflow(TimerFlow(key="timed", after_ms=50))
        await front.execute(timed)
        (timer,) = await front.db.due_timers(datetime.now(UTC) + timedelta(days=1), 10)
        before = {wid: unchanged(await front.db.get(wid)) for wid in (fresh, timed)}
        await poll(lambda: datetime.now(UTC) > timer.fire_at, 5, "the timer did not come due")

        def reports() -> int:
            return sum(REPORTED in r.getMessage() for r in caplog.records)

        seen = reports()
        await poll(lambda: reports() >= seen + 2, 10, "the old engine did not report them")
        report = next(r for r in caplog.records if REPORTED in r.getMessage())
        assert (report.levelno, report.name) == (logging.WARNING, "workflows.resumer")
        assert report.getMessage().endswith("1 of 'TimerFlow'")
        assert {wid: unchanged(await front.db.get(wid)) for wid in before} == before
        assert isinstance(front.db, SQLStore)
        assert await timer_leases(front.db) == [None]

        await new.start()
        await poll(lambda: all_finished(front, [fresh, timed]), 20, "the new engine did not")
        assert not any(REFUSED in r.getMessage() for r in caplog.records)
    finally:
        await new.close()
        await front.close()
        await old.close()


class Newcomer(Workflow):
    """The type a deploy adds: a step, then an answer or a timeout."""

    started: int = 0
    answer: str = ""

    def definition(self) -> Any:
        return S(
            Step("start", self.start),
            Wait(
                "pause",
                On("answer", Manual(self.answered)),
                On("timeout", Timeout(after=timedelta(hours=1))),
            ),
        )

    def start(self) -> None:
        self.started += 1

    def answered(self, value: Any) -> None:
        self.answer = str(value)


class Known(Workflow):
    def definition(self) -> Any:
        return S(Step("only", lambda: None))


StoreFactory = Callable[[], DB]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Stores of one database as separate processes would open it (the in-memory store:
    the one store, shared)."""
    if request.param == "memory":
        shared = MemoryStore()
        yield lambda: shared
        return
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'workflows.db'}"
    else:
        url = await fresh_database(request.getfixturevalue("postgres_url"))
    yield lambda: SQLStore(url)


async def test_every_way_in_leaves_an_unknown_type_as_it_is(
    stores: StoreFactory, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    engines: list[Engine] = []

    async def engine(*workflows: type[Workflow], drained: bool = True) -> Engine:
        started = Engine(
            db=stores(),
            workflows=workflows,
            callbacks={"manual": ManualManager(), "timeout": TimeoutManager()},
            resumer=DrainResumer() if drained else None,
            clock=clock,
        )
        await started.start()
        engines.append(started)
        return started

    def drain(e: Engine) -> Any:
        assert isinstance(e.resumer, DrainResumer)
        return e.resumer.drain()

    try:
        old = await engine(Known)
        new = await engine(Known, Newcomer)
        front = await engine(Known, Newcomer, drained=False)  # stores, runs nothing
        waits = await new.new_workflow(Newcomer())
        await drain(new)  # waits for an answer or its timer
        due = await front.new_workflow(Newcomer())
        known = await front.new_workflow(Known())
        request = await answer_request(old, waits)
        clock.advance(timedelta(hours=2))  # its timer is due
        before = {wid: unchanged(await old.db.get(wid)) for wid in (waits, due)}

        def refusals() -> list[tuple[int, str]]:
            return [(r.levelno, r.name) for r in caplog.records if REFUSED in r.getMessage()]

        assert await drain(old) == 1  # only the workflow it knows ran
        assert (await old.db.get(known)).status == "finished"
        assert refusals()  # the due timer: one line per round of the drain
        logged = len(refusals())
        with pytest.raises(UnknownWorkflowType, match=f"of type 'Newcomer', {REFUSED}"):
            await old.on_callback(request, "yes")
        with pytest.raises(UnknownWorkflowType, match=REFUSED):
            await old.check_callback(request)
        with pytest.raises(UnknownWorkflowType, match=REFUSED):
            await old.execute(due)
        (timer,) = await old.db.due_timers(clock.now(), 10)
        assert await old.fire_timer(timer) is False
        assert await old.db.due_timers(clock.now(), 10) == [timer]  # kept for the new one
        assert {wid: unchanged(await old.db.get(wid)) for wid in before} == before
        assert refusals()[logged:] == [(logging.WARNING, "workflows.engine")] * 4  # one each
        assert await old.db.count_unknown_types(clock.now(), old.workflows.keys()) == {
            "Newcomer": 1
        }
        assert await new.db.count_unknown_types(clock.now(), new.workflows.keys()) == {}

        await drain(new)  # the timer fires there, and the due workflow starts
        assert (await new.db.get(waits)).status == "finished"
        assert await old.db.due_timers(clock.now(), 10) == []
        assert (await new.get(due)).status == "waiting"
        assert await new.on_callback(await answer_request(new, due), "late") == "late"
        await drain(new)
        info = await new.get(due)
        assert info.status == "finished"
        assert (info.data.started, info.data.answer) == (1, "late")  # type: ignore[attr-defined]
    finally:
        for e in reversed(engines):
            await e.close()


async def answer_request(engine: Engine, workflow_id: str) -> CallbackRequest:
    (thread,) = (await engine.db.get(workflow_id)).state.threads
    event = next(e for e in thread.events if e.name == "answer")
    return CallbackRequest(workflow_id=workflow_id, thread_id=thread.id, name="answer", pc=event.pc)
