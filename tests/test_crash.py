"""Crash tests: real worker processes killed with SIGKILL at the worst moments; a fresh
process finishes every workflow. Steps run at least once, callbacks exactly once, nothing
is lost. Runs on SQLite (several processes on one file) and on PostgreSQL."""

from __future__ import annotations

import random
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.processes import Worker, counts, poll
from tests.worker import CrashFlow, make_engine
from workflows import Engine
from workflows.state import EventStatus

N = 12


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[Engine]:
    """The test's own engine (no resumer): creates workflows and sends callbacks."""
    engine = make_engine(database_url)
    await engine.start()
    yield engine
    await engine.close()


async def statuses(engine: Engine, ids: list[str]) -> list[str]:
    return [(await engine.db.get(i)).status for i in ids]


async def all_status(engine: Engine, ids: list[str], status: str) -> bool:
    return all(s == status for s in await statuses(engine, ids))


async def all_set_up(engine: Engine, ids: list[str]) -> bool:
    for i in ids:
        record = await engine.db.get(i)
        events = record.state.threads[0].events
        if record.status != "waiting" or not events or events[0].status != EventStatus.SETUP:
            return False
    return True


async def answer_all(engine: Engine, ids: list[str]) -> None:
    from workflows import CallbackRequest

    for i in ids:
        record = await engine.db.get(i)
        event = record.state.threads[0].events[0]
        await engine.on_callback(
            CallbackRequest(
                workflow_id=i,
                thread_id="main",
                name=event.name,
                pc=event.pc,
                setup_data=event.setup_data,
            ),
            None,
        )


async def check_finished_once(engine: Engine, ids: list[str], tmp_path: Path) -> None:
    """Every workflow ended once with every effect applied exactly once in its data."""
    await poll(lambda: all_status(engine, ids, "finished"), 60, "not all workflows finished")
    steps = counts(tmp_path, "steps")
    for i in ids:
        info = await engine.get(i)
        assert info.data.steps == ["one", "two", "three"], info  # type: ignore[attr-defined]
        assert info.output == 1  # the callback applied exactly once
        history = [h["kind"] for h in await engine.history(i)]
        assert history.count("callback") == 1
        key = info.data.key  # type: ignore[attr-defined]
        for name in ("one", "two", "three"):
            assert steps[f"{key} {name}"] >= 1  # at least once
    await poll(
        lambda: sum(counts(tmp_path, "teardowns").values()) >= len(ids),
        30,
        "not every wait was torn down",
    )


async def start(engine: Engine, count: int = N, delay: float = 0.0) -> list[str]:
    return [
        await engine.new_workflow(CrashFlow(key=f"wf{n}", step_delay=delay)) for n in range(count)
    ]


@pytest.mark.parametrize("point", ["step:two", "setup"])
async def test_sigkill_between_steps_and_during_setup(
    engine: Engine, database_url: str, tmp_path: Path, point: str
) -> None:
    ids = await start(engine)
    crashing = Worker("run", database_url, tmp_path, crash_at=point)
    assert await crashing.exited() == -signal.SIGKILL
    # The effect happened, but was never recorded: the next process repeats it.
    kind = "steps" if point.startswith("step") else "setups"
    assert sum(counts(tmp_path, kind).values()) >= 1

    worker = await Worker("run", database_url, tmp_path).ready()
    try:
        await poll(lambda: all_set_up(engine, ids), 60, "not every workflow reached its wait")
        await answer_all(engine, ids)
        await check_finished_once(engine, ids, tmp_path)
    finally:
        assert await worker.stop() == 0, worker.log()
    # The interrupted effect ran again (other workflows' steps in flight at the moment of
    # the kill may have too); none ran more than twice: one crash, one repeat.
    repeated = {line: n for line, n in counts(tmp_path, kind).items() if n > 1}
    crashed = "two" if kind == "steps" else "answer"
    assert any(line.endswith(f" {crashed}") for line in repeated), repeated
    assert set(repeated.values()) == {2}, repeated


async def test_sigkill_during_a_callback_applies_it_once_on_retry(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    ids = await start(engine, count=2)
    worker = await Worker("run", database_url, tmp_path).ready()
    try:
        await poll(lambda: all_set_up(engine, ids), 60, "workflows did not reach their wait")
        target = ids[0]
        answering = Worker("answer", database_url, tmp_path, target, crash_at="callback")
        assert await answering.exited() == -signal.SIGKILL
        info = await engine.get(target)
        assert info.status == "waiting"  # the callback died with its transaction
        assert info.data.answers == 0  # type: ignore[attr-defined]
        again = Worker("answer", database_url, tmp_path, target, crash_at="callback")
        assert await again.exited() == 0, again.log()  # marker present: no second crash
        await answer_all(engine, ids[1:])
        await check_finished_once(engine, ids, tmp_path)
    finally:
        assert await worker.stop() == 0, worker.log()


async def test_repeated_sigkill_at_random_moments_loses_nothing(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    # 60 blocking steps of 50 ms, one at a time: three kills, each after 3 to 15 more
    # steps, all land mid-run.
    ids = await start(engine, count=30, delay=0.05)
    rng = random.Random(7)
    for _ in range(3):
        worker = await Worker("run", database_url, tmp_path, lease_seconds=1).ready()
        seen = sum(counts(tmp_path, "steps").values())
        target = seen + rng.randint(3, 15)
        await poll(
            lambda t=target: sum(counts(tmp_path, "steps").values()) >= t,
            60,  # type: ignore[misc]
            "the worker made no progress",
        )
        worker.kill()
    worker = await Worker("run", database_url, tmp_path, lease_seconds=1).ready()
    try:
        await poll(lambda: all_set_up(engine, ids), 60, "not every workflow reached its wait")
        await answer_all(engine, ids)
        await check_finished_once(engine, ids, tmp_path)
    finally:
        assert await worker.stop() == 0, worker.log()
