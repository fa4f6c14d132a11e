"""The APScheduler resumer with real time: workflows run by themselves, timers survive
downtime, and several processes share one PostgreSQL without running anything twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.processes import Worker, counts, poll
from tests.worker import TimerFlow, make_engine
from workflows import Engine
from workflows.resumer import SchedulerResumer


@pytest.fixture
async def running(database_url: str) -> AsyncIterator[Engine]:
    engine = make_engine(database_url, SchedulerResumer(sweep_interval=0.1))
    await engine.start()
    yield engine
    await engine.close()


async def finished(engine: Engine, ids: list[str]) -> bool:
    return all([(await engine.db.get(i)).status == "finished" for i in ids])


async def test_workflows_run_and_timers_fire_by_themselves(
    running: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tests.worker.DIR", tmp_path)
    ids = [await running.new_workflow(TimerFlow(key=f"t{i}", after_ms=300)) for i in range(5)]
    await poll(lambda: finished(running, ids), 20, "timers did not fire")
    for i in ids:
        record = await running.db.get(i)
        fired = next(h for h in await running.history(i) if h["kind"] == "callback")
        assert fired["actor"] == "timer"
        since = record.created_at
        assert since is not None
        # Fired after its deadline, and promptly (well within a sweep or two).
        assert fired["created_at"] >= since + timedelta(milliseconds=300)


async def test_timer_due_while_no_process_ran_fires_at_start(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tests.worker.DIR", tmp_path)
    idle = make_engine(database_url)  # no resumer: nothing runs by itself
    await idle.start()
    wid = await idle.new_workflow(TimerFlow(key="late", after_ms=200))
    await idle.execute(wid)  # sets up the timer, then "the process goes down"
    (timer,) = await idle.db.due_timers(datetime.now(UTC) + timedelta(days=1), 10)
    await idle.close()
    await poll(
        lambda: datetime.now(UTC) > timer.fire_at + timedelta(milliseconds=300),
        5,
        "deadline did not pass",
    )
    engine = make_engine(database_url, SchedulerResumer(sweep_interval=0.1))
    started = datetime.now(UTC)
    await engine.start()
    try:
        await poll(lambda: finished(engine, [wid]), 10, "overdue timer did not fire")
        fired = next(h for h in await engine.history(wid) if h["kind"] == "callback")
        assert fired["created_at"] - started < timedelta(seconds=2)
    finally:
        await engine.close()


async def test_failed_step_is_retried_by_the_scheduler(
    running: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tests.worker.DIR", tmp_path)
    real_log = __import__("tests.worker", fromlist=["log"]).log
    failures = {"left": 2}

    def flaky_log(name: str, line: str) -> None:
        if line.endswith(" before") and failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("flaky")
        real_log(name, line)

    monkeypatch.setattr("tests.worker.log", flaky_log)
    wid = await running.new_workflow(TimerFlow(key="flaky", after_ms=10))
    await poll(lambda: finished(running, [wid]), 20, "the failing step was not retried")
    assert failures["left"] == 0
    assert counts(tmp_path, "steps")["flaky before"] == 1


async def test_graceful_stop_releases_leases(running: Engine) -> None:
    ids = [await running.new_workflow(TimerFlow(key=f"s{i}", after_ms=60_000)) for i in range(3)]
    await poll(lambda: all_waiting(running, ids), 20, "workflows did not start")
    await running.close()
    await running.db.start()
    for i in ids:
        assert (await running.db.get(i)).lease_owner is None


async def all_waiting(engine: Engine, ids: list[str]) -> bool:
    return all([(await engine.db.get(i)).status == "waiting" for i in ids])


async def test_several_processes_share_one_postgres(postgres_url: str, tmp_path: Path) -> None:
    from workflows.testing.postgres import fresh_database

    url = await fresh_database(postgres_url)
    engine = make_engine(url)
    await engine.start()
    try:
        # Leases long enough that even a loaded machine never lets one expire: with no
        # crash, every step must then run exactly once.
        workers = [await Worker("run", url, tmp_path, lease_seconds=60).ready() for _ in range(3)]
        ids = await asyncio.gather(
            *(engine.new_workflow(TimerFlow(key=f"p{n}", after_ms=200)) for n in range(300))
        )
        await poll(lambda: finished(engine, list(ids)), 120, "not all workflows finished")
        for worker in workers:
            assert await worker.stop() == 0, worker.log()
        steps = counts(tmp_path, "steps")
        # No crash happened, so the leases must have kept every step to one process once.
        assert len(steps) == 600
        assert set(steps.values()) == {1}
        owners = {(await engine.db.get(i)).lease_owner for i in ids}
        assert owners == {None}
        for i in ids[:50]:
            kinds = [h["kind"] for h in await engine.history(i)]
            assert kinds == ["created", "callback"]
    finally:
        await engine.close()
